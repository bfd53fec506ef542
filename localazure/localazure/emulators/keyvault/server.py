"""HTTPS listeners (one per vault) and the request pipeline: log, faults, auth, throttling, route."""

from __future__ import annotations

import ipaddress
import json
import logging
import ssl
import threading
import time
import uuid
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from . import routes, schemas
from .admin import PREFIX, Admin, RequestLog
from .auth import Action, TokenAuthorizer
from .bundles import Vault
from .clock import Clock
from .errors import KeyVaultError, Response, bad_parameter
from .faults import Faults
from .throttling import Throttle

log = logging.getLogger(__name__)
SERVICE_VERSION = "1.9.378.1-certlc-emulator"


class Pipeline:
    """Everything a vault request goes through, shared by all listeners."""

    def __init__(
        self,
        services: routes.Services,
        authorizer: TokenAuthorizer,
        clock: Clock,
        requests: RequestLog,
        faults: Faults,
        throttle: Throttle,
        admin: Admin,
    ) -> None:
        self.services = services
        self.authorizer = authorizer
        self.clock = clock
        self.requests = requests
        self.faults = faults
        self.throttle = throttle
        self.admin = admin

    def handle(self, vault: str, base_url: str, method: str, target: str, headers: Any, body: bytes) -> Response:
        split = urlsplit(target)
        path = split.path
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        if path == PREFIX or path.startswith(PREFIX + "/"):
            try:
                parsed = _json(body)
            except (ValueError, RecursionError) as exc:
                return Response(400, {"error": {"code": "BadRequest", "message": f"invalid JSON body: {exc}"}})
            return self.admin.handle(method, path, parsed)
        try:
            response = self._vault_request(vault, base_url, method, path, query, headers, body)
        except KeyVaultError as exc:
            response = Response(exc.status, exc.body(), exc.headers)
        except Exception:  # a bug, never the client's fault: answer it instead of dropping the connection
            log.exception("%s %s %s failed", vault, method, path)
            response = Response(
                500, {"error": {"code": "InternalServerError", "message": f"The emulator failed on {method} {path}"}}
            )
        self.requests.add(
            {
                "method": method,
                "path": path,
                "query": query,
                "vault": vault,
                "status": response.status,
                "time": self.clock.now().isoformat(),
            }
        )
        return response

    def _vault_request(
        self, vault: str, base_url: str, method: str, path: str, query: dict[str, str], headers: Any, body: bytes
    ) -> Response:
        fault = self.faults.match(method, path)
        if fault is not None:
            if fault.latency_ms:
                time.sleep(fault.latency_ms / 1000)
            if fault.status is not None:
                extra = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
                return Response(fault.status, fault.error_body(), extra)
        found = routes.match(method, path)
        action = found[0].action if found else Action.CERT_READ
        self.authorizer.authorize(headers.get("Authorization"), action, vault)
        if found is None:
            raise KeyVaultError(404, "NotFound", f"The emulator does not implement {method} {path}")
        route, params = found
        # Weighted by the certificate's key type; counted per caller (the User-Agent the SDK sends).
        weight = routes.throttle_weight(route, self.services, vault, params, body)
        self.throttle.check(vault, route.throttle_kind, weight, headers.get("User-Agent"))
        api_version = schemas.check_api_version(query)
        operation = schemas.OPERATIONS[route.operation]
        parsed = None
        if operation.body is not None:  # a body where the spec declares none is ignored
            try:
                parsed = _json(body)
            except (ValueError, RecursionError) as exc:
                raise bad_parameter(f"The request body is not valid JSON: {str(exc)[:200]}") from exc
        schemas.check_request(operation, params, query, parsed)
        return route.handler(self.services, Vault(vault, base_url, api_version), params, query, parsed)


def _json(body: bytes) -> Any:
    return json.loads(body) if body.strip() else None


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialize {type(value).__name__}")


def _handler_class(pipeline: Pipeline, vault: str, base_url: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall
        server_version = "certlc-keyvault-emulator"

        def _serve(self) -> None:
            raw_length = (self.headers.get("Content-Length") or "0").strip()
            length = int(raw_length) if raw_length.isascii() and raw_length.isdigit() else -1
            body = self.rfile.read(length) if length > 0 else b""
            if length < 0:
                self.close_connection = True  # the body's end is unknown: answer, then close
                response = Response(400, bad_parameter("The Content-Length header is not a valid length").body())
            elif not ipaddress.ip_address(self.client_address[0]).is_loopback:
                response = Response(403, {"error": {"code": "Forbidden", "message": "loopback clients only"}})
            else:
                response = pipeline.handle(vault, base_url, self.command, self.path, self.headers, body)
            payload = b"" if response.body is None else json.dumps(response.body, default=_default).encode()
            self.send_response(response.status)
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Pragma", "no-cache")
            self.send_header("Expires", "-1")
            self.send_header("x-ms-request-id", str(uuid.uuid4()))
            self.send_header("x-ms-keyvault-region", "local")
            self.send_header("x-ms-keyvault-service-version", SERVICE_VERSION)
            for name, value in response.headers.items():
                self.send_header(name, value)
            if payload:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = _serve

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", vault, format % args)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class Listener:
    """One vault's HTTPS origin."""

    def __init__(self, pipeline: Pipeline, vault: str, host: str, port: int, context: ssl.SSLContext) -> None:
        self.vault = vault
        self._server = _Server((host, port), BaseHTTPRequestHandler, bind_and_activate=True)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True, do_handshake_on_connect=False)
        self.port = self._server.server_address[1]
        display_host = f"[{host}]" if ":" in host else host
        self.url = f"https://{display_host}:{self.port}"
        self._server.RequestHandlerClass = _handler_class(pipeline, vault, self.url)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name=f"kv-emulator-{vault}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
