"""Retry timing: exponential back-off with jitter, honouring the server's Retry-After."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

AfterFailure = Literal["retry", "retry_and_tell", "give_up"]


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


def after_transient_failure(attempt: int, backoff: Backoff, expires_on: datetime | None, now: datetime) -> AfterFailure:
    """What a transient failure (the CA or Key Vault down, storage unreachable) leads to. It never becomes permanent
    while the certificate is valid: once the attempts run out, someone is told once, and the renewal goes on at the
    capped back-off (``CERTLC_BACKOFF_CAP_SECONDS``, 6 h) until it succeeds, so a CA down over a weekend renews by
    itself on Monday. Only a certificate known to have expired meanwhile ends as a permanent failure."""
    if not backoff.exhausted(attempt):
        return "retry"
    if expires_on is not None and expires_on <= now:
        return "give_up"
    return "retry_and_tell" if attempt == backoff.max_attempts else "retry"
