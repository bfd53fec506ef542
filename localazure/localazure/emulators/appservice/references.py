"""Key Vault references in app settings, and resolving them against the local Key Vault emulator.

App Service resolves a setting whose value is ``@Microsoft.KeyVault(SecretUri=https://VAULT/secrets/NAME[/VERSION])``
or ``@Microsoft.KeyVault(VaultName=VAULT;SecretName=NAME[;SecretVersion=VERSION])`` by reading the secret with the
app's identity, and reports each one's ``ResolveStatus``. Here the identity is a token of the Key Vault emulator (its
roles decide), and the secret is read from the emulator over HTTPS, so the status is what the vault answered: the
value itself never leaves this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

PREFIX = "@microsoft.keyvault("
KEYVAULT_API_VERSION = "7.5"
RESOLVE_TIMEOUT = 5.0


@dataclass(frozen=True)
class Reference:
    """A parsed reference: the vault as a URL's origin or a name, the secret and its version (empty: the latest).
    ``vault`` is empty when the reference does not parse."""

    raw: str
    vault: str = ""
    secret: str = ""
    version: str = ""

    @property
    def valid(self) -> bool:
        return bool(self.vault and self.secret)


@dataclass(frozen=True)
class Resolution:
    status: str  # a ResolveStatus value
    vault_name: str = ""
    details: str = ""
    active_version: str = ""


def parse(value: str) -> Reference | None:
    """The reference ``value`` holds, or None when it is a plain value."""
    text = value.strip()
    if not text.lower().startswith(PREFIX):
        return None
    if not text.endswith(")"):
        return Reference(text)
    fields = {}
    for part in text[len(PREFIX) : -1].split(";"):
        key, _, item = part.partition("=")
        if key.strip():
            fields[key.strip().lower()] = item.strip()
    if "secreturi" in fields:
        uri = urlsplit(fields["secreturi"])
        segments = [s for s in uri.path.split("/") if s]
        if uri.scheme != "https" or not uri.netloc or len(segments) not in (2, 3) or segments[0] != "secrets":
            return Reference(text)
        return Reference(text, f"https://{uri.netloc}".lower(), segments[1], segments[2] if len(segments) == 3 else "")
    if fields.get("vaultname") and fields.get("secretname"):
        return Reference(text, fields["vaultname"], fields["secretname"], fields.get("secretversion", ""))
    return Reference(text)


def _vault(reference: Reference, vaults: Mapping[str, str]) -> tuple[str, str | None]:
    """The vault's name and its URL, None when no vault of that name or address exists here."""
    if reference.vault.startswith("https://"):
        for name, url in vaults.items():
            if url.rstrip("/").lower() == reference.vault:
                return name, url.rstrip("/")
        return (urlsplit(reference.vault).hostname or "").split(".")[0], None
    url = vaults.get(reference.vault)
    return reference.vault, url.rstrip("/") if url else None


def resolve(
    reference: Reference,
    vaults: Mapping[str, str],
    identity_token: str | None,
    ca_bundle: str,
    timeout: float = RESOLVE_TIMEOUT,
) -> Resolution:
    """Read the secret as the app's identity would; the status says what stopped it."""
    import requests

    if not reference.valid:
        return Resolution("InvalidSyntax", details="not @Microsoft.KeyVault(SecretUri=...) nor VaultName=;SecretName=")
    name, url = _vault(reference, vaults)
    if identity_token is None:
        return Resolution("MSINotEnabled", name, "the app has no managed identity")
    if url is None:
        return Resolution("VaultNotFound", name, f"no vault {reference.vault} here")
    path = f"{url}/secrets/{quote(reference.secret, safe='')}"
    if reference.version:
        path += f"/{quote(reference.version, safe='')}"
    try:
        answer = requests.get(
            path,
            params={"api-version": KEYVAULT_API_VERSION},
            headers={"Authorization": f"Bearer {identity_token}"},
            verify=ca_bundle,
            timeout=(timeout, timeout),
        )
    except requests.Timeout:
        return Resolution("FetchTimedOut", name, f"the vault did not answer within {timeout:g} s")
    except requests.RequestException as exc:
        return Resolution("OtherReasons", name, f"the vault could not be reached: {type(exc).__name__}")
    if answer.ok:
        return Resolution("Resolved", name, active_version=str(answer.json().get("id", "")).rstrip("/").split("/")[-1])
    try:
        error = answer.json().get("error") or {}
    except ValueError:
        error = {}
    inner = (error.get("innererror") or {}).get("code", "")
    if answer.status_code == 404:
        missing = "SecretVersionNotFound" if reference.version else "SecretNotFound"
        return Resolution(missing, name, str(error.get("message", "")).split(". ")[0])
    why = inner or str(error.get("code", ""))
    if answer.status_code in (401, 403) and inner != "SecretDisabled":
        return Resolution("AccessToKeyVaultDenied", name, f"the vault refused the app's identity: {why}")
    return Resolution("OtherReasons", name, f"the vault answered HTTP {answer.status_code} {why}")
