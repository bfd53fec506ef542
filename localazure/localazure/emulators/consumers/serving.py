"""What each emulated service serves: the host names its resources bind, the Key Vault secret behind each, and the
certificate it holds now.

A binding is found the way the service finds it: an Application Gateway listener's host names through its
``sslCertificate`` to the certificate's ``keyVaultSecretId``; a Front Door custom domain's ``hostName`` through
``tlsSettings.secret`` to the secret's ``secretSource`` (and ``secretVersion`` unless ``useLatestVersion``); an App
Service site's ``hostNameSslStates`` by thumbprint to the Web certificate's ``keyVaultId`` + ``keyVaultSecretName``
(always the newest version); an API Management ``hostnameConfigurations`` entry's ``keyVaultId``; a container app's
custom domain through ``certificateId`` to the environment certificate's ``keyVaultUrl``.

The certificate is read from the Key Vault emulator with the service's identity (a Key Vault emulator token), as
``appservice/references.py`` reads app settings: a reference with a version reads that version once and keeps it; a
versionless one reads the newest version and keeps it until ``pickup`` (per kind) has passed on the emulator's clock
since that read, or until ``refresh()``, as the services poll Key Vault. A read that fails keeps what was served.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

log = logging.getLogger(__name__)

KEYVAULT_API_VERSION = "7.5"
READ_TIMEOUT = 5.0
PEM = "application/x-pem-file"
# The documented pickup intervals (renewal/targets/azure/pickup.py holds the table with its sources).
DEFAULT_PICKUP: dict[str, timedelta] = {
    "app_gateway": timedelta(hours=4),
    "front_door": timedelta(hours=72),
    "app_service": timedelta(hours=24),
    "api_management": timedelta(hours=4),
    "container_apps": timedelta(hours=12),
}
_SECRET_URL = re.compile(r"^(?P<origin>https://[^/]+)/secrets/(?P<name>[^/]+)(?:/(?P<version>[^/]+))?/?$")
_VAULT_ID = re.compile(r"/providers/Microsoft\.KeyVault/vaults/(?P<vault>[^/]+)", re.IGNORECASE)


@dataclass(frozen=True)
class Binding:
    """One host name an emulated service serves, and the Key Vault secret it serves there."""

    host: str
    kind: str
    reference: str  # the ARM id of what holds the reference (a gateway's sslCertificate, a Front Door secret...)
    vault: str  # a URL origin (https://host[:port]) or a vault name
    secret: str
    version: str = ""  # "" = versionless: the newest version as of the last read


@dataclass
class Served:
    version: str
    thumbprint: str  # SHA-1, upper-case hex
    context: ssl.SSLContext
    read_at: datetime


class Clock:
    """The emulator's clock: real time plus an offset tests move."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


def parse_secret_url(url: str) -> tuple[str, str, str] | None:
    match = _SECRET_URL.match(url.strip())
    return (match["origin"].lower(), match["name"], match["version"] or "") if match else None


def bindings(resources: Mapping[str, dict[str, Any]]) -> dict[str, Binding]:
    """Every bound host name (lower case) -> its binding, from the resources as ARM holds them now."""
    found: dict[str, Binding] = {}
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in resources.values():
        by_type.setdefault(resource["type"].lower(), []).append(resource)

    def bind(hosts: Any, kind: str, reference: str, vault: str, secret: str, version: str = "") -> None:
        for host in hosts:
            if host:
                found.setdefault(host.lower(), Binding(host.lower(), kind, reference, vault, secret, version))

    for gateway in by_type.get("microsoft.network/applicationgateways", ()):
        properties = gateway["properties"]
        certificates = {c["id"].lower(): c for c in _named(gateway, "sslCertificates")}
        for listener in properties.get("httpListeners") or ():
            listener_properties = listener.get("properties") or {}
            certificate = certificates.get(((listener_properties.get("sslCertificate") or {}).get("id") or "").lower())
            parsed = parse_secret_url(((certificate or {}).get("properties") or {}).get("keyVaultSecretId") or "")
            if certificate and parsed:
                hosts = listener_properties.get("hostNames") or [listener_properties.get("hostName")]
                bind(hosts, "app_gateway", certificate["id"], *parsed)
    for domain in by_type.get("microsoft.cdn/profiles/customdomains", ()):
        secret_id = ((domain["properties"].get("tlsSettings") or {}).get("secret") or {}).get("id") or ""
        secret = resources.get(secret_id.lower())
        parameters = ((secret or {}).get("properties") or {}).get("parameters") or {}
        source = (parameters.get("secretSource") or {}).get("id") or ""
        vault = _VAULT_ID.search(source)
        if secret and parameters.get("type") == "CustomerCertificate" and vault:
            version = "" if parameters.get("useLatestVersion") else parameters.get("secretVersion") or ""
            bind([domain["properties"].get("hostName")], "front_door", secret["id"], vault["vault"],
                 source.rstrip("/").split("/")[-1], version)  # fmt: skip
    certificates_by_thumbprint = {
        (c["properties"].get("thumbprint") or "").upper(): c for c in by_type.get("microsoft.web/certificates", ())
    }
    for site in by_type.get("microsoft.web/sites", ()):
        for state in site["properties"].get("hostNameSslStates") or ():
            certificate = certificates_by_thumbprint.get((state.get("thumbprint") or "").upper())
            if state.get("sslState", "Disabled") == "Disabled" or certificate is None:
                continue
            vault = _VAULT_ID.search(certificate["properties"].get("keyVaultId") or "")
            name = certificate["properties"].get("keyVaultSecretName")
            if vault and name:
                bind([state.get("name")], "app_service", certificate["id"], vault["vault"], name)
    for service in by_type.get("microsoft.apimanagement/service", ()):
        for configuration in service["properties"].get("hostnameConfigurations") or ():
            parsed = parse_secret_url(configuration.get("keyVaultId") or "")
            if parsed:
                bind([configuration.get("hostName")], "api_management", service["id"], *parsed)
    for app in by_type.get("microsoft.app/containerapps", ()):
        ingress = (app["properties"].get("configuration") or {}).get("ingress") or {}
        for domain in ingress.get("customDomains") or ():
            certificate = resources.get((domain.get("certificateId") or "").lower())
            url = (((certificate or {}).get("properties") or {}).get("certificateKeyVaultProperties") or {}).get(
                "keyVaultUrl"
            )
            parsed = parse_secret_url(url or "")
            if certificate and parsed and domain.get("bindingType", "SniEnabled") != "Disabled":
                bind([domain.get("name")], "container_apps", certificate["id"], *parsed)
    return found


def _named(resource: dict[str, Any], member: str) -> list[dict[str, Any]]:
    """A gateway's sub-resources with their ids filled in as ARM fills them."""
    items = []
    for item in resource["properties"].get(member) or ():
        items.append({**item, "id": item.get("id") or f"{resource['id']}/{member}/{item.get('name', '')}"})
    return items


class KeyVaultReader:
    """Reads a secret version from the Key Vault emulator with the service's identity."""

    def __init__(self, vaults: Mapping[str, str], identity_token: str | None, ca_bundle: str, folder: Path) -> None:
        self.vaults = {name.lower(): url.rstrip("/") for name, url in vaults.items()}
        self.identity_token = identity_token
        self.ca_bundle = ca_bundle
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    def vault_url(self, vault: str) -> str | None:
        if vault.startswith("https://"):
            if any(url.lower() == vault for url in self.vaults.values()):
                return vault
            name = (urlsplit(vault).hostname or "").split(".")[0]
            return self.vaults.get(name)
        return self.vaults.get(vault.lower())

    def read(self, vault: str, secret: str, version: str) -> tuple[str, bytes, list[bytes]] | None:
        """``(version, key PEM, [certificate DER...])``, or None when the vault refuses or is not here."""
        import requests
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.serialization import pkcs12

        url = self.vault_url(vault)
        if url is None or self.identity_token is None:
            return None
        path = f"{url}/secrets/{quote(secret, safe='')}" + (f"/{quote(version, safe='')}" if version else "")
        try:
            answer = requests.get(
                path,
                params={"api-version": KEYVAULT_API_VERSION},
                headers={"Authorization": f"Bearer {self.identity_token}"},
                verify=self.ca_bundle,
                timeout=(READ_TIMEOUT, READ_TIMEOUT),
            )
        except requests.RequestException as exc:
            log.warning("the vault at %s did not answer: %s", url, exc)
            return None
        if not answer.ok:
            log.warning("the vault refused %s: HTTP %s", path, answer.status_code)
            return None
        bundle = answer.json()
        read_version = str(bundle.get("id", "")).rstrip("/").split("/")[-1]
        value = bundle.get("value", "")
        if bundle.get("contentType") == PEM:
            from cryptography import x509

            key = serialization.load_pem_private_key(value.encode(), None)
            chain = [
                c.public_bytes(serialization.Encoding.DER) for c in x509.load_pem_x509_certificates(value.encode())
            ]
        else:
            key, leaf, extra = pkcs12.load_key_and_certificates(base64.b64decode(value), None)
            chain = [c.public_bytes(serialization.Encoding.DER) for c in [leaf, *(extra or [])] if c is not None]
        if key is None or not chain:
            return None
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return read_version, key_pem, chain

    def context(self, key_pem: bytes, chain: list[bytes]) -> ssl.SSLContext:
        digest = hashlib.sha256(chain[0]).hexdigest()[:24]
        path = self.folder / f"{digest}.pem"
        if not path.exists():
            pems = [ssl.DER_cert_to_PEM_cert(der).encode() for der in chain]
            path.touch(mode=0o600)
            path.write_bytes(key_pem + b"".join(pems))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(path))
        return context


class Serving:
    """Host name -> the TLS context the emulated service would hand out for it now."""

    def __init__(
        self,
        resources: Callable[[], Mapping[str, dict[str, Any]]],
        reader: KeyVaultReader,
        clock: Clock,
        pickup: Mapping[str, timedelta] | None = None,
        on_read: Callable[[Binding, Served], None] | None = None,
    ) -> None:
        self.resources = resources
        self.reader = reader
        self.clock = clock
        self.pickup = {**DEFAULT_PICKUP, **(pickup or {})}
        self.on_read = on_read
        self._served: dict[tuple[str, str, str, str], Served] = {}
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Every versionless reference reads Key Vault again at its next handshake ("the poll came")."""
        with self._lock:
            for key in [key for key in self._served if not key[3]]:
                del self._served[key]

    def served(self, host: str) -> Served | None:
        binding = bindings(self.resources()).get(host.lower().rstrip("."))
        if binding is None:
            return None
        key = (binding.reference.lower(), binding.vault.lower(), binding.secret.lower(), binding.version)
        with self._lock:
            current = self._served.get(key)
            now = self.clock.now()
            due = current is None or (not binding.version and now - current.read_at >= self.pickup[binding.kind])
            if not due:
                return current
            read = self.reader.read(binding.vault, binding.secret, binding.version)
            if read is None:
                return current  # the service keeps what it had when Key Vault does not answer
            version, key_pem, chain = read
            thumbprint = hashlib.sha1(chain[0]).hexdigest().upper()  # noqa: S324 - a certificate's thumbprint
            fresh = Served(version, thumbprint, self.reader.context(key_pem, chain), now)
            self._served[key] = fresh
        if self.on_read is not None and (current is None or current.version != fresh.version):
            self.on_read(binding, fresh)
        return fresh
