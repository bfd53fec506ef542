"""The publisher: subscriptions, and deliveries on a background thread with Event Grid's retries.

An event goes to every subscription whose filter takes it, with one event id for all of them. A failed
delivery is tried again after each of ``retry_delays``; 400 and 413 are not retried (as in Event Grid);
what still fails is kept in the log as ``dead-lettered``. Closing cancels what is waiting.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from localazure.emulators.eventgrid.payloads import Event, payload, topic_for
from localazure.emulators.eventgrid.subscriptions import (
    TIMEOUT,
    Subscription,
    SubscriptionError,
    canonical_schema,
    check_endpoint,
    event_type_filter,
    handshake,
)
from renewal.eventgrid.schema import EVENT_GRID_SCHEMA

_NOT_RETRIED = frozenset({400, 413})


@dataclass
class _Delivery:
    subscription: Subscription
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
            "endpoint": self.subscription.endpoint,
            "subscription": self.subscription.name,
            "schema": self.subscription.schema,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "status": self.status,
            "attempts": self.attempts,
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "delivered_at": self.delivered_at.isoformat() if self.delivered_at else None,
        }


class EventGridPublisher:
    """Delivers one kind of source's events (``event_types``, full names) to webhook subscriptions.

    ``subscription_id`` and ``resource_group`` make the topic each event names; ``ca_bundle`` is trusted
    for https endpoints.
    """

    def __init__(
        self,
        *,
        event_types: Sequence[str],
        subscription_id: str = "00000000-0000-0000-0000-000000000000",
        resource_group: str = "certlc-local",
        ca_bundle: str | None = None,
        retry_delays: Sequence[float] = (0.1, 0.5, 2.0, 5.0),
    ) -> None:
        self._event_types = tuple(event_types)
        self._subscription_id = subscription_id
        self._resource_group = resource_group
        self._verify: str | bool = ca_bundle or True
        self._retry_delays = tuple(retry_delays)
        self._subscriptions: list[Subscription] = []
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
    ) -> dict[str, Any]:
        """Validate the endpoint with the schema's handshake, then start delivering to it."""
        canonical = canonical_schema(schema)
        check_endpoint(endpoint)
        types = event_type_filter(event_types, self._event_types)
        with self._changed:
            if self._closed:
                raise SubscriptionError("the publisher is closed")
            name = f"certlc-sub-{next(self._names)}"
        handshake(endpoint, canonical, name, subscription_id=self._subscription_id, verify=self._verify)
        subscription = Subscription(name, endpoint, canonical, types)
        with self._changed:
            self._subscriptions.append(subscription)
        return subscription.describe()

    def subscriptions(self) -> list[dict[str, Any]]:
        with self._changed:
            return [s.describe() for s in self._subscriptions]

    # -- publishing ----------------------------------------------------------------------------

    def publish(self, event: Event) -> None:
        """Queue ``event`` for every subscription whose filter takes it; returns at once."""
        if event.event_type not in self._event_types:
            raise ValueError(f"unknown event type {event.event_type!r}; this publisher sends {self._event_types}")
        event_id = str(uuid.uuid4())
        topic = topic_for(self._subscription_id, self._resource_group, event.resource)
        with self._changed:
            if self._closed:
                raise RuntimeError("the publisher is closed")
            for subscription in self._subscriptions:
                if event.event_type not in subscription.event_types:
                    continue
                body, headers = payload(event, subscription.schema, subscription.name, event_id=event_id, topic=topic)
                delivery = _Delivery(subscription, event_id, event.event_type, body, headers)
                self._log.append(delivery)
                heapq.heappush(self._due, (time.monotonic(), next(self._order), delivery))
            self._ensure_worker()
            self._changed.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until no delivery is pending; False if some still are after ``timeout`` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._due and not self._busy, timeout=timeout)

    def deliveries(self) -> list[dict[str, Any]]:
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
            worker.join(timeout=TIMEOUT + 1)

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
                delivery.subscription.endpoint,
                data=delivery.body,
                headers=headers,
                verify=self._verify,
                timeout=TIMEOUT,
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
