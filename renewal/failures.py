"""What a failure means for a renewal: ``failure_outcome`` maps whatever a renewal raised to one typed answer.

Only a denial or something an operator has to fix is permanent; anything else (a service down or slow, the lock's
storage, an error nobody foresaw) is retried, and ``renewal.backoff.after_transient_failure`` then decides, by the
attempt and the certificate's expiry, whether to tell someone and whether it is over. A holder fenced off by the
lock does nothing more: whoever holds the lock decides. A create for which Key Vault's shared budget has no room soon
goes back to the queue for its booked turn, with no attempt spent: waiting for a turn is no failure. Pure, with a
reason, in the shape of ``renewal.decide``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from renewal.ca.base import CaError, CaUnavailable, Denied
from renewal.keyvault import KeyVaultError
from renewal.ledger import LockLost, LockUnavailable
from renewal.pacing.store import Paced

FailureKind = Literal["retry", "permanent", "lost", "paced"]


class Transient(Exception):
    """A step failed in a way that may pass: retried with back-off (``retry_after`` seconds when the service said)."""

    def __init__(self, reason: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after


class Permanent(Exception):
    """A step failed in a way retrying cannot change: a denial, a policy mismatch, a certificate certlc cannot use."""

    def __init__(self, reason: str, message: str, denied: Denied | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.denied = denied


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    reason: str  # stable code for the audit, the alert and the failed store
    message: str
    retry_after: int | None = None  # seconds the service asked for, when it did
    ca_request_id: str | None = None  # the CA has this request already: the retry follows it, never submits again
    denied: Denied | None = None  # the CA's refusal, its request id and its own words
    with_record: bool = True  # False: the lock's storage failed, so the retry cannot write the renewal's record
    unexpected: bool = False  # nobody foresaw it: logged with its traceback


def failure_outcome(exc: Exception) -> Failure:
    """Retry, fail for good, or stop because this holder lost the lock: what ``exc`` means for the renewal."""
    message = str(exc)
    if isinstance(exc, Paced):
        return Failure("paced", "keyvault_budget", message, math.ceil(exc.delay_seconds))
    if isinstance(exc, Transient):
        return Failure("retry", exc.reason, message, exc.retry_after)
    if isinstance(exc, Permanent):
        return Failure("permanent", exc.reason, message, denied=exc.denied)
    if isinstance(exc, KeyVaultError):
        if exc.transient:
            return Failure("retry", "keyvault_unavailable", message, exc.retry_after_seconds)
        return Failure("permanent", "keyvault_error", message)
    if isinstance(exc, CaUnavailable):
        return Failure("retry", "ca_unavailable", message, exc.retry_after_seconds, ca_request_id=exc.request_id)
    if isinstance(exc, CaError):
        return Failure("permanent", "ca_error", message)
    if isinstance(exc, LockLost):
        return Failure("lost", "lock_lost", message)
    if isinstance(exc, LockUnavailable):
        return Failure("retry", "lock_unavailable", message, with_record=False)
    return Failure("retry", "unexpected_error", f"{type(exc).__name__}: {exc}", unexpected=True)
