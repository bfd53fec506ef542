"""HTTPS server speaking the Logs Ingestion API's upload call, plus a small admin API for the local stack.

``POST /dataCollectionRules/{immutableId}/streams/{stream}?api-version=2023-01-01``
with ``Authorization: Bearer``, JSON or gzip body → 204. Rows land in
``<state>/logs/<stream>.jsonl``; ``GET /_emulator/rows[?stream=]`` serves them and
``GET /_emulator/requests`` lists the calls received.
"""

from __future__ import annotations

import gzip
import hmac
import json
import re
import socket
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from localazure.emulators.logs.dcr import SchemaError, check_rows

API_VERSION = "2023-01-01"
MAX_BODY_BYTES = 1024 * 1024
Reply = tuple[int, Any, "dict[str, str] | None"]
UPLOAD_PATH = re.compile(r"^/dataCollectionRules/(?P<rule>[^/]+)/streams/(?P<stream>[^/]+)$")


class RowStore:
    """Append-only JSON lines per stream; the file is what ``certlc dashboard --rows`` reads."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, stream: str) -> Path:
        return self.directory / f"{stream}.jsonl"

    def append(self, stream: str, rows: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows)
        with self.lock, self.path(stream).open("a", encoding="utf-8") as handle:
            handle.write(text)

    def rows(self, stream: str) -> list[dict[str, Any]]:
        with self.lock:
            if not self.path(stream).exists():
                return []
            lines = self.path(stream).read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line]

    def log(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.requests.append(entry)


class LogsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], rule_id: str, streams: dict[str, dict[str, str]], token: str,
                 store: RowStore) -> None:  # fmt: skip
        super().__init__(address, Handler)
        self.rule_id = rule_id
        self.streams = streams
        self.token = token
        self.store = store

    def get_request(self) -> tuple[Any, Any]:
        """No Nagle delay: headers and body go out as separate writes."""
        connection, address = super().get_request()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, address


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LogsServer

    def log_message(self, format: str, *args: Any) -> None:  # the request log replaces stderr noise
        return

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode("utf-8")
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if data:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    @staticmethod
    def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
        return status, {"error": {"code": code, "message": message}}, headers

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/_emulator/rows":
            stream = query.get("stream", [next(iter(self.server.streams))])[0]
            self._send(200, self.server.store.rows(stream))
        elif url.path == "/_emulator/requests":
            with self.server.store.lock:
                requests = list(self.server.store.requests)
            self._send(200, requests)
        elif url.path == "/_emulator/health":
            self._send(200, {"status": "ok", "dcrImmutableId": self.server.rule_id})
        else:
            self._send(*self._error(404, "NotFound", f"no such path: {url.path}"))

    def do_POST(self) -> None:
        """The call is logged before the reply, so a client that got its answer sees it in the log."""
        length = int(self.headers.get("Content-Length") or 0)
        entry: dict[str, Any] = {"path": urlsplit(self.path).path, "body_bytes": length, "rows": 0}
        status, body, headers = self._upload(length, entry)
        entry["status"] = status
        self.server.store.log(entry)
        self._send(status, body, headers)

    def _upload(self, length: int, entry: dict[str, Any]) -> Reply:
        url = urlsplit(self.path)
        match = UPLOAD_PATH.match(url.path)
        if not match:
            self._drain(length)
            return self._error(404, "NotFound", f"no such path: {url.path}")
        if parse_qs(url.query).get("api-version") != [API_VERSION]:
            self._drain(length)
            return self._error(400, "InvalidApiVersion", f"api-version must be {API_VERSION}")
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not hmac.compare_digest(auth[7:].encode(), self.server.token.encode()):
            self._drain(length)
            return self._error(401, "InvalidToken", "missing or invalid bearer token",
                               {"WWW-Authenticate": 'Bearer resource="https://monitor.azure.com"'})  # fmt: skip
        if match["rule"] != self.server.rule_id:
            self._drain(length)
            return self._error(404, "DataCollectionRuleNotFound", f"no data collection rule {match['rule']}")
        columns = self.server.streams.get(match["stream"])
        if columns is None:
            self._drain(length)
            return self._error(404, "InvalidStream", f"stream {match['stream']} is not declared in the rule")
        if length > MAX_BODY_BYTES:
            self._drain(length)
            return self._error(413, "ContentLengthLimitExceeded", f"request body {length} bytes > {MAX_BODY_BYTES}")
        raw = self.rfile.read(length)
        try:
            body = self._decode(raw)
        except (OSError, EOFError, zlib.error):
            return self._error(400, "InvalidContentEncoding", "the body is not valid gzip")
        entry["decoded_bytes"] = len(body)
        if len(body) > MAX_BODY_BYTES:
            return self._error(
                413, "ContentLengthLimitExceeded", f"uncompressed body {len(body)} bytes > {MAX_BODY_BYTES}"
            )
        try:
            rows = check_rows(json.loads(body), columns)
        except (ValueError, SchemaError) as error:
            return self._error(400, "InvalidPayload", str(error))
        self.server.store.append(match["stream"], rows)
        entry["rows"] = len(rows)
        return 204, None, None

    def _decode(self, raw: bytes) -> bytes:
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            return gzip.decompress(raw)
        return raw

    def _drain(self, length: int) -> None:
        """Read an unwanted body so the keep-alive connection stays usable."""
        while length > 0:
            chunk = self.rfile.read(min(length, 65536))
            if not chunk:
                return
            length -= len(chunk)
