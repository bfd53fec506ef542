"""Where a renewal picks up: ``resume_action`` reads the renewal's record and its request and says which step comes
next, with which CA, and whether this renewal takes another's over.

A record of an earlier version is an earlier renewal's leftovers and counts for nothing. A chain the CA issued
before a crash is merged as it is; a CA request not decided yet is followed (never submitted again, which could
issue twice) at the CA that took it, whatever the settings or tags say now; otherwise a new pending operation is
made (or an orphan's reused) and its CSR submitted. Pure, with a reason, in the shape of ``renewal.decide``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from renewal.ledger import RenewalRecord
from renewal.messages import RenewalRequest

Step = Literal["merge_recorded_chain", "poll_ca_request", "submit"]


@dataclass(frozen=True)
class Resume:
    step: Step
    reason: str
    ca: str  # the CA adapter to use
    record: RenewalRecord | None  # the record that counts (this version's), or None
    ca_request_id: str | None = None  # the request to follow
    takes_over: bool = False  # the record is another renewal's, whose owner is gone


def resume_action(record: RenewalRecord | None, request: RenewalRequest, version: str, decided_ca: str) -> Resume:
    """``decided_ca``: the CA the decision picked (a tag, else ``CERTLC_CA``)."""
    mine = record if record is not None and record.version == version else None
    takes_over = mine is not None and mine.owner != request.correlation_id
    following = mine.ca if mine and mine.ca and (mine.ca_request_id or mine.chain_pem) else None
    ca = following or decided_ca
    if mine and mine.chain_pem:
        return Resume("merge_recorded_chain", "chain_recorded", ca, mine, takes_over=takes_over)
    ca_request_id = (mine.ca_request_id if mine else None) or request.ca_request_id
    if ca_request_id:
        return Resume("poll_ca_request", "ca_request_recorded", ca, mine, ca_request_id, takes_over)
    return Resume("submit", "nothing_recorded", ca, mine, takes_over=takes_over)
