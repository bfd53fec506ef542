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


@dataclass
class CaSetup:
    """A CA the stack renews with: its app settings, and what its CA manager can do (AD CS approval)."""

    description: str
    settings: dict[str, str]
    approve: Callable[[str], None] | None = None


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
    return CaSetup("the stack's local CA, in process (profile retired-template not offered)", {})


def _acme(directory: Path, running: contextlib.ExitStack) -> CaSetup:
    from localazure.servers import start_pebble

    pebble = running.enter_context(start_pebble(directory, domain_blocklist=[REFUSED_NAME]))
    return CaSetup(
        f"pebble at {pebble.directory_url} (challenges taken as answered; its policy refuses {REFUSED_NAME})",
        {
            "CERTLC_CA": "acme",
            "CERTLC_ACME_DIRECTORY": pebble.directory_url,
            "CERTLC_ACME_ACCOUNT_KEY": str(directory / "account-key.pem"),
            "CERTLC_ACME_CA_BUNDLE": str(pebble.ca_bundle),
            "CERTLC_ACME_HTTP01_WEBROOT": str(directory / "webroot"),
        },
    )


def _cfssl(directory: Path, running: contextlib.ExitStack) -> CaSetup:
    from localazure.servers import start_cfssl

    cfssl = running.enter_context(start_cfssl(directory))
    return CaSetup(
        f"cfssl serve at {cfssl.url} (profiles server and client)",
        {"CERTLC_CA": "cfssl", "CERTLC_CFSSL_URL": cfssl.url},
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
    )


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
