"""A Key Vault (certificates + certificate secrets) emulator over HTTPS on loopback.

``start()`` runs it in background threads for tests and the local stack; ``cli.run`` runs it in
the foreground. One listening port per vault, one shared store, clock and control API. This module
stays light (the control client and the CLI's options import it); ``start()`` loads the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .emulator import Emulator
    from .events import Publisher

DEFAULT_VAULTS = ("kv1",)
PENDING_VERSION_MODES = ("placeholder", "previous")
DEFAULT_PENDING_VERSION = "placeholder"


def start(
    state_dir: Path,
    vaults: Sequence[str] = DEFAULT_VAULTS,
    host: str = "127.0.0.1",
    ports: Sequence[int] | None = None,
    tokens: Mapping[str, str] | None = None,
    publisher: Publisher | None = None,
    pending_version: str = DEFAULT_PENDING_VERSION,
) -> Emulator:
    """Start listeners for ``vaults`` (``ports`` default to free ones).

    ``tokens`` maps bearer token -> role (officer/reader/none) and is added to the default
    tokens. ``publisher`` replaces the built-in Event Grid publisher (tests pass a recorder).
    ``pending_version`` is ``"placeholder"`` (a pending manual create shows a new disabled version without a
    certificate) or ``"previous"`` (the previous version stays the newest until the merge).
    """
    from .emulator import Emulator

    emulator = Emulator(
        Path(state_dir), list(vaults), host, list(ports) if ports else None, tokens, publisher, pending_version
    )
    emulator.start()
    return emulator
