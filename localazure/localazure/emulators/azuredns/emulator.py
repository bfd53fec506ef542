"""Wires the parts together: the store, the ARM listener (HTTPS) and the zones' name servers (UDP)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from localazure.pki import loopback_tls, server_context

from ..armfront import HttpsListener
from .arm import DEFAULT_TOKENS, Arm
from .dns import NameServer
from .store import Store, Zone


class AzureDnsEmulator:
    """Azure DNS for tests: ``url`` is the ARM endpoint (trust ``ca_bundle``), ``name_servers`` answer the zones."""

    def __init__(self, state_dir: Path, *, tokens: Mapping[str, str] | None = None, name_servers: int = 1) -> None:
        self.tls = loopback_tls(Path(state_dir) / "tls", "certlc Azure DNS emulator")
        self.store = Store()
        self.arm = Arm(self.store, {**DEFAULT_TOKENS, **(tokens or {})})
        self.name_servers: list[NameServer] = []
        self._https: HttpsListener | None = None
        try:
            self._https = HttpsListener(self.arm.handle, server_context(self.tls), name="azuredns")
            self.name_servers = [NameServer(self.store) for _ in range(name_servers)]
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

    def add_zone(self, subscription: str, resource_group: str, name: str, **kwargs: Any) -> Zone:
        return self.store.add_zone(subscription, resource_group, name, **kwargs)

    def stop(self) -> None:
        for server in self.name_servers:
            server.stop()
        if self._https is not None:
            self._https.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
