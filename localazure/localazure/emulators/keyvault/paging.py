"""``maxresults`` + ``$skiptoken`` paging with ``nextLink``, as Key Vault list operations do.

The skip token is opaque to clients (base64url JSON like Key Vault's); it carries the
last returned sort key and the page size so a follow-up without ``maxresults`` keeps it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

from .errors import bad_parameter

T = TypeVar("T")
MAX_RESULTS = 25


def _encode(marker: str, size: int) -> str:
    raw = json.dumps({"NextMarker": marker, "PageSize": size}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str) -> tuple[str, int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return str(data["NextMarker"]), int(data["PageSize"])
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise bad_parameter("The $skiptoken query parameter is not valid") from exc


def page(
    items: Sequence[T],
    sort_key: Callable[[T], str],
    query: Mapping[str, str],
    link_base: str,
    api_version: str,
    render: Callable[[T], dict[str, Any]],
) -> dict[str, Any]:
    marker, size = "", MAX_RESULTS
    if "$skiptoken" in query:
        marker, size = _decode(query["$skiptoken"])
    if "maxresults" in query:
        try:
            size = int(query["maxresults"])
        except ValueError:
            size = 0
        if not 1 <= size <= MAX_RESULTS:
            raise bad_parameter(f"Invalid maxresults value {query['maxresults']!r}: it must be between 1 and 25")
    ordered = sorted(items, key=sort_key)
    remaining = [item for item in ordered if sort_key(item) > marker]
    chunk = remaining[:size]
    next_link = None
    if len(remaining) > size:
        token = _encode(sort_key(chunk[-1]), size)
        next_link = f"{link_base}?api-version={quote(api_version)}&$skiptoken={token}"
    return {"value": [render(item) for item in chunk], "nextLink": next_link}
