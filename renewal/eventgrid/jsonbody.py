"""Strict JSON decoding for bodies that arrive from outside: size-capped, UTF-8, no NaN, no duplicate keys."""

from __future__ import annotations

import json
from typing import Any

from renewal.eventgrid.rejections import AMBIGUOUS_FIELD, NOT_JSON, TOO_DEEP, TOO_LARGE, RejectedEvent


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for key, value in pairs:
        if key in body:
            raise RejectedEvent(AMBIGUOUS_FIELD, f"the key {show(key)} appears twice in one JSON object")
        body[key] = value
    return body


def _no_constants(name: str) -> Any:
    raise RejectedEvent(NOT_JSON, f"{name} is not valid JSON (only finite numbers are allowed)")


def load_json(body: bytes | str, *, limit: int, what: str) -> Any:
    """Decode ``body`` or raise RejectedEvent; ``limit`` is in bytes of UTF-8."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    if len(raw) > limit:
        raise RejectedEvent(TOO_LARGE, f"{what} is {len(raw)} bytes; the limit is {limit} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RejectedEvent(NOT_JSON, f"{what} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not text.strip():
        raise RejectedEvent(NOT_JSON, f"{what} is empty; expected JSON")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise RejectedEvent(NOT_JSON, f"{what} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise RejectedEvent(TOO_DEEP, f"{what} nests JSON too deeply") from None


def json_size(value: Any) -> int:
    """Bytes of the compact JSON form: how an already-decoded event is held to the size limit."""
    return len(json.dumps(value, separators=(",", ":"), default=str).encode("utf-8", "surrogatepass"))


def show(value: Any, width: int = 60) -> str:
    """A short, printable rendering of untrusted input for error messages."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."
