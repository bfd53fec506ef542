"""The vault allow-list: the only vaults certlc ever builds a URL for.

``CERTLC_VAULTS`` is a comma- or whitespace-separated list. Each entry is a vault
name (``contoso-kv`` means ``https://contoso-kv.vault.azure.net``) or ``name=url``
for sovereign clouds and the local emulator (``kv1=https://127.0.0.1:8443``).
Event fields are only ever used to look a vault up here, never to build a URL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from renewal.errors import ConfigError

VAULT_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$")
OBJECT_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
PUBLIC_CLOUD_SUFFIX = "vault.azure.net"


class VaultConfigError(ConfigError):
    """The allow-list setting cannot be used as written."""


@dataclass(frozen=True)
class Vault:
    name: str
    url: str


def is_valid_vault_name(name: str) -> bool:
    return bool(VAULT_NAME.fullmatch(name)) and "--" not in name


def is_valid_object_name(name: str) -> bool:
    return bool(OBJECT_NAME.fullmatch(name))


def parse_allow_list(value: str) -> dict[str, Vault]:
    """Parse ``CERTLC_VAULTS`` into vaults keyed by lower-case name."""
    vaults: dict[str, Vault] = {}
    for entry in re.split(r"[,\s;]+", value.strip()):
        if not entry:
            continue
        name, _, url = entry.partition("=")
        name = name.strip()
        if not is_valid_vault_name(name):
            raise VaultConfigError(
                f"CERTLC_VAULTS entry {entry!r}: {name!r} is not a valid Key Vault name "
                "(3-24 letters, digits and single hyphens, starting with a letter)"
            )
        url = url.strip().rstrip("/") or f"https://{name}.{PUBLIC_CLOUD_SUFFIX}"
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/"):
            raise VaultConfigError(
                f"CERTLC_VAULTS entry {entry!r}: the vault URL must be https://host[:port] with no path"
            )
        vaults[name.lower()] = Vault(name=name, url=url)
    return vaults


def vaults_from_env(env: Mapping[str, str]) -> dict[str, Vault]:
    value = env.get("CERTLC_VAULTS", "")
    if not value.strip():
        raise VaultConfigError("CERTLC_VAULTS is not set: list the vaults certlc may manage")
    return parse_allow_list(value)
