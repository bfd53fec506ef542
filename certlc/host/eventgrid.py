"""The host's Event Grid webhook: ``/runtime/webhooks/eventgrid?functionName=<name>``.

Like the real host it answers the subscription handshakes itself and calls ``dispatch(function_name, event)``
once per delivered event, with the event's JSON object exactly as delivered (the host turns it into the
trigger value); a failed invocation answers 500 so Event Grid retries the delivery. The handshakes and the
delivery's limits are in :mod:`certlc.host.eventgrid_protocol`.

The endpoint holds itself to limits a client cannot stretch:

* a fixed pool of worker threads serves connections, one request each (HTTP/1.0); a few more wait, and a
  connection beyond those is answered 503 at once;
* the request line and headers must arrive within ``header_timeout`` seconds and the body within
  ``body_timeout`` of the headers, or the connection is answered 408 and closed;
* a body is never read past its limit: ``Content-Length`` is checked first (411, 400, 413);
* ``stop()`` closes every connection that has not started an invocation, so it returns within a second or
  so whatever the clients do, once the invocations in flight have finished and been answered (an event of
  the delivery not yet invoked is left to Event Grid's retry: 503).
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Collection, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from certlc.host.eventgrid_protocol import (
    ANY_ORIGIN,
    Refused,
    abuse_protection_headers,
    answer_validation,
    check_envelope,
    content_length,
    decode_delivery,
)
from renewal.eventgrid.schema import EVENT_TYPE_HEADER, SUBSCRIPTION_VALIDATION

log = logging.getLogger("certlc.host")

PATH = "/runtime/webhooks/eventgrid"
WORKERS = 8
MAX_WAITING = 32
HEADER_TIMEOUT = 5.0
BODY_TIMEOUT = 10.0
WRITE_TIMEOUT = 5.0
LINGER_SECONDS = 1.0  # after refusing a body unread, how long to discard it so the client can read the answer
LINGER_BYTES = 2 * 1024 * 1024
ACCEPT_POLL = 0.1

Dispatch = Callable[[str, dict[str, Any]], None]


class _Connection:
    """One accepted socket and what ``stop()`` needs to know about it."""

    def __init__(self, sock: socket.socket, address: Any) -> None:
        self.sock = sock
        self.address = address
        self.deadline = float("inf")
        self.invoked = False  # from its first invocation on, stop() leaves it to finish and answer
        self.timed_out = False

    def shutdown(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class _DeadlineReader(io.RawIOBase):
    """Reads the socket until the connection's deadline; past it, TimeoutError (so slow clients are cut off)."""

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self._connection.deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError("the client did not send the request in time")
            self._connection.sock.settimeout(remaining)
            return self._connection.sock.recv_into(buffer)
        except TimeoutError:
            self._connection.timed_out = True
            raise


class _Writer:
    """``wfile`` for the handler: every write has ``timeout`` seconds, so a client that never reads cannot hang us."""

    closed = False

    def __init__(self, connection: _Connection, timeout: float) -> None:
        self._connection = connection
        self._timeout = timeout

    def write(self, data: bytes) -> int:
        self._connection.sock.settimeout(self._timeout)
        self._connection.sock.sendall(data)
        return len(data)

    def flush(self) -> None:
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: an idle keep-alive never holds a worker

    def __init__(self, connection: _Connection, webhook: EventGridWebhook) -> None:
        self.conn = connection
        self.webhook = webhook
        self.responded = False
        self.body_unread = False
        super().__init__(connection.sock, connection.address, webhook)

    # -- plumbing ---------------------------------------------------------------------------------------------

    def setup(self) -> None:
        self.connection = self.request
        self.rfile = io.BufferedReader(_DeadlineReader(self.conn))
        self.wfile = _Writer(self.conn, self.webhook.write_timeout)

    def handle(self) -> None:
        self.command, self.requestline, self.request_version = None, "", "HTTP/1.0"  # until a request line parses
        self.handle_one_request()  # answers 400/414/431/501 itself; a TimeoutError ends it quietly
        if self.conn.timed_out and not self.responded:
            with contextlib.suppress(OSError):
                self._reply(HTTPStatus.REQUEST_TIMEOUT, {"error": "the request did not arrive in time"})
        elif self.body_unread and self.responded:
            self._linger()

    def finish(self) -> None:
        pass  # the webhook closes the socket

    def send_response(self, code: int, message: str | None = None) -> None:
        self.responded = True
        super().send_response(code, message)

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
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    def _linger(self) -> None:
        """Discard (a bounded amount of) the unread body so the client reads our answer instead of a reset."""
        sock = self.conn.sock
        deadline = time.monotonic() + LINGER_SECONDS
        budget = LINGER_BYTES
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
            while budget > 0 and (remaining := deadline - time.monotonic()) > 0:
                sock.settimeout(remaining)
                chunk = sock.recv(min(65536, budget))
                if not chunk:
                    break
                budget -= len(chunk)

    def _function_name(self) -> str | None:
        url = urlsplit(self.path)
        if url.path.rstrip("/") != PATH:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint {url.path}"})
            return None
        name = parse_qs(url.query).get("functionName", [""])[0]
        if name not in self.webhook.functions:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no Event Grid triggered function named {name!r}"})
            return None
        return name

    # -- the protocol -----------------------------------------------------------------------------------------

    def do_OPTIONS(self) -> None:
        if self._function_name() is None:
            return
        try:
            headers = abuse_protection_headers(self.headers, allowed_origins=self.webhook.allowed_origins)
        except Refused as exc:
            self._reply(exc.status, exc.body())
            return
        self._reply(HTTPStatus.OK, headers=headers)

    def do_POST(self) -> None:
        self.body_unread = True
        name = self._function_name()
        if name is None:
            return
        try:
            length = content_length(self.headers)
        except Refused as exc:
            self._reply(exc.status, exc.body())
            return
        self.conn.deadline = time.monotonic() + self.webhook.body_timeout
        body = self.rfile.read(length)
        self.body_unread = False
        if len(body) < length:
            self._reply(HTTPStatus.BAD_REQUEST, {"error": f"the body ended after {len(body)} of {length} bytes"})
            return
        try:
            events = decode_delivery(body)
            kind = self.headers.get(EVENT_TYPE_HEADER, "")
            if kind == SUBSCRIPTION_VALIDATION:
                self._reply(HTTPStatus.OK, answer_validation(events))
                return
            if kind == "Unsubscribe":
                self._reply(HTTPStatus.ACCEPTED)
                return
            for event in events:
                check_envelope(event)
        except Refused as exc:
            self._reply(exc.status, exc.body())
            return
        self._notify(name, events)

    def _notify(self, name: str, events: list[dict[str, Any]]) -> None:
        failed = 0
        for event in events:
            if not self.webhook._begin_dispatch(self.conn):
                self._reply(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "the host is stopping; retry the delivery"})
                return
            try:
                self.webhook.dispatch(name, event)
            except Exception:  # logged by the invoker; Event Grid must retry the delivery
                failed += 1
        if failed:
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{failed} of {len(events)} invocations failed"})
        else:
            self._reply(HTTPStatus.OK)


_BUSY_BODY = json.dumps({"error": "too many connections; retry later"}).encode()
_BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\nConnection: close\r\n"
    + f"Content-Length: {len(_BUSY_BODY)}\r\n\r\n".encode()
    + _BUSY_BODY
)


class EventGridWebhook:
    """The webhook endpoint on 127.0.0.1; ``dispatch(function_name, event)`` runs one invocation.

    The port is bound on construction; ``stop()`` also releases a webhook that was never started.
    """

    def __init__(
        self,
        functions: frozenset[str],
        dispatch: Dispatch,
        port: int = 0,
        *,
        workers: int = WORKERS,
        max_waiting: int = MAX_WAITING,
        header_timeout: float = HEADER_TIMEOUT,
        body_timeout: float = BODY_TIMEOUT,
        write_timeout: float = WRITE_TIMEOUT,
        allowed_origins: Collection[str] = ANY_ORIGIN,
    ) -> None:
        self.functions = functions
        self.dispatch = dispatch
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.write_timeout = write_timeout
        self.allowed_origins = tuple(allowed_origins)
        self._max_waiting = max_waiting
        self._listener = socket.create_server(("127.0.0.1", port), backlog=128)
        self._listener.settimeout(ACCEPT_POLL)
        self._port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._waiting: collections.deque[_Connection] = collections.deque()
        self._active: set[_Connection] = set()
        self._stopping = False
        self._threads = [threading.Thread(target=self._accept, name="eventgrid-accept", daemon=True)]
        self._threads += [
            threading.Thread(target=self._work, name=f"eventgrid-worker-{n}", daemon=True) for n in range(workers)
        ]
        self._started = False

    @property
    def port(self) -> int:
        return self._port

    def url(self, function_name: str) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}?functionName={function_name}"

    def start(self) -> None:
        with self._lock:
            if self._stopping or self._started:
                raise RuntimeError("the webhook can be started once")
            self._started = True
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop accepting, close every connection that has not started an invocation, wait for those that have."""
        with self._lock:
            self._stopping = True
            waiting = list(self._waiting)
            self._waiting.clear()
            for connection in self._active:
                if not connection.invoked:
                    connection.shutdown()
            self._wake.notify_all()
        for connection in waiting:
            connection.close()
        if self._started:
            for thread in self._threads:
                thread.join()
        self._listener.close()

    # -- threads ----------------------------------------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
            try:
                sock, address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:  # e.g. out of file descriptors: let some close
                log.warning("eventgrid webhook: accept failed: %s", exc)
                time.sleep(ACCEPT_POLL)
                continue
            connection = _Connection(sock, address)
            with self._lock:
                queued = not self._stopping and len(self._waiting) < self._max_waiting
                if queued:
                    self._waiting.append(connection)
                    self._wake.notify()
            if not queued:
                self._refuse_busy(connection)

    @staticmethod
    def _refuse_busy(connection: _Connection) -> None:
        with contextlib.suppress(OSError):
            connection.sock.setblocking(False)
            connection.sock.send(_BUSY)
        connection.close()

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._waiting and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                connection = self._waiting.popleft()
                connection.deadline = time.monotonic() + self.header_timeout
                self._active.add(connection)
            try:
                _Handler(connection, self)
            except Exception as exc:  # the client went away, or we closed it on stop
                log.debug("eventgrid webhook: connection from %s ended: %r", connection.address, exc)
            finally:
                with self._lock:
                    self._active.discard(connection)
                    connection.close()

    def _begin_dispatch(self, connection: _Connection) -> bool:
        with self._lock:
            if self._stopping:
                return False
            connection.invoked = True
            return True
