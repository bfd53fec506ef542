"""Turning what happened on the wire into an ``Answer``: one line, never a traceback.

Every call the doctor makes has a deadline (``timeout`` seconds to connect and again for each read) and no
retries, so an address that does not answer costs a few seconds and one line, not a hang.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

from certlc.doctor.result import Answer
from renewal.errors import causes

MAX_MESSAGE = 240


def one_line(text: object, limit: int = MAX_MESSAGE) -> str:
    """The first non-empty line of ``text``, shortened to ``limit`` characters."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def sdk_options(timeout: float) -> dict[str, Any]:
    """Azure SDK client options: a deadline on connecting and on every read, and no retries."""
    return {"retry_total": 0, "connection_timeout": timeout, "read_timeout": timeout}


def why_unreachable(exc: BaseException, timeout: float) -> str:
    """Why nothing answered, in a few words: refused, timed out, TLS, name resolution, or the error itself."""
    wrapped = list(causes(exc))
    for cause in wrapped:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused (nothing listens there)"
    for cause in wrapped:
        if isinstance(cause, TimeoutError | socket.timeout) or "Timeout" in type(cause).__name__:
            return f"no answer within {timeout:g} s"
    for cause in wrapped:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate not trusted: {one_line(cause.verify_message or cause)}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS failed: {one_line(cause)}"
    for cause in wrapped:
        if isinstance(cause, socket.gaierror):
            return f"the host name does not resolve: {one_line(cause)}"
    for cause in wrapped:
        if isinstance(cause, ConnectionError):
            return f"connection failed: {one_line(cause) or type(cause).__name__}"
    return f"{type(exc).__name__}: {one_line(exc)}"


def answer_from_sdk_error(exc: Exception, timeout: float) -> Answer:
    """An Azure SDK exception as an ``Answer``: the HTTP status and error code, or why there was none."""
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

    response = getattr(exc, "response", None)
    if isinstance(exc, HttpResponseError) and response is not None:
        error = getattr(exc, "error", None)
        raw_code = getattr(exc, "error_code", None) or getattr(error, "code", None) or ""
        code = str(getattr(raw_code, "value", raw_code))  # storage's error codes are an enum
        inner = getattr(error, "innererror", None) or {}
        if isinstance(inner, dict) and inner.get("code"):
            code = f"{code}/{inner['code']}" if code else str(inner["code"])
        message = getattr(error, "message", None) or getattr(exc, "message", None) or str(exc)
        return Answer(status=exc.status_code, code=code, message=one_line(message))
    if isinstance(exc, ClientAuthenticationError):
        return Answer(message=f"the identity got no token: {one_line(getattr(exc, 'message', exc))}", no_token=True)
    return Answer(message=why_unreachable(exc, timeout), unreachable=True)


def http(method: str, url: str, *, timeout: float, verify: bool | str = True, **kwargs: Any) -> Answer:
    """One plain HTTP call with ``requests`` (the CA probes): the status and parsed JSON body, or why none."""
    import requests

    try:
        response = requests.request(method, url, timeout=(timeout, timeout), verify=verify, **kwargs)
    except requests.RequestException as exc:
        return Answer(message=why_unreachable(exc, timeout), unreachable=True)
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return Answer(status=response.status_code, message=one_line(response.reason or ""), body=body)
