"""A renewal queue body: our own RenewalRequest JSON or a raw Key Vault event that an Event Grid
storage-queue subscription wrote, each as JSON or as base64 of the JSON."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from renewal.eventgrid import rejections
from renewal.eventgrid.delivery import Ignored, outcome
from renewal.eventgrid.jsonbody import load_json
from renewal.eventgrid.parse import is_valid_version, parse_event
from renewal.eventgrid.rejections import IgnoredQueueMessage, InvalidQueueMessage, RejectedEvent
from renewal.messages import InvalidMessage, RenewalRequest
from renewal.vaults import Vault, is_valid_object_name

MAX_QUEUE_MESSAGE_BYTES = 64 * 1024  # Azure Storage's limit for one queue message


def parse_queue_message(text: str | bytes, allow_list: Mapping[str, Vault]) -> RenewalRequest:
    """Return the request to run; raise InvalidQueueMessage (an InvalidMessage) for anything else.

    IgnoredQueueMessage means a valid event that needs no renewal: drop it without alerting.
    """
    try:
        body = load_json(_unwrap_base64(text), limit=MAX_QUEUE_MESSAGE_BYTES, what="the queue message")
    except RejectedEvent as exc:
        raise InvalidQueueMessage(exc.reason, exc.message) from None
    if not isinstance(body, dict):
        raise InvalidQueueMessage(
            rejections.NOT_AN_OBJECT, f"a queue message must be one JSON object, got {type(body).__name__}"
        )
    if "schema" in body:
        return _own_request(body, allow_list)
    keys = {key.strip().lower() for key in body if isinstance(key, str)}
    if not keys & {"eventtype", "event_type", "specversion"}:
        raise InvalidQueueMessage(
            rejections.UNKNOWN_MESSAGE, "the queue message is neither a certlc renewal request nor a Key Vault event"
        )
    try:
        result = outcome(parse_event(body, allow_list))
    except RejectedEvent as exc:
        raise InvalidQueueMessage(exc.reason, exc.message) from None
    if isinstance(result, Ignored):
        raise IgnoredQueueMessage(result.reason, result.message)
    return result


def _unwrap_base64(text: str | bytes) -> bytes:
    """JSON passes through; anything else must be base64 of the JSON (how the Functions host writes)."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    stripped = raw.strip().removeprefix(b"\xef\xbb\xbf")
    if not stripped or stripped[:1] in (b"{", b"["):
        return raw
    if len(stripped) > MAX_QUEUE_MESSAGE_BYTES * 2:
        raise InvalidQueueMessage(rejections.TOO_LARGE, f"the queue message is over {MAX_QUEUE_MESSAGE_BYTES} bytes")
    try:
        return base64.b64decode(stripped, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidQueueMessage(
            rejections.NOT_BASE64, "the queue message is neither JSON nor base64 of JSON"
        ) from None


def _own_request(body: dict, allow_list: Mapping[str, Vault]) -> RenewalRequest:
    try:
        request = RenewalRequest.from_dict(body)
    except InvalidMessage as exc:
        raise InvalidQueueMessage(rejections.INVALID_REQUEST, str(exc)) from None
    if request.vault.lower() not in allow_list:
        raise InvalidQueueMessage(
            rejections.VAULT_NOT_ALLOWED,
            f"vault {request.vault[:64]!r} is not in CERTLC_VAULTS; add it there to manage it",
        )
    if not is_valid_object_name(request.name) or request.name != request.name.strip():
        raise InvalidQueueMessage(
            rejections.INVALID_OBJECT_NAME, f"{request.name[:140]!r} is not a Key Vault object name"
        )
    if request.version is not None and not is_valid_version(request.version):
        raise InvalidQueueMessage(rejections.INVALID_VERSION, f"{request.version[:80]!r} is not a Key Vault version id")
    return request
