"""The daemon: a round every interval plus random jitter (so a fleet does not call Key Vault at once)."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable

from certlc.sync.agent import RoundResult, SyncConfig, sync_once

log = logging.getLogger("certlc.sync")


def guarded_round(config: SyncConfig) -> RoundResult:
    """One round whose failure, whatever it is, becomes a ``failed`` result so the loop goes on."""
    try:
        return sync_once(config)
    except Exception as exc:
        log.debug("sync round failed", exc_info=True)
        return RoundResult(config.vault.name, config.name, "failed", str(exc) or type(exc).__name__)


def run_daemon(
    config: SyncConfig,
    report: Callable[[RoundResult], None],
    stop: threading.Event,
    interval: float,
    jitter: float,
) -> None:
    """Rounds until ``stop`` is set (SIGTERM/SIGINT); a round in progress is finished first."""
    while not stop.is_set():
        report(guarded_round(config))
        stop.wait(interval + random.uniform(0, jitter))
