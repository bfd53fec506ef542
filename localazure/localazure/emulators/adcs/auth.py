"""How the local ``/certsrv`` server authenticates: Basic, or NTLM or Kerberos with Extended Protection, as IIS does.

NTLM authenticates a TCP connection, not a request: each connection gets its own acceptor
(``spnego.server``), the handshake runs over 401 answers on that connection, and once it succeeds the
connection stays authenticated (IIS's default). Extended Protection is enforced: the acceptor is given the
channel binding of the server's own TLS certificate (RFC 5929 ``tls-server-end-point``), so a client that
sends none, the all-zero binding of a client that has none (which pyspnego alone would take), or the binding
of another certificate (a TLS-terminating proxy in between), is refused.

pyspnego's NTLM acceptor reads its accounts from the file named by ``NTLM_USER_FILE`` in the environment,
while it is created and on its last step; the variable is set only around those calls, under a lock, and
put back, so it never outlives them.

Kerberos (``Negotiate``, RFC 4559) goes through ``gssapi`` directly, the library pyspnego itself calls on Linux:
its credential store takes the service keytab by path (no process-wide ``KRB5_KTNAME``), and the accepted
context says whether the client's channel binding matched (``channel_bound``), which Extended Protection
set to Required demands. The answer on success carries the server's token, so the client can authenticate
the server (mutual authentication).
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from localazure.pki import write_private

_ENV_LOCK = threading.Lock()
_NTLM_NEGOTIATE = b"NTLMSSP\x00\x01\x00\x00\x00"
_NTLM_AUTHENTICATE = b"NTLMSSP\x00\x03\x00\x00\x00"
_UNBOUND = b"\x00" * 16  # MS-NLMP: the channel binding of a client that has none to give


@dataclass
class Connection:
    """What one TCP connection has done to authenticate: the handshake in progress, or who it is."""

    context: Any = None
    principal: str | None = None


@dataclass(frozen=True)
class Verdict:
    """Admitted, or a 401 with this ``WWW-Authenticate`` value; when admitted, a ``challenge`` is the server's
    last token (Kerberos mutual authentication), sent with the answer."""

    principal: str | None
    challenge: str = ""


class Gate(Protocol):
    def check(self, header: str | None, connection: Connection) -> Verdict: ...


@dataclass
class BasicGate:
    username: str
    password: str

    def check(self, header: str | None, connection: Connection) -> Verdict:
        expected = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        if hmac.compare_digest((header or "").encode(), expected.encode()):
            return Verdict(self.username)
        return Verdict(None, 'Basic realm="certsrv"')


@dataclass
class NtlmGate:
    """NTLM through pyspnego's acceptor with the accounts in ``user_file`` and the server's channel binding."""

    user_file: Path
    bindings: Any  # spnego.channel_bindings.GssChannelBindings
    locked_out: set[str] = field(default_factory=set)  # accounts refused whatever their password
    refusals: list[str] = field(default_factory=list)  # why logons failed, as the acceptor said (never a secret)

    def check(self, header: str | None, connection: Connection) -> Verdict:
        if connection.principal:
            return Verdict(connection.principal)
        scheme, _, encoded = (header or "").partition(" ")
        if scheme.lower() != "ntlm" or not encoded.strip():
            connection.context = None
            return Verdict(None, "NTLM")
        try:
            token = base64.b64decode(encoded, validate=True)
        except ValueError:
            return self._refuse(connection, "MalformedToken")
        if connection.context is None or token.startswith(_NTLM_NEGOTIATE):
            connection.context = self._acceptor()
        return self._step(token, connection)

    def _refuse(self, connection: Connection, why: str) -> Verdict:
        """A fresh 401, as IIS answers a failed logon; the connection must start its handshake again."""
        connection.context = None
        self.refusals.append(why)
        return Verdict(None, "NTLM")

    def _step(self, token: bytes, connection: Connection) -> Verdict:
        import spnego.exceptions

        if _unbound(token):
            return self._refuse(connection, "NoChannelBinding")
        try:
            with self._accounts():
                answer = connection.context.step(token)
        except spnego.exceptions.SpnegoError as exc:  # wrong password, bad binding: IIS answers a fresh 401
            return self._refuse(connection, type(exc).__name__)
        except ValueError:  # a leg of another connection's handshake (its AUTHENTICATE with no NEGOTIATE here)
            return self._refuse(connection, "OutOfSequence")
        if not connection.context.complete:
            return Verdict(None, "NTLM " + base64.b64encode(answer or b"").decode())
        principal = str(connection.context.client_principal)
        connection.context = None
        if principal.lower() in {name.lower() for name in self.locked_out}:
            return self._refuse(connection, "AccountLockedOut")
        connection.principal = principal
        return Verdict(principal)

    def _acceptor(self) -> Any:
        import spnego

        with self._accounts():
            return spnego.server(service="HTTP", protocol="ntlm", channel_bindings=self.bindings)

    @contextlib.contextmanager
    def _accounts(self) -> Iterator[None]:
        with _ENV_LOCK:
            before = os.environ.get("NTLM_USER_FILE")
            os.environ["NTLM_USER_FILE"] = str(self.user_file)
            try:
                yield
            finally:
                if before is None:
                    del os.environ["NTLM_USER_FILE"]
                else:
                    os.environ["NTLM_USER_FILE"] = before


@dataclass
class NegotiateGate:
    """Kerberos through ``Negotiate`` with the service keytab (``HTTP/<host>``) and the server's channel binding."""

    keytab: Path
    bindings: bytes  # the application data of the server certificate's tls-server-end-point binding
    locked_out: set[str] = field(default_factory=set)  # principals refused after a good handshake
    refusals: list[str] = field(default_factory=list)  # why logons failed (GSSAPI error names, never a token)

    def check(self, header: str | None, connection: Connection) -> Verdict:
        import gssapi
        from gssapi.raw import ChannelBindings

        if connection.principal:
            return Verdict(connection.principal)
        scheme, _, encoded = (header or "").partition(" ")
        if scheme.lower() != "negotiate" or not encoded.strip():
            return Verdict(None, "Negotiate")
        try:
            token = base64.b64decode(encoded, validate=True)
        except ValueError:
            self.refusals.append("MalformedToken")
            return Verdict(None, "Negotiate")
        credentials = gssapi.Credentials(usage="accept", store={"keytab": f"FILE:{self.keytab}"})
        context = gssapi.SecurityContext(
            creds=credentials, usage="accept", channel_bindings=ChannelBindings(application_data=self.bindings)
        )
        try:  # gssapi may defer a failure (a wrong binding) to the first look at the context after the step
            answer = context.step(token)
            refusal = _kerberos_refusal(context, self.locked_out)
        except gssapi.exceptions.GSSError as exc:  # a ticket for another key, a wrong binding: IIS answers a 401
            refusal = type(exc).__name__
        if refusal:
            self.refusals.append(refusal)
            return Verdict(None, "Negotiate")
        connection.principal = str(context.initiator_name)
        return Verdict(connection.principal, "Negotiate " + base64.b64encode(answer or b"").decode())


def _kerberos_refusal(context: Any, locked_out: set[str]) -> str | None:
    """Why an accepted Kerberos context is still refused: unfinished (the local server takes Kerberos's single
    token, not a multi-leg exchange), no channel binding (Extended Protection required), or a refused principal."""
    import gssapi

    if not context.complete:
        return "IncompleteHandshake"
    if gssapi.RequirementFlag.channel_bound not in context.actual_flags:
        return "NoChannelBinding"
    if str(context.initiator_name).lower() in {name.lower() for name in locked_out}:
        return "AccountLockedOut"
    return None


def _unbound(token: bytes) -> bool:
    """An NTLMv2 AUTHENTICATE whose channel binding is all zeros, the client saying it has none. pyspnego's acceptor
    takes it (Extended Protection "when supported"); IIS with Extended Protection required, as AD CS web
    enrollment should run (KB5005413), refuses it. A binding that is missing or wrong the acceptor refuses itself."""
    from spnego._ntlm_raw.messages import Authenticate, AvId, NTClientChallengeV2

    if not token.startswith(_NTLM_AUTHENTICATE):
        return False
    try:
        response = Authenticate.unpack(token).nt_challenge_response or b""
        if len(response) <= 24:  # not NTLMv2: no channel binding to look at
            return False
        pairs = NTClientChallengeV2.unpack(response[16:]).av_pairs
    except (ValueError, IndexError, KeyError):  # malformed: the acceptor refuses it
        return False
    return pairs.get(AvId.channel_bindings) == _UNBOUND


def write_user_file(path: Path, username: str, password: str) -> Path:
    """The acceptor's account file, ``DOMAIN:USER:PASSWORD`` (owner-only: it holds a password)."""
    domain, _, user = username.rpartition("\\")
    write_private(path, f"{domain}:{user}:{password}\n".encode())
    return path


def tls_server_end_point(certificate_pem: bytes) -> Any:
    """The channel binding of a TLS certificate (RFC 5929 4.1: its signature hash, SHA-256 for MD5/SHA-1)."""
    from spnego.channel_bindings import GssChannelBindings

    return GssChannelBindings(application_data=tls_server_end_point_data(certificate_pem))


def tls_server_end_point_data(certificate_pem: bytes) -> bytes:
    """The application data of a TLS certificate's ``tls-server-end-point`` channel binding."""
    cert = x509.load_pem_x509_certificate(certificate_pem)
    algorithm = cert.signature_hash_algorithm
    if algorithm is None or algorithm.name in ("md5", "sha1"):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(cert.public_bytes(Encoding.DER))
    return b"tls-server-end-point:" + digest.finalize()
