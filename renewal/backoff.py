"""Retry timing: exponential back-off with jitter, honouring the server's Retry-After."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    base_seconds: int = 60
    cap_seconds: int = 6 * 3600
    max_attempts: int = 12

    def delay(self, attempt: int, retry_after: int | None = None, rng: random.Random | None = None) -> int:
        """Seconds to wait before ``attempt + 1``: base doubling per attempt, capped, with equal jitter."""
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** max(0, attempt - 1))
        jittered = ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
        return int(max(jittered, retry_after or 0))

    def exhausted(self, attempt: int) -> bool:
        return attempt >= self.max_attempts
