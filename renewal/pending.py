"""What a renewal does with the pending operation Key Vault already has, when its create answers 409.

Key Vault keeps one pending operation per certificate. A renewal creates optimistically (the plain path
stays at three Key Vault calls) and, only when the create is refused, reads the operation and decides
here. It runs under the certificate's lock with no live record of another renewal (``renewal.ledger``),
so an operation in progress is this renewal's own from an earlier attempt, or an orphan nobody will
finish: both are reused, never left behind. Pure, with a reason, in the shape of ``renewal.decide``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from renewal.keyvault import PendingOperation
from renewal.messages import RenewalRequest

PendingAction = Literal["reuse", "replace", "vanished"]


@dataclass(frozen=True)
class PendingDecision:
    action: PendingAction
    reason: str
    message: str


def pending_action(operation: PendingOperation | None, request: RenewalRequest) -> PendingDecision:
    """``reuse`` its CSR, ``replace`` it (delete, create again), or ``vanished``: look again on the next attempt."""
    if operation is None or operation.status == "completed":  # finished between the create and the read
        return PendingDecision("vanished", "pending_vanished", "the pending operation finished or disappeared")
    if operation.status in ("failed", "cancelled"):
        return PendingDecision(
            "replace", f"pending_{operation.status}", f"the pending operation is {operation.status}; starting anew"
        )
    if operation.request_id is not None and operation.request_id == request.kv_request_id:
        return PendingDecision("reuse", "own_pending", "this renewal's pending operation from an earlier attempt")
    return PendingDecision("reuse", "orphaned_pending", "a pending operation no live renewal owns: taking it over")
