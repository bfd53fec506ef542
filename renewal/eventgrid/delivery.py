"""A webhook delivery (one event or an array) becomes renewal requests, ignores and rejections.

Body-level problems (not JSON, too large, empty) raise RejectedEvent: answer 400, retrying cannot help.
Per-event problems are collected in the result so one bad event never blocks the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from renewal.eventgrid import rejections as r
from renewal.eventgrid.handshake import validation_code, validation_response
from renewal.eventgrid.jsonbody import load_json
from renewal.eventgrid.parse import (
    CERTIFICATE_EXPIRED,
    CERTIFICATE_NEAR_EXPIRY,
    KeyVaultCertificateEvent,
    parse_event,
)
from renewal.eventgrid.rejections import RejectedEvent
from renewal.messages import RenewalRequest
from renewal.vaults import Vault

MAX_DELIVERY_BYTES = 1024 * 1024  # Event Grid's own limit for one delivery
MAX_EVENTS_PER_DELIVERY = 5000  # Event Grid's largest batch

_RENEWAL_REASONS = {CERTIFICATE_NEAR_EXPIRY: "near_expiry", CERTIFICATE_EXPIRED: "expired"}


@dataclass(frozen=True)
class Ignored:
    """A valid event that asks for no renewal."""

    event: KeyVaultCertificateEvent
    reason: str
    message: str


@dataclass(frozen=True)
class Rejection:
    index: int | None  # position in the delivery array; None for a single-object delivery
    event_id: str | None  # as sent, when readable; for logs only
    reason: str
    message: str


@dataclass(frozen=True)
class DeliveryResult:
    requests: tuple[RenewalRequest, ...] = ()
    ignored: tuple[Ignored, ...] = ()
    rejected: tuple[Rejection, ...] = ()
    duplicates: int = 0
    validation_response: dict[str, str] | None = None  # answer with this body when set


def outcome(event: KeyVaultCertificateEvent) -> RenewalRequest | Ignored:
    """NearExpiry and Expired ask for a renewal of that version; NewVersionCreated is only news."""
    reason = _RENEWAL_REASONS.get(event.event_type)
    if reason is None:
        return Ignored(
            event,
            r.NEW_VERSION_CREATED,
            f"{event.vault.name}/{event.name} has a new version {event.version}; nothing to renew",
        )
    return RenewalRequest(
        vault=event.vault.name, name=event.name, reason=reason, version=event.version, event_id=event.event_id
    )


def requests_from_events(events: Iterable[KeyVaultCertificateEvent]) -> DeliveryResult:
    """Map events to outcomes; the same event id, or the same vault+name+version+type, counts once."""
    requests: list[RenewalRequest] = []
    ignored: list[Ignored] = []
    seen: set[tuple[str, ...]] = set()
    duplicates = 0
    for event in events:
        keys = {
            ("id", event.event_id),
            ("cert", event.vault.name.lower(), event.name.lower(), event.version.lower(), event.event_type),
        }
        if keys & seen:
            duplicates += 1
            continue
        seen |= keys
        result = outcome(event)
        (ignored if isinstance(result, Ignored) else requests).append(result)
    return DeliveryResult(requests=tuple(requests), ignored=tuple(ignored), duplicates=duplicates)


def parse_delivery(body: bytes | str, allow_list: Mapping[str, Vault]) -> DeliveryResult:
    """Parse a webhook body in either schema; see the module docstring for what raises."""
    decoded = load_json(body, limit=MAX_DELIVERY_BYTES, what="the delivery")
    if isinstance(decoded, list):
        if not decoded:
            raise RejectedEvent(r.EMPTY_DELIVERY, "the delivery is an empty array")
        if len(decoded) > MAX_EVENTS_PER_DELIVERY:
            raise RejectedEvent(
                r.TOO_MANY_EVENTS, f"the delivery has {len(decoded)} events; at most {MAX_EVENTS_PER_DELIVERY}"
            )
        items: list[tuple[int | None, Any]] = list(enumerate(decoded))
    elif isinstance(decoded, dict):
        items = [(None, decoded)]
    else:
        raise RejectedEvent(
            r.NOT_AN_OBJECT, f"the delivery must be an event object or an array, got {type(decoded).__name__}"
        )

    events: list[KeyVaultCertificateEvent] = []
    rejected: list[Rejection] = []
    answer: dict[str, str] | None = None
    for index, item in items:
        try:
            code = validation_code(item)
            if code is not None:
                answer = validation_response(code)
                continue
            events.append(parse_event(item, allow_list))
        except RejectedEvent as exc:
            rejected.append(Rejection(index, _readable_id(item), exc.reason, exc.message))
    return replace(requests_from_events(events), rejected=tuple(rejected), validation_response=answer)


def _readable_id(item: Any) -> str | None:
    event_id = item.get("id") if isinstance(item, dict) else None
    return event_id[:256] if isinstance(event_id, str) else None
