"""Event Grid's two endpoint-ownership handshakes, as pure functions.

* Event Grid schema: Event Grid POSTs a ``Microsoft.EventGrid.SubscriptionValidationEvent``
  (header ``aeg-event-type: SubscriptionValidation``); answer 200 with ``{"validationResponse": code}``.
* CloudEvents 1.0: Event Grid sends ``OPTIONS`` with ``WebHook-Request-Origin``; answer 200 with
  ``WebHook-Allowed-Origin`` (and ``WebHook-Allowed-Rate``).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from renewal.eventgrid import rejections as r
from renewal.eventgrid.jsonbody import show
from renewal.eventgrid.parse import normalise_keys, text_field
from renewal.eventgrid.rejections import RejectedEvent

VALIDATION_EVENT_TYPE = "Microsoft.EventGrid.SubscriptionValidationEvent"
EVENT_GRID_ORIGIN = "eventgrid.azure.net"
_CODE = re.compile(r"[\x21-\x7e]{1,256}")


def validation_code(event: Any) -> str | None:
    """The validation code if ``event`` is a subscription validation event, else None."""
    if not isinstance(event, Mapping):
        return None
    envelope = normalise_keys(event, "the event")
    event_type = envelope.get("eventtype")
    if not isinstance(event_type, str) or event_type.strip().lower() != VALIDATION_EVENT_TYPE.lower():
        return None
    data = envelope.get("data")
    if not isinstance(data, Mapping):
        raise RejectedEvent(r.MISSING_FIELD, "the subscription validation event has no 'data' object")
    code = text_field(normalise_keys(data, "the validation data"), "validationcode", "data.validationCode")
    if not _CODE.fullmatch(code):
        raise RejectedEvent(r.WRONG_FIELD_TYPE, f"validationCode {show(code)} is not printable ASCII")
    return code


def validation_response(code: str) -> dict[str, str]:
    """The 200 body that proves ownership of the endpoint."""
    return {"validationResponse": code}


def abuse_protection_headers(
    request_headers: Mapping[str, str],
    *,
    allowed_origins: Collection[str] = (EVENT_GRID_ORIGIN,),
    allowed_rate: int | None = None,
) -> dict[str, str]:
    """Headers for the 200 answer to a CloudEvents ``OPTIONS`` validation request.

    ``allowed_origins`` ``("*",)`` accepts any sender; ``allowed_rate`` None means no limit.
    """
    headers = {name.lower(): value for name, value in request_headers.items()}
    origin = (headers.get("webhook-request-origin") or "").strip()
    if not origin:
        raise RejectedEvent(r.MISSING_FIELD, "the OPTIONS request has no WebHook-Request-Origin header")
    if "*" not in allowed_origins and origin.lower() not in {o.lower() for o in allowed_origins}:
        raise RejectedEvent(
            r.ORIGIN_NOT_ALLOWED, f"origin {show(origin)} may not deliver here; allowed: {sorted(allowed_origins)}"
        )
    return {
        "WebHook-Allowed-Origin": origin,
        "WebHook-Allowed-Rate": "*" if allowed_rate is None else str(allowed_rate),
        "Allow": "POST, OPTIONS",
    }
