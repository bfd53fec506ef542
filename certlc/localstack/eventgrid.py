"""The host's Event Grid webhook: ``/runtime/webhooks/eventgrid?functionName=<name>``.

Like the real host it answers the subscription handshakes itself (EventGridSchema validation event,
CloudEvents 1.0 OPTIONS abuse protection) and invokes the function once per delivered event; any
failure answers 500 so Event Grid retries the delivery.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import azure.functions as func

log = logging.getLogger("certlc.host")

PATH = "/runtime/webhooks/eventgrid"
VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"


class InvalidEvent(ValueError):
    """A delivery that is not an Event Grid or CloudEvents 1.0 event."""


def _event_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def to_event(event: Any) -> func.EventGridEvent:
    """One delivered event (either schema) as the ``func.EventGridEvent`` the Python worker builds."""
    if not isinstance(event, dict):
        raise InvalidEvent(f"an event must be a JSON object, got {type(event).__name__}")
    cloud = "specversion" in event
    keys = ("id", "source", "type") if cloud else ("id", "topic", "eventType")
    missing = [key for key in keys if key not in event]
    if missing:
        schema = "CloudEvents 1.0" if cloud else "EventGridSchema"
        raise InvalidEvent(f"{schema} event without {', '.join(missing)}")
    return func.EventGridEvent(
        id=event["id"],
        data=event.get("data"),
        topic=event["source" if cloud else "topic"],
        subject=event.get("subject", ""),
        event_type=event["type" if cloud else "eventType"],
        event_time=_event_time(event.get("time" if cloud else "eventTime")),
        data_version=event.get("dataVersion", ""),
    )


Dispatch = Callable[[str, func.EventGridEvent], None]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("eventgrid webhook: " + format, *args)

    def _reply(self, status: HTTPStatus, body: Any = None, headers: Mapping[str, str] | None = None) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if payload:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _function_name(self) -> str | None:
        url = urlsplit(self.path)
        if url.path.rstrip("/") != PATH:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint {url.path}"})
            return None
        name = parse_qs(url.query).get("functionName", [""])[0]
        if name not in self.server.functions:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no Event Grid triggered function named {name!r}"})
            return None
        return name

    def do_OPTIONS(self) -> None:
        if self._function_name() is None:
            return
        origin = self.headers.get("WebHook-Request-Origin")
        if not origin:
            self._reply(HTTPStatus.BAD_REQUEST, {"error": "missing WebHook-Request-Origin header"})
            return
        self._reply(HTTPStatus.OK, headers={"WebHook-Allowed-Origin": origin, "WebHook-Allowed-Rate": "*"})

    def do_POST(self) -> None:
        name = self._function_name()
        if name is None:
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
        except ValueError as exc:
            self._reply(HTTPStatus.BAD_REQUEST, {"error": f"body is not JSON: {exc}"})
            return
        events = body if isinstance(body, list) else [body]
        kind = self.headers.get("aeg-event-type", "")
        if kind == "SubscriptionValidation":
            self._validate(events)
        elif kind == "Unsubscribe":
            self._reply(HTTPStatus.ACCEPTED)
        else:
            self._notify(name, events)

    def _validate(self, events: list[Any]) -> None:
        first = events[0] if events and isinstance(events[0], dict) else {}
        code = (first.get("data") or {}).get("validationCode") if first.get("eventType") == VALIDATION_EVENT else None
        if not code:
            self._reply(HTTPStatus.BAD_REQUEST, {"error": "SubscriptionValidation without a validation code"})
            return
        self._reply(HTTPStatus.OK, {"validationResponse": code})

    def _notify(self, name: str, events: list[Any]) -> None:
        try:
            converted = [to_event(event) for event in events]
        except InvalidEvent as exc:
            self._reply(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        failed = 0
        for event in converted:
            try:
                self.server.dispatch(name, event)
            except Exception:  # logged by the invoker; Event Grid must retry the delivery
                failed += 1
        if failed:
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{failed} of {len(converted)} invocations failed"})
        else:
            self._reply(HTTPStatus.OK)


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() then waits for requests in flight

    def __init__(self, port: int, functions: frozenset[str], dispatch: Dispatch) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.functions = functions
        self.dispatch = dispatch


class EventGridWebhook:
    """The webhook endpoint on 127.0.0.1; ``dispatch(function_name, event)`` runs one invocation."""

    def __init__(self, functions: frozenset[str], dispatch: Dispatch, port: int = 0) -> None:
        self._server = _Server(port, functions, dispatch)
        self._thread = threading.Thread(target=self._server.serve_forever, name="eventgrid-webhook", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, function_name: str) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}?functionName={function_name}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
