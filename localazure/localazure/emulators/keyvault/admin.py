"""The emulator's control API under ``/_emulator/``: clock, request log, faults, throttling, events."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from localazure.emulators.eventgrid import SubscriptionError
from renewal.eventgrid.schema import EVENT_GRID_SCHEMA

from .clock import Clock
from .errors import Response
from .faults import Faults
from .throttling import Throttle

PREFIX = "/_emulator"
MAX_LOGGED_REQUESTS = 50_000


class RequestLog:
    """Every request a vault listener answered (the newest ``MAX_LOGGED_REQUESTS``), for tests that count calls."""

    def __init__(self) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=MAX_LOGGED_REQUESTS)
        self._lock = threading.Lock()

    def add(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class AdminPublisher(Protocol):
    def subscribe(self, endpoint: str, schema: str = ..., event_types: Any = None) -> dict: ...
    def subscriptions(self) -> list[dict]: ...
    def deliveries(self) -> list[dict]: ...
    def flush(self, timeout: float = 10.0) -> bool: ...


class AdminError(Exception):
    """A control-API request the emulator cannot act on (answered 400 with the message)."""


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise AdminError("the request body must be a JSON object")
    return body


class Admin:
    def __init__(
        self,
        clock: Clock,
        requests: RequestLog,
        faults: Faults,
        throttle: Throttle,
        publisher: AdminPublisher | None,
        vault_urls: Mapping[str, str],
    ) -> None:
        self._clock = clock
        self._requests = requests
        self._faults = faults
        self._throttle = throttle
        self._publisher = publisher
        self._vault_urls = vault_urls
        self._routes: dict[tuple[str, str], Callable[[Any], Response]] = {
            ("GET", "clock"): lambda _: self._now(),
            ("POST", "clock"): self._set_clock,
            ("GET", "requests"): lambda _: Response(200, self._requests.entries()),
            ("DELETE", "requests"): lambda _: self._cleared(self._requests.clear),
            ("GET", "faults"): lambda _: Response(200, self._faults.rules()),
            ("POST", "faults"): lambda body: Response(201, self._faults.add(body).describe()),
            ("DELETE", "faults"): lambda _: self._cleared(self._faults.clear),
            ("GET", "throttling"): lambda _: Response(200, self._throttle.settings()),
            ("POST", "throttling"): lambda body: Response(200, self._throttle.configure(body)),
            ("GET", "throttling/stats"): lambda _: Response(200, self._throttle.stats()),
            ("GET", "subscriptions"): lambda _: Response(200, self._need_publisher().subscriptions()),
            ("POST", "subscriptions"): self._subscribe,
            ("GET", "events"): lambda _: Response(200, self._need_publisher().deliveries()),
            ("POST", "events/flush"): self._flush,
            ("GET", "vaults"): lambda _: Response(200, dict(self._vault_urls)),
        }

    def handle(self, method: str, path: str, body: Any) -> Response:
        route = self._routes.get((method, path[len(PREFIX) :].strip("/")))
        if route is None:
            known = ", ".join(f"{m} {PREFIX}/{p}" for m, p in self._routes)
            return Response(
                404, {"error": {"code": "NotFound", "message": f"no admin route {method} {path}; routes: {known}"}}
            )
        try:
            return route(body)
        except (AdminError, ValueError, TypeError) as exc:
            return Response(400, {"error": {"code": "BadRequest", "message": str(exc)}})

    @staticmethod
    def _cleared(action: Callable[[], None]) -> Response:
        action()
        return Response(200, {"cleared": True})

    def _now(self) -> Response:
        return Response(200, {"now": self._clock.now().isoformat(), "offset_seconds": self._clock.offset_seconds})

    def _set_clock(self, body: Any) -> Response:
        body = _object(body)
        if "advance_seconds" in body:
            self._clock.advance(float(body["advance_seconds"]))
        elif "now" in body:
            self._clock.set(datetime.fromisoformat(str(body["now"]).replace("Z", "+00:00")))
        else:
            raise AdminError('send {"advance_seconds": N} or {"now": "2030-01-01T00:00:00Z"}')
        return self._now()

    def _need_publisher(self) -> AdminPublisher:
        if self._publisher is None:
            raise AdminError("this emulator runs without an Event Grid publisher")
        return self._publisher

    def _subscribe(self, body: Any) -> Response:
        body = _object(body)
        if not isinstance(body.get("endpoint"), str):
            raise AdminError('"endpoint" (the webhook URL) is required')
        try:
            created = self._need_publisher().subscribe(
                body["endpoint"], body.get("schema", EVENT_GRID_SCHEMA), body.get("event_types")
            )
        except SubscriptionError as exc:
            raise AdminError(str(exc)) from exc
        return Response(201, created)

    def _flush(self, body: Any) -> Response:
        timeout = float(_object(body or {}).get("timeout", 10.0))
        return Response(200, {"flushed": self._need_publisher().flush(timeout)})
