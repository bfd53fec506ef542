"""One parsed Key Vault certificate event becomes a renewal request, or is ignored.

The Functions host answers the subscription handshakes, checks the delivery and calls the ``event``
function once per event; the function parses that one event (``renewal.eventgrid.parse``) and asks
:func:`outcome` what it means. The queue parser does the same for a raw event found on the queue.
"""

from __future__ import annotations

from dataclasses import dataclass

from renewal.eventgrid import rejections
from renewal.eventgrid.parse import KeyVaultCertificateEvent
from renewal.eventgrid.schema import CERTIFICATE_EXPIRED, CERTIFICATE_NEAR_EXPIRY
from renewal.messages import RenewalRequest

_TRIGGERS = {CERTIFICATE_NEAR_EXPIRY: "near_expiry", CERTIFICATE_EXPIRED: "expired"}


@dataclass(frozen=True)
class Ignored:
    """A valid event that asks for no renewal."""

    event: KeyVaultCertificateEvent
    reason: str
    message: str


def outcome(event: KeyVaultCertificateEvent) -> RenewalRequest | Ignored:
    """NearExpiry and Expired ask for a renewal of that version; NewVersionCreated is only news."""
    trigger = _TRIGGERS.get(event.event_type)
    if trigger is None:
        return Ignored(
            event,
            rejections.NEW_VERSION_CREATED,
            f"{event.vault.name}/{event.name} has a new version {event.version}; nothing to renew",
        )
    return RenewalRequest(
        vault=event.vault.name, name=event.name, trigger=trigger, version=event.version, event_id=event.event_id
    )
