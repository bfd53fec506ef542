"""The CA each ``--ca`` renews with, started in the demo's folder and stopped with it, and its CA manager.

Every server is entered on one ``ExitStack`` as it starts, so a run that fails or is interrupted half-way stops the
ones already up; a tool that cannot be installed or a server that does not start is one line.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from certlc.demo.assessment import read_audit
from certlc.demo.seeds import APPROVAL_TEMPLATE, REFUSED_NAME

APPROVAL_TIMEOUT = 60.0  # seconds from the approval to the merge: the CA is asked again every ADCS_POLL_SECONDS
ADCS_POLL_SECONDS = 1


# What a CA says of a serial once the run is over: whether it is revoked there, and where that was read
CaAnswer = tuple[bool, str]


@dataclass
class CaSetup:
    """A CA the stack renews with: its app settings, what its CA manager can do (AD CS approval; revoke a certificate
    behind certlc's back, where certlc can see it), and how the demo reads from the CA whether a serial is revoked."""

    description: str
    settings: dict[str, str]
    approve: Callable[[str], None] | None = None
    revoke: Callable[[Any, str], None] | None = None  # (stack, certificate PEM): revoked for keyCompromise
    revoke_serial: Callable[[str], None] | None = None  # a person runs the `certutil -revoke` a notice names
    says: Callable[[Any, int], CaAnswer] = lambda _stack, _serial: (False, "not asked")
    follow_clock: Callable[[Callable[[], Any]], None] | None = None  # the CA signs on the stack's clock


@contextlib.contextmanager
def ca_server(ca: str, directory: Path, say: Callable[[str], None]) -> Iterator[CaSetup]:
    """The CA's server(s), started in ``directory`` and stopped afterwards; a tool that cannot be installed or a
    server that does not start is one line (``UserError``)."""
    from localazure.process import ServerStartError
    from localazure.tools import ToolMissing

    from certlc.cli import UserError

    with contextlib.ExitStack() as running:
        try:
            setup = _STARTERS[ca](directory, running)
        except (ToolMissing, ServerStartError, OSError) as exc:
            raise UserError(f"certlc demo --ca {ca}: the CA's server could not be started: {exc}") from exc
        say(f"CA: {setup.description}")
        yield setup


def _local(directory: Path, running: contextlib.ExitStack) -> CaSetup:
    return CaSetup(
        "the stack's local CA, in process (profile retired-template not offered)",
        {},
        revoke=_local_revoke,
        says=lambda stack, serial: _crl_says(
            stack.settings["CERTLC_LOCAL_CA_CRL_URL"], _local_ca(stack).certificate, serial
        ),
    )


def _local_ca(stack: Any) -> Any:
    """The stack's local CA, on the stack's clock as the stack publishes it."""
    from renewal.ca.local import LocalCA

    return LocalCA(Path(stack.settings["CERTLC_LOCAL_CA_DIR"]), clock=stack.now)


def _local_revoke(stack: Any, certificate_pem: str) -> None:
    """The CA operator's act, not certlc's: the serial on the CRL the stack publishes, reason keyCompromise."""
    _local_ca(stack).revoke(certificate_pem, "keyCompromise")


def _crl_says(url: str, issuer: Any, serial: int) -> CaAnswer:
    """Whether the CRL published at ``url``, signed by ``issuer``, lists ``serial`` (and why)."""
    import requests
    from cryptography import x509

    with requests.Session() as session:
        session.trust_env = False
        answer = session.get(url, timeout=10)
    if answer.status_code != 200:
        return False, f"its CRL {url} answered HTTP {answer.status_code}"
    crl = x509.load_der_x509_crl(answer.content)
    if not crl.is_signature_valid(issuer.public_key()):
        return False, f"its CRL {url} is not signed by the CA"
    entry = crl.get_revoked_certificate_by_serial_number(serial)
    if entry is None:
        return False, f"its CRL {url} does not list serial {serial:x}"
    try:
        reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.value
    except x509.ExtensionNotFound:
        reason = "no reason"
    return True, f"its CRL {url} lists serial {serial:x} ({reason})"


def _acme(directory: Path, running: contextlib.ExitStack) -> CaSetup:
    from localazure.servers import start_pebble

    pebble = running.enter_context(start_pebble(directory, domain_blocklist=[REFUSED_NAME]))

    def says(_stack: Any, serial: int) -> CaAnswer:
        """pebble's management interface: it publishes no CRL or OCSP, so this is the CA's own record."""
        import requests

        url = f"https://127.0.0.1:{pebble.management_port}/cert-status-by-serial/{serial:x}"
        with requests.Session() as session:
            session.trust_env = False
            answer = session.get(url, verify=str(pebble.ca_bundle), timeout=10)
        if answer.status_code != 200:
            return False, f"pebble's management interface answered HTTP {answer.status_code} for serial {serial:x}"
        body = answer.json()
        status, reason = body.get("Status"), body.get("Reason")
        return status == "Revoked", f"pebble's management interface: serial {serial:x} {status} (reason {reason})"

    return CaSetup(
        f"pebble at {pebble.directory_url} (challenges taken as answered; its policy refuses {REFUSED_NAME})",
        {
            "CERTLC_CA": "acme",
            "CERTLC_ACME_DIRECTORY": pebble.directory_url,
            "CERTLC_ACME_ACCOUNT_KEY": str(directory / "account-key.pem"),
            "CERTLC_ACME_CA_BUNDLE": str(pebble.ca_bundle),
            "CERTLC_ACME_HTTP01_WEBROOT": str(directory / "webroot"),
        },
        says=says,
    )


def _cfssl(directory: Path, running: contextlib.ExitStack) -> CaSetup:
    from localazure.servers import start_cfssl

    cfssl = running.enter_context(start_cfssl(directory))

    def says(_stack: Any, serial: int) -> CaAnswer:
        """cfssl's certificate database: it builds no CRL from it, so this is the CA's own record."""
        import sqlite3

        with contextlib.closing(sqlite3.connect(cfssl.database)) as db:
            rows = db.execute(
                "SELECT status, reason FROM certificates WHERE serial_number = ?", (str(serial),)
            ).fetchall()
        if len(rows) != 1:
            return False, f"cfssl's certificate database holds {len(rows)} rows for serial {serial:x}"
        status, reason = rows[0]
        return status == "revoked", f"cfssl's certificate database: serial {serial:x} {status} (reason {reason})"

    return CaSetup(
        f"cfssl serve at {cfssl.url} (profiles server and client)",
        {"CERTLC_CA": "cfssl", "CERTLC_CFSSL_URL": cfssl.url},
        says=says,
    )


def _adcs(directory: Path, running: contextlib.ExitStack) -> CaSetup:
    """The local /certsrv over NTLM and a slapd with the template objects. slapd takes simple binds by DN only, so
    the one account (web enrollment and the directory read, as in a domain) is named by its DN."""
    from localazure.emulators import adcs
    from localazure.ldap import BIND_DN, TEMPLATES, start_slapd

    from renewal.ca.local import Profile

    password = secrets.token_urlsafe(18)  # a throw-away account of this run's own servers
    slapd = start_slapd(directory / "ldap", password=password)
    running.callback(slapd.stop)
    offered = {cn: Profile(requires_approval=cn == APPROVAL_TEMPLATE) for cn, *_ in TEMPLATES}
    certsrv = adcs.start(directory / "certsrv", username=BIND_DN, password=password, templates=offered, auth="ntlm")
    running.callback(certsrv.stop)
    return CaSetup(
        f"AD CS web enrollment at {certsrv.url} over NTLM (templates {', '.join(offered)}; {APPROVAL_TEMPLATE} "
        f"needs a CA manager's approval), template names from {slapd.ldaps_url}",
        {
            "CERTLC_CA": "adcs",
            "CERTLC_CA_PROFILE": "WebServer",
            "CERTLC_ADCS_SERVER": certsrv.server,
            "CERTLC_ADCS_AUTH": "ntlm",
            "CERTLC_ADCS_USERNAME": BIND_DN,
            "CERTLC_ADCS_PASSWORD": password,
            "CERTLC_ADCS_CA_BUNDLE": certsrv.ca_bundle,
            "CERTLC_ADCS_POLL_SECONDS": str(ADCS_POLL_SECONDS),
            "CERTLC_ADCS_LDAP_URL": slapd.ldaps_url,
            "CERTLC_ADCS_LDAP_CA_BUNDLE": str(slapd.ca_pem),
        },
        certsrv.approve,
        revoke=lambda _stack, pem: _adcs_revoke(certsrv, pem),
        revoke_serial=lambda serial: certsrv.revoke_serial(serial, 1),  # 1: keyCompromise, as certutil takes it
        says=lambda _stack, serial: _crl_says(certsrv.crl_url, certsrv.ca.certificate, serial),
        follow_clock=lambda clock: _adcs_follow(certsrv, clock),
    )


def _adcs_revoke(certsrv: Any, certificate_pem: str) -> None:
    """The CA operator's ``certutil -revoke SERIAL 1`` (keyCompromise), knowing the certificate."""
    from cryptography import x509

    certsrv.revoke_serial(f"{x509.load_pem_x509_certificate(certificate_pem.encode()).serial_number:x}", 1)


def _adcs_follow(certsrv: Any, clock: Callable[[], Any]) -> None:
    """The emulated CA signs (certificates and its CRL) on the stack's clock, as the stack's own local CA does: on
    the real clock its CRL, current for a day, would be stale to functions whose clock the demo moved 15 days on."""
    certsrv.use_clock(clock)


_STARTERS: dict[str, Callable[[Path, contextlib.ExitStack], CaSetup]] = {
    "local": _local,
    "acme": _acme,
    "cfssl": _cfssl,
    "adcs": _adcs,
}


def approve_waiting(stack: Any, audit_file: Path, setup: CaSetup, say: Callable[[str], None]) -> list[str]:
    """As a CA manager would: approve each request the audit trail shows waiting, then let the queue ask the CA
    again until none waits (or ``APPROVAL_TIMEOUT``). The request ids approved."""
    from localazure.ports import poll_until

    waiting = waiting_requests(read_audit(audit_file))
    if setup.approve is None or not waiting:
        return []
    for name, request_id in waiting.items():
        say(f"{name}: CA request {request_id} waits for approval; approving it as a CA manager would")
        setup.approve(request_id)

    def merged_or_decided() -> bool:
        stack.settle()
        return not waiting_requests(read_audit(audit_file))

    try:
        poll_until(merged_or_decided, timeout=APPROVAL_TIMEOUT, interval=0.2, what="the approved requests")
    except TimeoutError:  # the outcomes say which still wait
        say(f"still waiting {APPROVAL_TIMEOUT:g} s after the approval")
    return list(waiting.values())


def waiting_requests(audit: list[dict[str, Any]]) -> dict[str, str]:
    """Certificate → the CA request id of renewals whose latest record is the CA leaving them pending."""
    latest = {(r.get("vault"), r.get("name")): r for r in audit}
    return {
        str(r["name"]): str(r["ca_request_id"])
        for r in latest.values()
        if r.get("event") == "pending" and r.get("ca_request_id")
    }
