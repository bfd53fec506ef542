"""A Key Vault (certificates + certificate secrets) emulator over HTTPS on loopback.

``start()`` runs it in background threads for tests and the local stack; ``cli.run`` runs it in
the foreground. One listening port per vault, one shared store, clock and control API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

DEFAULT_VAULTS = ("kv1",)
PENDING_VERSION_MODES = ("placeholder", "previous")  # the same as certificates.PENDING_VERSION_MODES
DEFAULT_PENDING_VERSION = "placeholder"


class RunningEmulator:
    """Handle on a started emulator: URLs, trust, token, and ``stop()``."""

    def __init__(self, parts: Any) -> None:
        self._parts = parts
        self.vault_urls: dict[str, str] = dict(parts.vault_urls)
        self.url: str = next(iter(self.vault_urls.values()))
        self.admin_url: str = f"{self.url}/_emulator"
        self.ca_bundle: str = str(parts.tls.ca_pem)
        self.token: str = parts.authorizer.first_token("officer")
        self.tokens: dict[str, str] = parts.authorizer.tokens
        self.store = parts.store
        self.clock = parts.clock
        self.publisher = parts.publisher
        self.pending_version: str = parts.pending_version

    def describe(self) -> dict[str, Any]:
        """What a client needs to connect (the CLI's ``--json`` line)."""
        return {
            "url": self.url,
            "ca_bundle": self.ca_bundle,
            "admin_url": self.admin_url,
            "token": self.token,
            "vaults": dict(self.vault_urls),
        }

    def stop(self) -> None:
        self._parts.stop()

    def __enter__(self) -> RunningEmulator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start(
    state_dir: Path,
    vaults: Sequence[str] = DEFAULT_VAULTS,
    host: str = "127.0.0.1",
    ports: Sequence[int] | None = None,
    tokens: Mapping[str, str] | None = None,
    publisher: Any = None,
    pending_version: str = DEFAULT_PENDING_VERSION,
) -> RunningEmulator:
    """Start listeners for ``vaults`` (``ports`` default to free ones).

    ``tokens`` maps bearer token -> role (officer/reader/none) and is added to the default
    tokens. ``publisher`` replaces the built-in Event Grid publisher (tests pass a recorder).
    ``pending_version`` is ``"placeholder"`` (a pending manual create shows a new disabled version without a
    certificate) or ``"previous"`` (the previous version stays the newest until the merge).
    """
    from .emulator import Emulator

    parts = Emulator(
        Path(state_dir), list(vaults), host, list(ports) if ports else None, tokens, publisher, pending_version
    )
    parts.start()
    return RunningEmulator(parts)
