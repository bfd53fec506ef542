"""Kerberos (``Negotiate``) for AD CS web enrollment, on a worker with a Kerberos identity of its own.

certsrv has no Kerberos method, so its session gets requests-kerberos's ``HTTPKerberosAuth`` (on pyspnego and
gssapi, kept by pyspnego's author): mutual authentication required (the web server must prove it holds the
key of ``HTTP/<server>``), and over HTTPS the ``tls-server-end-point`` channel binding of the certificate it
sees, which IIS's Extended Protection checks. There is no password: the ticket comes from the process's
credential cache (``KRB5CCNAME``), or MIT Kerberos gets one by itself from the client keytab named by
``KRB5_CLIENT_KTNAME``, as a service does. This needs the optional ``kerberos`` extra (gssapi has no Linux
wheels: it builds against libkrb5-dev), which the Functions app in Azure does not install.

A Kerberos failure before the web server is asked (no ticket, unknown principal, stale key, clock skew, an SPN
nobody holds) is a configuration error naming the cause; only a KDC that cannot be reached is transient. Each
response handler runs a bounded number of handshakes (requests-kerberos gives up after a second 401), so a
refusing server ends as one 401 for the adapter to explain, never as a loop.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from requests_kerberos import REQUIRED, HTTPKerberosAuth
from requests_kerberos.exceptions import KerberosExchangeError, MutualAuthenticationError

from renewal.ca.base import CaConfigError, CaUnavailable
from renewal.ca.kerberos_errors import explain_kerberos_failure

_TOKEN = re.compile(r"[A-Za-z0-9+/]{32,}={0,2}")  # a base64 Kerberos token (a ticket and its authenticator)
_TOKEN_LOGGERS = ("requests_kerberos.kerberos_", "spnego._gss", "spnego._context")  # they log tokens at DEBUG


def kerberos_failure(host: str, error: str) -> CaConfigError | CaUnavailable:
    """What a Kerberos error on this side means: a KDC out of reach is transient (retried), everything else is this
    worker's configuration and does not mend by retrying."""
    failure = explain_kerberos_failure(error, spn=f"HTTP/{host.split(':')[0]}", setting="CERTLC_ADCS_SERVER")
    where = f"Kerberos for AD CS web enrollment at {host}"
    if failure.transient:
        return CaUnavailable(f"{where}: the KDC is unreachable ({failure.cause})")
    explained = f": {failure.hint}" if failure.hint else ""
    return CaConfigError(f"{where} failed before the web server was asked: {failure.cause}{explained}")


class KerberosAuth(HTTPKerberosAuth):
    """requests-kerberos with its failures turned into the CA errors the workflow handles, and every handshake's
    answer checked (not only the first one's). Its handshake state (per host) is not safe to share between threads:
    one per session, and the AD CS adapter keeps a session per thread."""

    def __init__(self, principal: str | None = None) -> None:
        super().__init__(mutual_authentication=REQUIRED, principal=principal)
        for name in _TOKEN_LOGGERS:
            logging.getLogger(name).addFilter(_REDACT)

    def generate_request_header(self, response: Any, host: str, is_preemptive: bool = False) -> str:
        try:
            return super().generate_request_header(response, host, is_preemptive)
        except KerberosExchangeError as exc:  # the base class would log it and return the 401 unexplained
            raise kerberos_failure(host, str(exc.__cause__ or exc)) from None

    def handle_401(self, response: Any, **kwargs: Any) -> Any:
        self.auth_done = False  # a new handshake (a new connection): its answer must authenticate the server too
        return super().handle_401(response, **kwargs)

    def handle_other(self, response: Any) -> Any:
        try:
            return super().handle_other(response)
        except MutualAuthenticationError:
            raise CaConfigError(
                f"AD CS web enrollment at {response.url.split('/')[2]} did not prove it is HTTP/<server> (Kerberos "
                "mutual authentication failed): something other than the web-enrollment server answered"
            ) from None


class _NoTokensInLogs(logging.Filter):
    """requests-kerberos and pyspnego log each Kerberos token at DEBUG; a token carries a ticket."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _TOKEN.sub("[redacted]", str(record.msg))
        if isinstance(record.args, tuple):
            record.args = tuple(_TOKEN.sub("[redacted]", a) if isinstance(a, str) else a for a in record.args)
        return True


_REDACT = _NoTokensInLogs()
