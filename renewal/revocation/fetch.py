"""The network side of revocation checks: OCSP by POST, CRLs and caIssuers by GET, plain http, bounded.

Every call has a deadline and a size cap, and every failure is a ``FetchError`` whose message says what to look
at; the checker turns it into an ``unknown`` answer, so a sweep never fails for a CA's responder being down.
"""

from __future__ import annotations

import threading
from typing import Protocol

import requests

from renewal.clients import is_loopback_url
from renewal.errors import causes

DEFAULT_TIMEOUT = 10.0  # seconds, per request: a responder that slow is down for this sweep
MAX_BYTES = 10 * 1024 * 1024  # a CRL larger than this is not one certlc reads (the biggest public ones are ~5 MB)
OCSP_REQUEST = "application/ocsp-request"
MAX_REDIRECTS = 3


class FetchError(Exception):
    """The network or the server failed; the message names the URL and what went wrong."""


class Fetcher(Protocol):
    def post_ocsp(self, url: str, request_der: bytes) -> bytes: ...

    def get(self, url: str) -> bytes: ...


class HttpFetcher:
    """``requests`` with a session per thread (the sweep's threads share the fetcher, not a session).

    The session does not read the environment on each request (``trust_env`` off: no netrc, no CA bundle
    variables, which plain http does not need); the proxies are the environment's for the URL (``HTTP_PROXY``,
    ``NO_PROXY``), read per call, except for loopback URLs, which no proxy can reach and tests use.
    OCSP goes by POST (RFC 6960 A.1): GET's base64 URLs save nothing when answers are cached here anyway.
    """

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, max_bytes: int = MAX_BYTES) -> None:
        if timeout <= 0 or max_bytes <= 0:
            raise ValueError(f"timeout ({timeout}) and max_bytes ({max_bytes}) must be positive")
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._sessions = threading.local()

    def post_ocsp(self, url: str, request_der: bytes) -> bytes:
        return self._fetch("POST", url, data=request_der, headers={"Content-Type": OCSP_REQUEST})

    def get(self, url: str) -> bytes:
        return self._fetch("GET", url)

    def _fetch(self, method: str, url: str, **kwargs: object) -> bytes:
        proxies = {} if is_loopback_url(url) else requests.utils.get_environ_proxies(url)
        try:
            with self._session().request(
                method, url, timeout=self.timeout, stream=True, proxies=proxies, **kwargs
            ) as response:
                if response.status_code != 200:
                    raise FetchError(f"{url} answered HTTP {response.status_code} {response.reason}")
                return self._body(url, response)
        except requests.Timeout as exc:
            raise FetchError(f"{url} did not answer within {self.timeout:g} s") from exc
        except requests.RequestException as exc:
            raise FetchError(f"could not fetch {url}: {_why(exc)}") from exc

    def _body(self, url: str, response: requests.Response) -> bytes:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise FetchError(f"{url} sends {declared} bytes, more than the {self.max_bytes} certlc reads")
        body = bytearray()
        for chunk in response.iter_content(64 * 1024):
            body += chunk
            if len(body) > self.max_bytes:
                raise FetchError(f"{url} sends more than the {self.max_bytes} bytes certlc reads")
        return bytes(body)

    def _session(self) -> requests.Session:
        session = getattr(self._sessions, "session", None)
        if session is None:
            session = self._sessions.session = requests.Session()
            session.trust_env = False
            session.max_redirects = MAX_REDIRECTS
        return session


def _why(exc: BaseException) -> str:
    """The operating system's words (connection refused, name not known) rather than urllib3's nesting."""
    for cause in causes(exc):
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
    return type(exc).__name__
