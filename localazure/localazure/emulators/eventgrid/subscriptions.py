"""What may be subscribed, and the handshake that shows the endpoint wants the events.

An endpoint is ``https://``, or ``http://`` on a loopback address. Subscribing runs the schema's handshake
first, as Event Grid does: a ``SubscriptionValidationEvent`` POST for the Event Grid schema (the endpoint
answers 200 with ``{"validationResponse": code}``), the CloudEvents ``OPTIONS`` abuse-protection request
otherwise (the endpoint answers 200 with ``WebHook-Allowed-Origin``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from localazure.emulators.eventgrid.payloads import Event, envelope
from renewal.clients import is_loopback_host
from renewal.eventgrid.schema import (
    ALLOWED_ORIGIN_HEADER,
    CLOUD_EVENTS_SCHEMA,
    EVENT_GRID_ORIGIN,
    EVENT_GRID_SCHEMA,
    EVENT_TYPE_HEADER,
    REQUEST_ORIGIN_HEADER,
    SUBSCRIPTION_VALIDATION,
    VALIDATION_EVENT_TYPE,
)

TIMEOUT = 10.0  # seconds for one request to an endpoint, handshake or delivery
_SCHEMA_ALIASES = {
    "eventgridschema": EVENT_GRID_SCHEMA,
    "cloudeventschemav1_0": CLOUD_EVENTS_SCHEMA,
    "cloudevents": CLOUD_EVENTS_SCHEMA,
}


class SubscriptionError(Exception):
    """The endpoint cannot be subscribed: bad URL, unreachable, or it failed the handshake."""


@dataclass(frozen=True)
class Subscription:
    name: str
    endpoint: str
    schema: str
    event_types: tuple[str, ...]  # the full names this subscription takes

    def describe(self) -> dict[str, Any]:
        """As the control API shows it (JSON)."""
        return {
            "name": self.name,
            "endpoint": self.endpoint,
            "schema": self.schema,
            "event_types": list(self.event_types),
            "provisioning_state": "Succeeded",
        }


def canonical_schema(schema: str) -> str:
    """Event Grid's name for the delivery schema ``schema`` names (any case; ``CloudEvents`` for short)."""
    canonical = _SCHEMA_ALIASES.get(schema.strip().lower())
    if canonical is None:
        raise SubscriptionError(f"unknown schema {schema!r}; use {EVENT_GRID_SCHEMA} or {CLOUD_EVENTS_SCHEMA}")
    return canonical


def check_endpoint(endpoint: str) -> None:
    """An endpoint Event Grid could deliver to from here: https, or plain http only on loopback."""
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise SubscriptionError(f"endpoint {endpoint!r} is not a URL: {exc}") from None
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and is_loopback_host(host):
        return
    raise SubscriptionError(f"endpoint {endpoint!r} must be https://, or http:// on a loopback address")


def _short(event_type: str) -> str:
    return event_type.rsplit(".", 1)[-1]


def event_type_filter(event_types: Sequence[str] | str | None, known: Sequence[str]) -> tuple[str, ...]:
    """The full event type names a subscription takes: every ``known`` one for None, else those named, each
    by its full name or by its last part (``CertificateNearExpiry``)."""
    if event_types is None:
        return tuple(known)
    by_name = {name: full for full in known for name in (full, _short(full))}
    full: list[str] = []
    for value in [event_types] if isinstance(event_types, str) else event_types:
        if value.strip() not in by_name:
            raise SubscriptionError(f"unknown event type {value!r}; choose from {', '.join(_short(t) for t in known)}")
        full.append(by_name[value.strip()])
    if not full:
        raise SubscriptionError("event_types is empty: pass None for every type, or name at least one")
    return tuple(dict.fromkeys(full))


def handshake(endpoint: str, schema: str, name: str, *, subscription_id: str, verify: str | bool) -> None:
    """Run the schema's validation handshake with ``endpoint``; SubscriptionError says what it must answer."""
    if schema == EVENT_GRID_SCHEMA:
        _validate_event_grid(endpoint, name, subscription_id, verify)
    else:
        _validate_cloud_events(endpoint, verify)


def _validate_event_grid(endpoint: str, name: str, subscription_id: str, verify: str | bool) -> None:
    code = str(uuid.uuid4())
    event = Event("", "", VALIDATION_EVENT_TYPE, datetime.now(UTC), {"validationCode": code})
    body = [envelope(event, EVENT_GRID_SCHEMA, event_id=str(uuid.uuid4()), topic=f"/subscriptions/{subscription_id}")]
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        EVENT_TYPE_HEADER: SUBSCRIPTION_VALIDATION,
        "aeg-subscription-name": name.upper(),
    }
    response = _request("POST", endpoint, headers, json.dumps(body).encode(), verify)
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or answer.get("validationResponse") != code:
        raise SubscriptionError(
            f"{endpoint} answered the validation event without the code: return HTTP 200 with "
            '{"validationResponse": <data.validationCode>}'
        )


def _validate_cloud_events(endpoint: str, verify: str | bool) -> None:
    response = _request("OPTIONS", endpoint, {REQUEST_ORIGIN_HEADER: EVENT_GRID_ORIGIN}, None, verify)
    allowed = response.headers.get(ALLOWED_ORIGIN_HEADER, "").strip()
    if allowed not in (EVENT_GRID_ORIGIN, "*"):
        raise SubscriptionError(
            f"{endpoint} did not allow delivery: answer OPTIONS with {ALLOWED_ORIGIN_HEADER}: {EVENT_GRID_ORIGIN}"
        )


def _request(
    method: str, endpoint: str, headers: dict[str, str], body: bytes | None, verify: str | bool
) -> requests.Response:
    try:
        with requests.Session() as session:
            session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify=
            response = session.request(method, endpoint, headers=headers, data=body, verify=verify, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise SubscriptionError(f"cannot reach {endpoint} for the validation handshake: {exc}") from exc
    if response.status_code != 200:
        raise SubscriptionError(
            f"{endpoint} answered the {method} validation handshake with HTTP {response.status_code}; "
            "it must answer 200"
        )
    return response
