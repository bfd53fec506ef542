"""What the Functions host's Event Grid webhook settles before a function sees anything, as pure functions.

* The subscription handshakes. Event Grid schema: Event Grid POSTs a
  ``Microsoft.EventGrid.SubscriptionValidationEvent`` (header ``aeg-event-type: SubscriptionValidation``);
  the answer is 200 with ``{"validationResponse": code}``. CloudEvents 1.0: Event Grid sends ``OPTIONS`` with
  ``WebHook-Request-Origin``; the answer is 200 with ``WebHook-Allowed-Origin`` (and ``WebHook-Allowed-Rate``).
* The delivery: a JSON array of events (Event Grid schema, CloudEvents batch) or one event object
  (CloudEvents structured mode), each event then goes to the function on its own. What Event Grid never
  sends is refused with :class:`Refused` and a 4xx status: a body over 1 MB (Event Grid's limit for one
  delivery), no or a bad ``Content-Length``, more than 5,000 events (its largest batch), JSON nested
  deeper than any event, text that is not strict UTF-8 JSON, and events without their schema's envelope.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from http import HTTPStatus
from typing import Any

from renewal.eventgrid.jsonbody import load_json
from renewal.eventgrid.rejections import (
    MISSING_FIELD,
    NOT_AN_OBJECT,
    TOO_DEEP,
    TOO_LARGE,
    UNKNOWN_SCHEMA,
    WRONG_FIELD_TYPE,
    RejectedEvent,
)
from renewal.eventgrid.schema import (
    ALLOWED_ORIGIN_HEADER,
    EVENT_GRID_ORIGIN,
    EVENT_GRID_SCHEMA,
    REQUEST_ORIGIN_HEADER,
    VALIDATION_EVENT_TYPE,
)

MAX_DELIVERY_BYTES = 1024 * 1024  # Event Grid's own limit for one delivery
MAX_EVENTS_PER_DELIVERY = 5000  # Event Grid's largest batch
MAX_JSON_DEPTH = 32  # a Key Vault event in an array nests 3 deep

ANY_ORIGIN = ("*",)
_CODE = re.compile(r"[\x21-\x7e]{1,256}")
_DIGITS = re.compile(r"[0-9]{1,19}")

# Stable reason codes, sent back as ``{"error": message, "reason": code}``: the event parser's where they mean
# the same, and these for what only the host's endpoint refuses.
TOO_MANY_EVENTS = "too_many_events"
EMPTY_DELIVERY = "empty_delivery"
ORIGIN_NOT_ALLOWED = "origin_not_allowed"
LENGTH_REQUIRED = "length_required"
INVALID_LENGTH = "invalid_length"
NOT_VALIDATION = "not_a_validation_event"


class Refused(ValueError):
    """A request the webhook answers with ``status`` and does not pass on; retrying it cannot help."""

    def __init__(self, status: HTTPStatus, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    def body(self) -> dict[str, str]:
        return {"error": self.message, "reason": self.reason}


def _bad(reason: str, message: str) -> Refused:
    return Refused(HTTPStatus.BAD_REQUEST, reason, message)


def _show(value: Any, width: int = 60) -> str:
    """A short, printable rendering of untrusted input for error messages."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


# --- the handshakes -----------------------------------------------------------------------------------------


def _field(fields: Mapping[Any, Any], name: str) -> Any:
    """The value under ``name``, matching keys without regard to case or surrounding spaces."""
    for key, value in fields.items():
        if isinstance(key, str) and key.strip().lower() == name:
            return value
    return None


def validation_code(event: Any) -> str | None:
    """The validation code if ``event`` is a subscription validation event, else None; Refused if malformed."""
    if not isinstance(event, Mapping):
        return None
    event_type = _field(event, "eventtype")
    if not isinstance(event_type, str) or event_type.strip().lower() != VALIDATION_EVENT_TYPE.lower():
        return None
    data = _field(event, "data")
    if not isinstance(data, Mapping):
        raise _bad(MISSING_FIELD, "the subscription validation event has no 'data' object")
    code = _field(data, "validationcode")
    if code is None:
        raise _bad(MISSING_FIELD, "the subscription validation event has no data.validationCode")
    if not isinstance(code, str):
        raise _bad(WRONG_FIELD_TYPE, f"data.validationCode must be a string, got {type(code).__name__}")
    if not _CODE.fullmatch(code.strip()):
        raise _bad(WRONG_FIELD_TYPE, f"validationCode {_show(code)} is not 1-256 printable ASCII characters")
    return code.strip()


def validation_response(code: str) -> dict[str, str]:
    """The 200 body that proves ownership of the endpoint."""
    return {"validationResponse": code}


def answer_validation(events: list[Any]) -> dict[str, str]:
    """The answer to a ``SubscriptionValidation`` delivery, whose first event must be the validation event."""
    code = validation_code(events[0]) if events else None
    if code is None:
        raise _bad(NOT_VALIDATION, f"aeg-event-type SubscriptionValidation needs a {VALIDATION_EVENT_TYPE}")
    return validation_response(code)


def abuse_protection_headers(
    request_headers: Mapping[str, str],
    *,
    allowed_origins: Collection[str] = (EVENT_GRID_ORIGIN,),
    allowed_rate: int | None = None,
) -> dict[str, str]:
    """Headers for the 200 answer to a CloudEvents ``OPTIONS`` validation request.

    ``allowed_origins`` ``ANY_ORIGIN`` accepts any sender, as the Functions host does; ``allowed_rate`` None
    means no limit.
    """
    headers = {name.lower(): value for name, value in request_headers.items()}
    origin = (headers.get(REQUEST_ORIGIN_HEADER.lower()) or "").strip()
    if not origin:
        raise _bad(MISSING_FIELD, f"the OPTIONS request has no {REQUEST_ORIGIN_HEADER} header")
    if "*" not in allowed_origins and origin.lower() not in {o.lower() for o in allowed_origins}:
        raise _bad(
            ORIGIN_NOT_ALLOWED, f"origin {_show(origin)} may not deliver here; allowed: {sorted(allowed_origins)}"
        )
    return {
        ALLOWED_ORIGIN_HEADER: origin,
        "WebHook-Allowed-Rate": "*" if allowed_rate is None else str(allowed_rate),
        "Allow": "POST, OPTIONS",
    }


# --- the delivery -------------------------------------------------------------------------------------------


def content_length(headers: Any) -> int:
    """The body's length from the request headers (an ``email.message.Message``), checked before any reading."""
    if headers.get("Transfer-Encoding") is not None:
        raise Refused(
            HTTPStatus.LENGTH_REQUIRED, LENGTH_REQUIRED, "Transfer-Encoding is not accepted; send a Content-Length"
        )
    values = {value.strip() for value in headers.get_all("Content-Length") or []}
    if not values:
        raise Refused(HTTPStatus.LENGTH_REQUIRED, LENGTH_REQUIRED, "a delivery needs a Content-Length header")
    if len(values) > 1 or not _DIGITS.fullmatch(next(iter(values))):
        raise _bad(INVALID_LENGTH, f"Content-Length {_show(sorted(values))} is not one whole number")
    length = int(next(iter(values)))
    if length > MAX_DELIVERY_BYTES:
        raise Refused(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            TOO_LARGE,
            f"the delivery is {length} bytes; Event Grid never sends more than {MAX_DELIVERY_BYTES}",
        )
    return length


def _too_deep(value: Any) -> bool:
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > MAX_JSON_DEPTH:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def decode_delivery(body: bytes) -> list[dict[str, Any]]:
    """The events of a delivery body, each a JSON object as sent; Refused for anything Event Grid never sends."""
    try:
        decoded = load_json(body, limit=MAX_DELIVERY_BYTES, what="the delivery")
    except RejectedEvent as exc:
        status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE if exc.reason == TOO_LARGE else HTTPStatus.BAD_REQUEST
        raise Refused(status, exc.reason, exc.message) from None
    if _too_deep(decoded):
        raise _bad(TOO_DEEP, f"the delivery nests JSON deeper than {MAX_JSON_DEPTH}")
    if isinstance(decoded, dict):
        return [decoded]
    if not isinstance(decoded, list):
        raise _bad(NOT_AN_OBJECT, f"a delivery is an event object or an array, got {type(decoded).__name__}")
    if not decoded:
        raise _bad(EMPTY_DELIVERY, "the delivery is an empty array")
    if len(decoded) > MAX_EVENTS_PER_DELIVERY:
        raise _bad(TOO_MANY_EVENTS, f"the delivery has {len(decoded)} events; at most {MAX_EVENTS_PER_DELIVERY}")
    for index, event in enumerate(decoded):
        if not isinstance(event, dict):
            raise _bad(NOT_AN_OBJECT, f"event {index} is a {type(event).__name__}, not a JSON object")
    return decoded


def check_envelope(event: Mapping[str, Any]) -> None:
    """An event carries its schema's required attributes, as the host needs to bind it."""
    if "specversion" in event:
        schema, keys = "CloudEvents 1.0", ("id", "source", "type")
    elif "eventType" in event:
        schema, keys = EVENT_GRID_SCHEMA, ("id", "topic", "eventType")
    else:
        raise _bad(UNKNOWN_SCHEMA, "the event has neither 'eventType' (Event Grid schema) nor 'specversion'")
    missing = [key for key in keys if key not in event]
    if missing:
        raise _bad(MISSING_FIELD, f"{schema} event without {', '.join(missing)}")
