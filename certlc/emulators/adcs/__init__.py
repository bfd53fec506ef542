"""A local AD CS web-enrollment server (``/certsrv``) for tests and the local stack.

``start(state_dir, username=..., password=..., templates=...)`` serves HTTPS on a free loopback
port with its own TLS CA and signs with a ``LocalCA`` kept in ``state_dir``: each template is a
``Profile``, and a template with ``requires_approval`` leaves requests pending like AD CS manager
approval. ``auth="basic"`` checks a Basic header; ``auth="ntlm"`` serves NTLM through pyspnego's acceptor with
Extended Protection (the channel binding of this server's TLS certificate) enforced, as IIS hardened
against NTLM relay does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from certlc.emulators.adcs import pages
from certlc.emulators.adcs.auth import BasicGate, Gate, NtlmGate, tls_server_end_point, write_user_file
from certlc.emulators.adcs.server import AdcsServer, EnrollmentBook
from certlc.localstack.pki import loopback_tls, server_context
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
    auth: str = "basic"  # how it authenticates: basic or ntlm

    def approve(self, request_id: str | int) -> None:
        """What a CA manager does for a pending request in the Certification Authority console."""
        self._httpd.book.approve(int(request_id))

    def deny(self, request_id: str | int, message: str = pages.ADMIN_DENIED) -> None:
        self._httpd.book.deny(int(request_id), message)

    def lock_out(self, username: str) -> None:
        """The account is refused whatever its password, as a locked-out domain account is (NTLM only)."""
        self._ntlm_gate().locked_out.add(username)

    @property
    def refusals(self) -> list[str]:
        """Why NTLM logons were refused, in order: ``BadBindingsError``, ``InvalidTokenError``, ``AccountLockedOut``."""
        return self._ntlm_gate().refusals

    def _ntlm_gate(self) -> NtlmGate:
        gate = self._httpd.gate
        if not isinstance(gate, NtlmGate):
            raise ValueError("this server was started without NTLM (start(..., auth='ntlm'))")
        return gate

    def fail_next(self, *statuses: int) -> None:
        """The next requests answer with these HTTP statuses (an IIS in trouble, a proxy refusing)."""
        self._httpd.fail_statuses.extend(statuses)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


def start(
    state_dir: Path,
    *,
    username: str,
    password: str,
    templates: dict[str, Profile] | None = None,
    auth: str = "basic",
) -> RunningAdcs:
    """``username`` is ``DOMAIN\\user`` for NTLM, as the client must send it."""
    state_dir = Path(state_dir)
    ca = LocalCA(state_dir / "ca", profiles=dict(templates if templates is not None else DEFAULT_TEMPLATES))
    tls = loopback_tls(state_dir / "tls", "adcs")
    gate: Gate
    if auth == "basic":
        gate = BasicGate(username, password)
    elif auth == "ntlm":
        users = write_user_file(state_dir / "ntlm-users", username, password)
        gate = NtlmGate(users, tls_server_end_point(tls.cert_pem.read_bytes()))
    else:
        raise ValueError(f"auth {auth!r}: the local /certsrv server serves 'basic' or 'ntlm'")
    httpd = AdcsServer(("127.0.0.1", 0), EnrollmentBook(ca), gate)
    httpd.socket = server_context(tls).wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, name="adcs-emulator", daemon=True)
    thread.start()
    host = f"127.0.0.1:{httpd.server_address[1]}"
    return RunningAdcs(f"https://{host}/certsrv/", host, str(tls.ca_pem), ca, httpd, thread, auth)
