"""The emulated clock: real time plus an offset that tests and demos move forward.

Everything time-dependent in the emulator (nbf/exp checks, self-signed validity,
event times, deleted/purge dates) reads this clock, never ``time.time()`` directly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime


class Clock:
    def __init__(self, offset_seconds: float = 0.0) -> None:
        self._offset = offset_seconds
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    @property
    def offset_seconds(self) -> float:
        return self._offset

    def timestamp(self) -> float:
        return time.time() + self._offset

    def epoch(self) -> int:
        """Whole seconds, the unit Key Vault uses for every attribute."""
        return int(self.timestamp())

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), tz=UTC)

    def advance(self, seconds: float) -> datetime:
        if seconds < 0:
            raise ValueError("the emulated clock only moves forward: advance_seconds must be >= 0")
        with self._lock:
            self._offset += seconds
        self._notify()
        return self.now()

    def set(self, when: datetime) -> datetime:
        if when.tzinfo is None:
            raise ValueError("'now' needs a time zone, e.g. 2030-01-01T00:00:00Z")
        with self._lock:
            self._offset = when.timestamp() - time.time()
        self._notify()
        return self.now()

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def _notify(self) -> None:
        for listener in self._listeners:
            listener()
