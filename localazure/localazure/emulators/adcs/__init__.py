"""A local AD CS web-enrollment server (``/certsrv``) for tests and the local stack.

``start(state_dir, username=..., password=..., templates=...)`` serves HTTPS on a free loopback
port with its own TLS CA and signs with a ``LocalCA`` kept in ``state_dir``: each template is a
``Profile``, and a template with ``requires_approval`` leaves requests pending like AD CS manager
approval. ``auth="basic"`` checks a Basic header; ``auth="ntlm"`` serves NTLM through pyspnego's acceptor with
Extended Protection (the channel binding of this server's TLS certificate) enforced, as IIS hardened
against NTLM relay does; ``auth="negotiate"`` serves Kerberos with the service keytab of ``HTTP/localhost``
(``keytab=``), Extended Protection enforced too, answering as ``localhost`` so clients ask for that SPN.

The CA's CRL is published at ``crl_url`` (``/CertEnroll/<CA name>.crl``, no logon), over plain HTTP as AD CS
publishes it (also on the HTTPS port), and every certificate issued names it; ``revoke_serial`` is the CA operator's
``certutil -revoke``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from localazure.ca_publisher import CaPublisher
from localazure.emulators.adcs import pages
from localazure.emulators.adcs.auth import (
    BasicGate,
    Gate,
    NegotiateGate,
    NtlmGate,
    tls_server_end_point,
    tls_server_end_point_data,
    write_user_file,
)
from localazure.emulators.adcs.server import AdcsServer, EnrollmentBook, crl_path
from localazure.pki import loopback_tls, server_context
from renewal.ca.base import REVOCATION_REASONS, Revoked
from renewal.ca.local import LocalCA, Profile

DEFAULT_TEMPLATES = {
    "WebServer": Profile(),
    "WebServerApproval": Profile(requires_approval=True),
}


@dataclass
class RunningAdcs:
    url: str
    server: str
    ca_bundle: str
    ca: LocalCA
    _httpd: AdcsServer = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _publisher: CaPublisher = field(repr=False)
    auth: str = "basic"  # how it authenticates: basic, ntlm or negotiate

    def approve(self, request_id: str | int) -> None:
        """What a CA manager does for a pending request in the Certification Authority console."""
        self._httpd.book.approve(int(request_id))

    def deny(self, request_id: str | int, message: str = pages.ADMIN_DENIED) -> None:
        self._httpd.book.deny(int(request_id), message)

    @property
    def crl_url(self) -> str:
        """Where the CA's CRL is published (its certificates' CRL Distribution Point), over HTTP."""
        return self._publisher.crl_url

    def use_clock(self, clock: Callable[[], datetime]) -> None:
        """The CA signs and publishes its CRL on ``clock`` from now on (a stack's emulated clock, moved forward: on
        the real one its CRL, current for a day, would look stale to functions reading the moved clock)."""
        self.ca.use_clock(clock)

    def revoke_serial(self, serial_hex: str, reason_code: int) -> Revoked:
        """What the CA's operator does with ``certutil -revoke SERIAL REASONCODE``; the CRL served lists it at once."""
        names = {code: name for name, code in REVOCATION_REASONS.items()}
        if reason_code not in names:
            raise ValueError(f"reason code {reason_code}: the emulator revokes with {sorted(names)}")
        return self.ca.revoke_serial(serial_hex, names[reason_code])

    def lock_out(self, username: str) -> None:
        """The account (NTLM ``DOMAIN\\user``, Kerberos ``user@REALM``) is refused whatever its password or ticket,
        as a locked-out or unauthorised domain account is."""
        self._windows_gate().locked_out.add(username)

    @property
    def refusals(self) -> list[str]:
        """Why logons were refused, in order: NTLM ``BadBindingsError``, ``InvalidTokenError``; Kerberos the GSSAPI
        error (``BadChannelBindingsError``...) or ``NoChannelBinding``; both ``AccountLockedOut``."""
        return self._windows_gate().refusals

    def _windows_gate(self) -> NtlmGate | NegotiateGate:
        gate = self._httpd.gate
        if not isinstance(gate, NtlmGate | NegotiateGate):
            raise ValueError("this server was started without NTLM or Kerberos (start(..., auth='ntlm'|'negotiate'))")
        return gate

    def fail_next(self, *statuses: int, path: str | None = None) -> None:
        """The next requests (to ``path`` only, when given) answer with these HTTP statuses (an IIS in trouble, a
        proxy refusing)."""
        self._httpd.faults.extend((status, path) for status in statuses)

    def stop(self) -> None:
        self._publisher.stop()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


def start(
    state_dir: Path,
    *,
    username: str = "",
    password: str = "",
    templates: dict[str, Profile] | None = None,
    auth: str = "basic",
    keytab: Path | None = None,
) -> RunningAdcs:
    """``username`` is ``DOMAIN\\user`` for NTLM, as the client must send it; ``keytab`` holds the key of
    ``HTTP/localhost`` for ``negotiate``."""
    state_dir = Path(state_dir)
    profiles = dict(templates if templates is not None else DEFAULT_TEMPLATES)
    ca = LocalCA(state_dir / "ca", profiles=profiles, create=True)
    tls = loopback_tls(state_dir / "tls", "adcs")
    gate: Gate
    if auth == "basic":
        gate = BasicGate(username, password)
    elif auth == "ntlm":
        users = write_user_file(state_dir / "ntlm-users", username, password)
        gate = NtlmGate(users, tls_server_end_point(tls.cert_pem.read_bytes()))
    elif auth == "negotiate" and keytab is not None:
        gate = NegotiateGate(Path(keytab), tls_server_end_point_data(tls.cert_pem.read_bytes()))
    else:
        raise ValueError(
            f"auth {auth!r}: the local /certsrv server serves 'basic', 'ntlm' or 'negotiate' (with keytab=)"
        )
    httpd = AdcsServer(("127.0.0.1", 0), EnrollmentBook(ca), gate)
    httpd.socket = server_context(tls).wrap_socket(httpd.socket, server_side=True)
    host = f"{'localhost' if auth == 'negotiate' else '127.0.0.1'}:{httpd.server_address[1]}"
    publisher = CaPublisher(ca, crl_path(ca))
    ca.crl_url = publisher.crl_url  # known once the port is, set before the first request
    thread = threading.Thread(target=httpd.serve_forever, name="adcs-emulator", daemon=True)
    thread.start()
    return RunningAdcs(f"https://{host}/certsrv/", host, str(tls.ca_pem), ca, httpd, thread, publisher, auth)
