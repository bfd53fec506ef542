"""Event Grid delivery for the Key Vault emulator: subscriptions, handshakes, payloads, retries.

Payloads are what Event Grid sends for a Key Vault system topic (the form of the published
samples): topic ``/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{vault}``,
subject = object name, PascalCase ``data`` with ``Id``/``VaultName``/``ObjectType``/``ObjectName``/
``Version`` and ``NBF``/``EXP`` as digit strings, as in every published Key Vault sample.

* ``EventGridSchema``: a JSON array (Event Grid always sends an array), ``Content-Type:
  application/json; charset=utf-8``, ``aeg-event-type: Notification``.
* ``CloudEventSchemaV1_0``: one structured-mode event per request, ``Content-Type:
  application/cloudevents+json; charset=utf-8``, source = topic. Event Grid's documentation gives that
  content type for CloudEvents deliveries and sends one event per request unless the subscription
  turns batching on (``maxEventsPerBatch`` defaults to 1), so the emulator does the same.

Subscribing runs the handshake first: a ``SubscriptionValidationEvent`` POST for the Event Grid
schema, the CloudEvents ``OPTIONS`` abuse-protection request otherwise. Failed deliveries are retried
after ``retry_delays``; 400 and 413 are not retried (as in Event Grid); what still fails is kept in
the log as ``dead-lettered``.
"""

from __future__ import annotations

import heapq
import itertools
import json
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from renewal.clients import is_loopback_host

EVENT_GRID_SCHEMA = "EventGridSchema"
CLOUD_EVENTS_SCHEMA = "CloudEventSchemaV1_0"
_SCHEMA_ALIASES = {
    "eventgridschema": EVENT_GRID_SCHEMA,
    "cloudeventschemav1_0": CLOUD_EVENTS_SCHEMA,
    "cloudevents": CLOUD_EVENTS_SCHEMA,
}
EVENT_TYPES = ("CertificateNearExpiry", "CertificateExpired", "CertificateNewVersionCreated")
_TYPE_PREFIX = "Microsoft.KeyVault."
VALIDATION_EVENT_TYPE = "Microsoft.EventGrid.SubscriptionValidationEvent"
REQUEST_ORIGIN = "eventgrid.azure.net"
_NOT_RETRIED = frozenset({400, 413})
_TIMEOUT = 10.0


@dataclass(frozen=True)
class KeyVaultEvent:
    event_type: str  # short: "CertificateNearExpiry" | "CertificateExpired" | "CertificateNewVersionCreated"
    vault_name: str
    vault_url: str  # the emulator listener URL for that vault, e.g. https://127.0.0.1:54321
    object_name: str
    version: str
    nbf: int | None  # epoch seconds
    exp: int | None
    event_time: datetime  # emulated clock


class SubscriptionError(Exception):
    """The endpoint cannot be subscribed: bad URL, unreachable, or it failed the handshake."""


@dataclass
class _Delivery:
    subscription: dict[str, Any]
    event_id: str
    event_type: str
    body: bytes
    headers: dict[str, str]
    status: str = "pending"
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None

    def record(self) -> dict[str, Any]:
        return {
            "endpoint": self.subscription["endpoint"],
            "subscription": self.subscription["name"],
            "schema": self.subscription["schema"],
            "event_id": self.event_id,
            "event_type": self.event_type,
            "status": self.status,
            "attempts": self.attempts,
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "delivered_at": self.delivered_at.isoformat() if self.delivered_at else None,
        }


def topic_for(subscription_id: str, resource_group: str, vault_name: str) -> str:
    return (
        f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
        f"/providers/Microsoft.KeyVault/vaults/{vault_name}"
    )


def event_time_text(moment: datetime) -> str:
    """ISO-8601 UTC with seven fractional digits and ``Z``, as Event Grid writes it."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def event_data(event: KeyVaultEvent) -> dict[str, str]:
    data = {
        "Id": f"{event.vault_url.rstrip('/')}/certificates/{event.object_name}/{event.version}",
        "VaultName": event.vault_name,
        "ObjectType": "Certificate",
        "ObjectName": event.object_name,
        "Version": event.version,
    }
    for key, value in (("NBF", event.nbf), ("EXP", event.exp)):
        if value is not None:
            data[key] = str(value)
    return data


def event_grid_event(event: KeyVaultEvent, *, event_id: str, topic: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "topic": topic,
        "subject": event.object_name,
        "eventType": _TYPE_PREFIX + event.event_type,
        "eventTime": event_time_text(event.event_time),
        "data": event_data(event),
        "dataVersion": "1",
        "metadataVersion": "1",
    }


def cloud_event(event: KeyVaultEvent, *, event_id: str, topic: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "source": topic,
        "subject": event.object_name,
        "type": _TYPE_PREFIX + event.event_type,
        "time": event_time_text(event.event_time),
        "data": event_data(event),
        "specversion": "1.0",
    }


class EventGridPublisher:
    """Delivers Key Vault events to webhook subscriptions on a background thread."""

    def __init__(
        self,
        *,
        subscription_id: str = "00000000-0000-0000-0000-000000000000",
        resource_group: str = "certlc-local",
        ca_bundle: str | None = None,
        retry_delays: Sequence[float] = (0.1, 0.5, 2.0, 5.0),
    ) -> None:
        self._subscription_id = subscription_id
        self._resource_group = resource_group
        self._verify: str | bool = ca_bundle or True
        self._retry_delays = tuple(retry_delays)
        self._subscriptions: list[dict[str, Any]] = []
        self._log: list[_Delivery] = []
        self._due: list[tuple[float, int, _Delivery]] = []
        self._order = itertools.count()
        self._names = itertools.count(1)
        self._busy = 0  # deliveries taken off the heap and not yet settled
        self._closed = False
        self._changed = threading.Condition()
        self._worker: threading.Thread | None = None

    # -- subscriptions -------------------------------------------------------------------------

    def subscribe(
        self, endpoint: str, schema: str = EVENT_GRID_SCHEMA, event_types: Sequence[str] | None = None
    ) -> dict:
        """Validate the endpoint with the schema's handshake, then start delivering to it."""
        canonical = _SCHEMA_ALIASES.get(schema.strip().lower())
        if canonical is None:
            raise SubscriptionError(f"unknown schema {schema!r}; use {EVENT_GRID_SCHEMA} or {CLOUD_EVENTS_SCHEMA}")
        _check_endpoint(endpoint)
        types = _full_types(event_types)
        with self._changed:
            if self._closed:
                raise SubscriptionError("the publisher is closed")
            name = f"certlc-sub-{next(self._names)}"
        if canonical == EVENT_GRID_SCHEMA:
            self._validate_event_grid(endpoint, name)
        else:
            self._validate_cloud_events(endpoint)
        subscription = {
            "name": name,
            "endpoint": endpoint,
            "schema": canonical,
            "event_types": list(types),
            "provisioning_state": "Succeeded",
        }
        with self._changed:
            self._subscriptions.append(subscription)
        return dict(subscription)

    def subscriptions(self) -> list[dict]:
        with self._changed:
            return [dict(s, event_types=list(s["event_types"])) for s in self._subscriptions]

    def _validate_event_grid(self, endpoint: str, name: str) -> None:
        code = str(uuid.uuid4())
        body = [
            {
                "id": str(uuid.uuid4()),
                "topic": f"/subscriptions/{self._subscription_id}",
                "subject": "",
                "data": {"validationCode": code},
                "eventType": VALIDATION_EVENT_TYPE,
                "eventTime": event_time_text(datetime.now(UTC)),
                "metadataVersion": "1",
                "dataVersion": "1",
            }
        ]
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "aeg-event-type": "SubscriptionValidation",
            "aeg-subscription-name": name.upper(),
        }
        response = self._handshake("POST", endpoint, headers, json.dumps(body).encode())
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or answer.get("validationResponse") != code:
            raise SubscriptionError(
                f"{endpoint} answered the validation event without the code: return HTTP 200 with "
                '{"validationResponse": <data.validationCode>}'
            )

    def _validate_cloud_events(self, endpoint: str) -> None:
        response = self._handshake("OPTIONS", endpoint, {"WebHook-Request-Origin": REQUEST_ORIGIN}, None)
        allowed = response.headers.get("WebHook-Allowed-Origin", "").strip()
        if allowed not in (REQUEST_ORIGIN, "*"):
            raise SubscriptionError(
                f"{endpoint} did not allow delivery: answer OPTIONS with WebHook-Allowed-Origin: {REQUEST_ORIGIN}"
            )

    def _handshake(self, method: str, endpoint: str, headers: dict[str, str], body: bytes | None) -> Any:
        try:
            with requests.Session() as session:
                session.trust_env = False
                response = session.request(
                    method, endpoint, headers=headers, data=body, verify=self._verify, timeout=_TIMEOUT
                )
        except requests.RequestException as exc:
            raise SubscriptionError(f"cannot reach {endpoint} for the validation handshake: {exc}") from exc
        if response.status_code != 200:
            raise SubscriptionError(
                f"{endpoint} answered the {method} validation handshake with HTTP {response.status_code}; "
                "it must answer 200"
            )
        return response

    # -- publishing ----------------------------------------------------------------------------

    def publish(self, event: KeyVaultEvent) -> None:
        """Queue ``event`` for every subscription whose filter matches; returns at once."""
        if event.event_type not in EVENT_TYPES:
            raise ValueError(f"unknown Key Vault event type {event.event_type!r}; expected one of {EVENT_TYPES}")
        event_id = str(uuid.uuid4())
        topic = topic_for(self._subscription_id, self._resource_group, event.vault_name)
        full_type = _TYPE_PREFIX + event.event_type
        with self._changed:
            if self._closed:
                raise RuntimeError("the publisher is closed")
            for subscription in self._subscriptions:
                if full_type not in subscription["event_types"]:
                    continue
                body, headers = _payload(event, subscription, event_id, topic)
                delivery = _Delivery(subscription, event_id, full_type, body, headers)
                self._log.append(delivery)
                heapq.heappush(self._due, (time.monotonic(), next(self._order), delivery))
            self._ensure_worker()
            self._changed.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until no delivery is pending; False if some still are after ``timeout`` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._due and not self._busy, timeout=timeout)

    def deliveries(self) -> list[dict]:
        with self._changed:
            return [delivery.record() for delivery in self._log]

    def close(self) -> None:
        """Stop the worker; deliveries still waiting are marked ``cancelled``."""
        with self._changed:
            self._closed = True
            for _, _, delivery in self._due:
                delivery.status = "cancelled"
            self._due.clear()
            self._changed.notify_all()
            worker = self._worker
        if worker is not None:
            worker.join(timeout=_TIMEOUT + 1)

    def _ensure_worker(self) -> None:
        if self._worker is None:
            self._worker = threading.Thread(target=self._run, name="certlc-eventgrid", daemon=True)
            self._worker.start()

    def _run(self) -> None:
        with requests.Session() as session:
            session.trust_env = False
            while True:
                with self._changed:
                    delivery = self._next_due()
                    if delivery is None:
                        return
                    self._busy += 1
                try:
                    code, error = self._attempt(session, delivery)
                finally:
                    with self._changed:
                        self._settle(delivery, code, error)
                        self._busy -= 1
                        self._changed.notify_all()

    def _next_due(self) -> _Delivery | None:
        """The next delivery whose time has come, waiting as needed; None once closed."""
        while not self._closed:
            if not self._due:
                self._changed.wait()
                continue
            wait = self._due[0][0] - time.monotonic()
            if wait <= 0:
                return heapq.heappop(self._due)[2]
            self._changed.wait(timeout=wait)
        return None

    def _attempt(self, session: requests.Session, delivery: _Delivery) -> tuple[int | None, str | None]:
        headers = dict(delivery.headers, **{"aeg-delivery-count": str(delivery.attempts)})
        try:
            response = session.post(
                delivery.subscription["endpoint"],
                data=delivery.body,
                headers=headers,
                verify=self._verify,
                timeout=_TIMEOUT,
            )
        except requests.RequestException as exc:
            return None, f"{type(exc).__name__}: {exc}"
        return response.status_code, None if response.ok else f"HTTP {response.status_code}"

    def _settle(self, delivery: _Delivery, code: int | None, error: str | None) -> None:
        delivery.attempts += 1
        delivery.last_status_code = code
        delivery.last_error = error
        if error is None:
            delivery.status = "delivered"
            delivery.delivered_at = datetime.now(UTC)
        elif self._closed:
            delivery.status = "cancelled"
        elif code in _NOT_RETRIED or delivery.attempts > len(self._retry_delays):
            delivery.status = "dead-lettered"
        else:
            due = time.monotonic() + self._retry_delays[delivery.attempts - 1]
            heapq.heappush(self._due, (due, next(self._order), delivery))


def _payload(
    event: KeyVaultEvent, subscription: dict[str, Any], event_id: str, topic: str
) -> tuple[bytes, dict[str, str]]:
    headers = {"aeg-event-type": "Notification", "aeg-subscription-name": subscription["name"].upper()}
    if subscription["schema"] == EVENT_GRID_SCHEMA:
        body: Any = [event_grid_event(event, event_id=event_id, topic=topic)]
        headers.update(
            {
                "Content-Type": "application/json; charset=utf-8",
                "aeg-metadata-version": "1",
                "aeg-data-version": "1",
            }
        )
    else:
        body = cloud_event(event, event_id=event_id, topic=topic)
        headers.update({"Content-Type": "application/cloudevents+json; charset=utf-8", "aeg-metadata-version": "1.0"})
    return json.dumps(body).encode(), headers


def _check_endpoint(endpoint: str) -> None:
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


def _full_types(event_types: Sequence[str] | None) -> tuple[str, ...]:
    if event_types is None:
        return tuple(_TYPE_PREFIX + t for t in EVENT_TYPES)
    if isinstance(event_types, str):
        event_types = [event_types]
    full: list[str] = []
    for value in event_types:
        short = value.strip().removeprefix(_TYPE_PREFIX)
        if short not in EVENT_TYPES:
            raise SubscriptionError(f"unknown event type {value!r}; choose from {', '.join(EVENT_TYPES)}")
        full.append(_TYPE_PREFIX + short)
    if not full:
        raise SubscriptionError("event_types is empty: pass None for every type, or name at least one")
    return tuple(dict.fromkeys(full))
