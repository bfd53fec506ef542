"""Wires the parts together: the resources (ARM over HTTPS), the Key Vault reads with the services' identity, and
the TLS front that serves what each resource references."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Self

from localazure.pki import loopback_tls, server_context

from ..armfront import ArmError, HttpsListener
from .arm import DEFAULT_TOKENS, Arm
from .serving import Binding, Clock, KeyVaultReader, Served, Serving

SERVICE_IDENTITY = "certlc-local-officer"  # the Key Vault emulator's token the emulated services read secrets with
LOCATION = "westeurope"


def _group(subscription: str, resource_group: str, namespace: str) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/{namespace}"


def vault_id(subscription: str, resource_group: str, vault: str) -> str:
    return f"{_group(subscription, resource_group, 'Microsoft.KeyVault')}/vaults/{vault}"


class ConsumersEmulator:
    """The Azure services that serve Key Vault certificates, for tests and the local stack.

    ``url`` is the ARM endpoint (trust ``ca_bundle``); ``tls_address`` is the TLS front (the same CA signs its
    certificate for handshakes without SNI). ``vaults`` (name -> URL) and ``keyvault_ca_bundle`` are the Key Vault
    emulator's; ``identity_token`` is the services' identity there (None: no managed identity, nothing is served).
    ``pickup`` overrides a kind's polling interval (``app_gateway``, ``front_door``, ``app_service``,
    ``api_management``, ``container_apps``).
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        vaults: Mapping[str, str],
        keyvault_ca_bundle: str | Path,
        identity_token: str | None = SERVICE_IDENTITY,
        tokens: Mapping[str, str] | None = None,
        pickup: Mapping[str, timedelta] | None = None,
    ) -> None:
        state = Path(state_dir)
        self.tls = loopback_tls(state / "tls", "certlc consumers emulator")
        self.clock = Clock()
        self.arm = Arm({**DEFAULT_TOKENS, **(tokens or {})})
        self.reader = KeyVaultReader(vaults, identity_token, str(keyvault_ca_bundle), state / "served")
        self.arm.on_write = self._derive
        self.serving = Serving(self._resources, self.reader, self.clock, pickup, self._on_read)
        self._https: HttpsListener | None = None
        self._front: Any = None
        try:
            from .tlsfront import TlsFront

            self._https = HttpsListener(self.arm.handle, server_context(self.tls), name="consumers")
            self._front = TlsFront(self.serving, server_context(self.tls))
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        assert self._https is not None
        return self._https.url

    @property
    def ca_bundle(self) -> Path:
        return self.tls.ca_pem

    @property
    def tls_address(self) -> tuple[str, int]:
        return self._front.address

    # -- control ----------------------------------------------------------------------------------

    def add_subscription(self, subscription: str) -> None:
        with self.arm.lock:
            self.arm.subscriptions.add(subscription.lower())

    def put(self, resource_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Seed a resource as a PUT would (checked the same way, an ``ArmError`` when ARM would refuse it)."""
        return self.arm.put(resource_id, body)

    def resource(self, resource_id: str) -> dict[str, Any]:
        return self.arm.get(resource_id)

    def refresh(self) -> None:
        """The services' next Key Vault poll comes now: versionless references read the newest version again."""
        self.serving.refresh()

    def advance(self, delta: timedelta) -> None:
        """Move the services' clock: a versionless reference older than its kind's pickup reads Key Vault again."""
        self.clock.advance(delta)

    def served(self, host: str) -> Served | None:
        """What a handshake for ``host`` gets now (what the TLS front serves)."""
        return self.serving.served(host)

    # -- seeding helpers: one resource each, in the shapes of the specifications -----------------------------

    def add_app_gateway(
        self, subscription: str, resource_group: str, name: str, listeners: Mapping[str, tuple[Sequence[str], str]]
    ) -> str:
        """A gateway with one HTTPS listener and one SSL certificate per ``listeners`` entry:
        listener name -> (host names, keyVaultSecretId). Returns the gateway's id."""
        gateway = f"{_group(subscription, resource_group, 'Microsoft.Network')}/applicationGateways/{name}"
        certificates, http_listeners = [], []
        for listener, (hosts, secret_id) in listeners.items():
            certificate = f"cert-{listener}"
            certificates.append({"name": certificate, "properties": {"keyVaultSecretId": secret_id}})
            http_listeners.append(
                {
                    "name": listener,
                    "properties": {
                        "protocol": "Https",
                        "hostNames": list(hosts),
                        "sslCertificate": {"id": f"{gateway}/sslCertificates/{certificate}"},
                    },
                }
            )
        body = {
            "location": LOCATION,
            "properties": {
                "sku": {"name": "Standard_v2", "tier": "Standard_v2", "capacity": 1},
                "sslCertificates": certificates,
                "httpListeners": http_listeners,
            },
        }
        return self.put(gateway, body)["id"]

    def add_front_door(
        self,
        subscription: str,
        resource_group: str,
        profile: str,
        domain: str,
        host: str,
        secret_source: str,
        *,
        version: str = "",
        use_latest: bool = False,
    ) -> tuple[str, str]:
        """A Front Door Standard profile, a customer-certificate secret and a custom domain using it. ``secret_source``
        is the Key Vault secret's resource id. Returns (the secret's id, the custom domain's id)."""
        profile_id = f"{_group(subscription, resource_group, 'Microsoft.Cdn')}/profiles/{profile}"
        if profile_id.lower() not in self.arm.resources:
            self.put(profile_id, {"location": "global", "sku": {"name": "Standard_AzureFrontDoor"}})
        parameters: dict[str, Any] = {
            "type": "CustomerCertificate",
            "secretSource": {"id": secret_source},
            "useLatestVersion": use_latest,
        }
        if version:
            parameters["secretVersion"] = version
        secret = self.put(f"{profile_id}/secrets/{domain}-cert", {"properties": {"parameters": parameters}})["id"]
        tls = {"certificateType": "CustomerCertificate", "minimumTlsVersion": "TLS12", "secret": {"id": secret}}
        custom = self.put(
            f"{profile_id}/customDomains/{domain}", {"properties": {"hostName": host, "tlsSettings": tls}}
        )
        return secret, custom["id"]

    def add_web_app(
        self, subscription: str, resource_group: str, site: str, hosts: Sequence[str], keyvault_id: str, secret: str
    ) -> tuple[str, str]:
        """A Web certificate imported from Key Vault and a site binding it (SNI) on ``hosts``.
        Returns (the certificate's id, the site's id)."""
        group = _group(subscription, resource_group, "Microsoft.Web")
        certificate = self.put(
            f"{group}/certificates/{site}-{secret}",
            {"location": LOCATION, "properties": {"keyVaultId": keyvault_id, "keyVaultSecretName": secret}},
        )
        thumbprint = certificate["properties"]["thumbprint"]
        states = [
            {"name": h, "sslState": "SniEnabled", "thumbprint": thumbprint, "hostType": "Standard"} for h in hosts
        ]
        body = {"location": LOCATION, "properties": {"hostNames": list(hosts), "hostNameSslStates": states}}
        return certificate["id"], self.put(f"{group}/sites/{site}", body)["id"]

    def add_api_management(self, subscription: str, resource_group: str, name: str, hosts: Mapping[str, str]) -> str:
        """An API Management service with one Proxy host name per ``hosts`` entry (host -> keyVaultId)."""
        configurations = [{"type": "Proxy", "hostName": host, "keyVaultId": url} for host, url in hosts.items()]
        body = {
            "location": LOCATION,
            "sku": {"name": "Developer", "capacity": 1},
            "properties": {
                "publisherEmail": "apim@example.test",
                "publisherName": "certlc",
                "hostnameConfigurations": configurations,
            },
        }
        return self.put(f"{_group(subscription, resource_group, 'Microsoft.ApiManagement')}/service/{name}", body)["id"]

    def add_container_app(
        self, subscription: str, resource_group: str, environment: str, app: str, host: str, keyvault_url: str
    ) -> tuple[str, str]:
        """A managed environment, a certificate from Key Vault in it, and a container app binding it on ``host``.
        Returns (the certificate's id, the app's id)."""
        group = _group(subscription, resource_group, "Microsoft.App")
        environment_id = f"{group}/managedEnvironments/{environment}"
        if environment_id.lower() not in self.arm.resources:
            self.put(environment_id, {"location": LOCATION, "properties": {}})
        certificate = self.put(
            f"{environment_id}/certificates/{app}-cert",
            {
                "location": LOCATION,
                "properties": {"certificateKeyVaultProperties": {"identity": "system", "keyVaultUrl": keyvault_url}},
            },
        )["id"]
        domains = [{"name": host, "bindingType": "SniEnabled", "certificateId": certificate}]
        body = {
            "location": LOCATION,
            "properties": {
                "managedEnvironmentId": environment_id,
                "configuration": {"ingress": {"customDomains": domains}},
            },
        }
        return certificate, self.put(f"{group}/containerApps/{app}", body)["id"]

    # -- what the services derive -------------------------------------------------------------------

    def _resources(self) -> dict[str, dict[str, Any]]:
        with self.arm.lock:
            return copy.deepcopy(self.arm.resources)

    def _derive(self, type_name: str, resource: dict[str, Any]) -> None:
        """App Service reads an imported Key Vault certificate when it is written, and shows its thumbprint."""
        if type_name != "Microsoft.Web/certificates":
            return
        properties = resource["properties"]
        vault = (properties.get("keyVaultId") or "").rstrip("/").split("/")[-1]
        read = self.reader.read(vault, properties.get("keyVaultSecretName") or "", "")
        if read is None:
            raise ArmError(
                400,
                "BadRequest",
                f"The service does not have access to '{properties.get('keyVaultId')}' Key Vault, or the secret "
                f"'{properties.get('keyVaultSecretName')}' does not exist.",
            )
        properties["thumbprint"] = hashlib.sha1(read[2][0]).hexdigest().upper()  # noqa: S324 - a thumbprint
        properties["keyVaultSecretStatus"] = "Succeeded"

    def _on_read(self, binding: Binding, served: Served) -> None:
        """App Service syncs a newer version into the certificate and its bindings (the thumbprint moves)."""
        if binding.kind != "app_service":
            return
        with self.arm.lock:
            certificate = self.arm.resources.get(binding.reference.lower())
            if certificate is None:
                return
            old = (certificate["properties"].get("thumbprint") or "").upper()
            certificate["properties"]["thumbprint"] = served.thumbprint
            for resource in self.arm.resources.values():
                if resource["type"] != "Microsoft.Web/sites":
                    continue
                for state in resource["properties"].get("hostNameSslStates") or ():
                    if (state.get("thumbprint") or "").upper() == old:
                        state["thumbprint"] = served.thumbprint

    def stop(self) -> None:
        if self._front is not None:
            self._front.stop()
        if self._https is not None:
            self._https.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
