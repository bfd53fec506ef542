"""What the ARM emulators (Azure DNS, App Service) share: ARM's error answer and their HTTPS front on loopback.

ARM answers errors as ``{"error": {"code", "message"}}`` (CloudError in the DNS specification,
DefaultErrorResponse in the Web one; both have these two members). The front serves one emulator's ``handle``
over HTTPS, to loopback callers only, and writes its ``(status, body, headers)`` as JSON.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import logging
import ssl
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)

Handle = Callable[[str, str, Any, bytes], tuple[int, Any, Mapping[str, str]]]


class _QuietServer(ThreadingHTTPServer):
    """A client that gives up during the TLS handshake (a test's wrong CA on purpose, say) is the client's
    business: logged at debug, never a traceback on the test process's stderr."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class ArmError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


CHALLENGE = 'Bearer authorization_uri="https://login.windows.net/", error="invalid_token"'


class RoleGate:
    """ARM's two gates as the emulators answer them: a bearer token it knows (else 401 with a challenge), then an
    action the token's role allows (else 403). Roles are sets of action patterns (``*/read``)."""

    def __init__(self, roles: Mapping[str, frozenset[str]], tokens: Mapping[str, str]) -> None:
        unknown = set(tokens.values()) - set(roles)
        if unknown:
            raise ValueError(f"unknown role(s) {sorted(unknown)}: use one of {sorted(roles)}")
        self.roles = dict(roles)
        self.tokens = dict(tokens)

    def role(self, authorization: str | None) -> str:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ArmError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
                {"WWW-Authenticate": CHALLENGE},
            )
        role = self.tokens.get(token.strip())
        if role is None:
            raise ArmError(
                401, "InvalidAuthenticationToken", "The access token is invalid.", {"WWW-Authenticate": CHALLENGE}
            )
        return role

    def allowed(self, role: str, action: str) -> bool:
        return any(fnmatch.fnmatch(action.lower(), pattern.lower()) for pattern in self.roles[role])

    def authorize(self, role: str, action: str, scope: str) -> None:
        if not self.allowed(role, action):
            raise ArmError(
                403,
                "AuthorizationFailed",
                f"The client with role '{role}' does not have authorization to perform action '{action}' "
                f"over scope '{scope}' or the scope is invalid.",
            )


def require_api_version(query: Mapping[str, str], supported: tuple[str, ...], unknown: tuple[str, str]) -> None:
    """ARM refuses a request without ``api-version``, and one the provider does not offer in its own words:
    ``unknown`` is that provider's (code, message start) for a version it does not have."""
    value = query.get("api-version")
    if not value:
        raise bad_request(
            "The api-version query parameter (?api-version=) is required for all requests.",
            "MissingApiVersionParameter",
        )
    if value not in supported:
        code, start = unknown
        raise bad_request(f"{start} '{value}'. The supported api-versions are '{', '.join(supported)}'.", code)


def bad_request(message: str, code: str = "BadRequest") -> ArmError:
    return ArmError(400, code, message)


class HttpsListener:
    """One emulator's HTTPS origin on loopback: ``handle(method, target, headers, body)`` answers each request."""

    def __init__(
        self, handle: Handle, context: ssl.SSLContext, *, name: str, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True
            server_version = f"certlc-{name}-emulator"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length > 0 else b""
                if not ipaddress.ip_address(self.client_address[0]).is_loopback:
                    status, answer, headers = 403, {"error": {"code": "Forbidden", "message": "loopback only"}}, {}
                else:
                    status, answer, headers = handle(self.command, self.path, self.headers, body)
                payload = b"" if answer is None else json.dumps(answer).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("x-ms-request-id", "certlc-emulator")
                if payload:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PUT = do_DELETE = do_PATCH = do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:
                log.debug(format, *args)

        self._server = _QuietServer((host, port), Handler)
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True, do_handshake_on_connect=False)
        self.url = f"https://{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"{name}-arm", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
