"""Wires the parts together: the apps, their Key Vault references resolved against the Key Vault emulator, and the
ARM listener (HTTPS)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from localazure.pki import loopback_tls, server_context

from ..armfront import HttpsListener
from . import indexing, references
from .arm import DEFAULT_PAGE_SIZE, DEFAULT_TOKENS, Arm, Site

APP_IDENTITY = "certlc-local-officer"  # the Key Vault emulator's token whose role reads secrets


class AppServiceEmulator:
    """App Service's ARM operations for tests and the local stack: ``url`` is the ARM endpoint (trust ``ca_bundle``).

    ``vaults`` (name -> URL) and ``keyvault_ca_bundle`` are the Key Vault emulator's, where references resolve.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        vaults: Mapping[str, str],
        keyvault_ca_bundle: str | Path,
        tokens: Mapping[str, str] | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        self.tls = loopback_tls(Path(state_dir) / "tls", "certlc App Service emulator")
        self.vaults = dict(vaults)
        self.keyvault_ca_bundle = str(keyvault_ca_bundle)
        self.arm = Arm({**DEFAULT_TOKENS, **(tokens or {})}, self._references, page_size)
        self._https = HttpsListener(self.arm.handle, server_context(self.tls), name="appservice")
        self.arm.base_url = self._https.url

    @property
    def url(self) -> str:
        return self._https.url

    @property
    def ca_bundle(self) -> Path:
        return self.tls.ca_pem

    def add_app(
        self,
        subscription: str,
        resource_group: str,
        name: str,
        *,
        settings: Mapping[str, str] | None = None,
        identity_token: str | None = APP_IDENTITY,
    ) -> Site:
        """A Function App as the template's first pass leaves it: settings and identity, no code published."""
        return self.arm.add(Site(subscription, resource_group, name, dict(settings or {}), identity_token))

    def publish(self, site: Site, script_root: Path) -> indexing.Code:
        """``func azure functionapp publish``: the worker indexes the folder, and the app lists what it found."""
        site.code = indexing.index(script_root)
        return site.code

    def _references(self, site: Site) -> list[dict[str, Any]]:
        """Every app setting that is a Key Vault reference, as an ``ApiKVReference`` resolved now."""
        found = []
        for setting, value in site.settings.items():
            reference = references.parse(value)
            if reference is None:
                continue
            resolution = references.resolve(reference, self.vaults, site.identity_token, self.keyvault_ca_bundle)
            properties = {
                "reference": reference.raw,
                "status": resolution.status,
                "vaultName": resolution.vault_name,
                "secretName": reference.secret,
                "secretVersion": reference.version,
                "identityType": "SystemAssigned" if site.identity_token else "",
                "details": resolution.details,
                "source": "KeyVault",
                "activeVersion": resolution.active_version,
            }
            found.append(
                {
                    "id": f"{site.arm_id}/config/configreferences/appsettings/{setting}",
                    "name": setting,
                    "properties": {key: value for key, value in properties.items() if value},
                }
            )
        return found

    def stop(self) -> None:
        self._https.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
