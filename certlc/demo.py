"""``certlc demo``: the whole pipeline on the local stack, end to end, with a summary, through one CA.

It seeds a vault the way an operator's vault looks on the day certlc is installed (an
expired certificate, one expiring within 30 days, a healthy one, a Key Vault self-signed
one, one whose CA template was retired, and a year-long one already inside its renewal
window but not yet within Key Vault's 30-day expiry event, so only the sweep can find it),
moves the Key Vault clock forward so Key Vault raises its events, lets Event Grid → queue →
renew → merge → notify run, runs the sweep, ingests the status snapshot and writes the
dashboard.

``--ca`` picks the CA the stack renews with, started in the demo's folder: ``local`` (the default, in
process), ``acme`` (pebble), ``cfssl`` (``cfssl serve``) or ``adcs`` (the local ``/certsrv`` over NTLM with
Extended Protection, and an OpenLDAP slapd holding the certificate templates). Every CA gets the same six
certificates with the same expected outcomes (``EXPECTED``); the retired template is refused the way each CA
refuses: a profile it does not offer, the name pebble's policy blocks, or the AD CS denial in the CA's words.
AD CS gets two more: a certificate known only by its v2 template OID (no tag: renewed through the directory
lookup) and one whose template needs a CA manager's approval, which the demo approves, as a manager would,
once the audit trail shows it waiting, then sees merged on the next poll.

Where the certificates are served (whatever the CA): a real nginx serves shop-expiring under two names, both
installed by ``certlc sync`` before the renewal; after it, ``certlc sync`` (``--reload`` nginx, ``--verify`` the
endpoint) keeps one in step and the other is left behind, so the target check after the sweep raises its
``serving`` alert. An Application Gateway in the consumers emulator names web-expired's version; the stack runs with
``CERTLC_ROLLOUT=update``, so that check moves the reference to the renewed version, and the next check sees the
gateway's TLS front serve it. The SERVED column is the status snapshot's ``Served``, as certlc recorded it.

Every outcome it prints is observed, never worked out: from the audit trail, the sweep's report, Key Vault's
versions, the snapshot, the alerts received and the gateway's resource. A certificate nothing recorded is "not
examined by the pipeline"; the snapshot's outlook columns say what happens next, for reading only. Exit code 0 only
when every certificate ended as expected.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509

if TYPE_CHECKING:
    from renewal.sweep import SweepReport

DEMO_DIR = Path(".local/demo")
VAULT = "kv1"
ADVANCE_DAYS = 15
NOT_EXAMINED = "not examined"
RENEWED = "renewed"
FAILED = "failed"
APPROVAL_TIMEOUT = 60.0  # seconds from the approval to the merge: the CA is asked again every ADCS_POLL_SECONDS
ADCS_POLL_SECONDS = 1
# The v2 template of the OID-only certificate: in the directory as WebServerV2, a name /certsrv offers
V2_TEMPLATE_OID = "1.3.6.1.4.1.311.21.8.5934178.1234567.1.2.3.4.101"
APPROVAL_TEMPLATE = "ApprovalV3"  # the AD CS template whose requests wait for a CA manager
REFUSED_NAME = "partner.example.com"  # the name pebble's policy refuses: ACME has no templates to retire
# Where certificates are served: shop-expiring's two names on the demo's nginx, web-expired behind a gateway
SYNCED = "shop-expiring"
KEPT_IN_STEP = "shop.example.com"  # certlc sync installs every new version here
LEFT_BEHIND = "cart.example.com"  # installed once by certlc sync, then forgotten: it keeps the replaced version
CONNECT = "127.0.0.1"  # where the endpoints are reached (the names are not in DNS)
PINNED = "web-expired"
GATEWAY = ("rg-demo", "appgw-web")  # resource group and name, in the stack's own subscription
GATEWAY_HOST = "www.example.com"
SYNC_TIMEOUT = 60.0  # seconds for one certlc sync run (its reload and verification have their own deadlines)


@dataclass(frozen=True)
class Seed:
    name: str
    issuer: str  # "Unknown" (certlc renews) or "Self" (Key Vault renews)
    days_left: int  # at seeding time
    lifetime_days: int
    tags: dict[str, str] = field(default_factory=dict)
    sans: tuple[str, ...] = ()
    auto_renew: bool = True  # Self only: Key Vault's own AutoRenew lifetime action
    extensions: tuple[x509.ExtensionType, ...] = ()  # what the previous CA put in the certificate besides the CSR's


SEEDS = (
    Seed("web-expired", "Unknown", -2, 90, {"Recipient": "web-team@example.com"}, ("www.example.com",)),
    Seed(
        "shop-expiring",
        "Unknown",
        40,
        90,
        {"Recipient": "shop@example.com; oncall@example.com", "owner": "shop"},
        ("shop.example.com", "cart.example.com"),
    ),
    Seed("api-healthy", "Unknown", 300, 365, sans=("api.example.com",)),
    Seed("portal-selfsigned", "Self", 0, 0, sans=("portal.example.com",)),
    Seed("partner-retired", "Unknown", 38, 90, {"certlc-profile": "retired-template"}, (REFUSED_NAME,)),
    Seed("intranet-yearly", "Unknown", 110, 365, sans=("intranet.example.com",)),
    Seed(
        "legacy-v2-template",
        "Unknown",
        40,
        90,
        sans=("legacy.example.com",),
        extensions=(x509.MSCertificateTemplate(x509.ObjectIdentifier(V2_TEMPLATE_OID), 100, 4),),
    ),
    Seed("vpn-approval", "Unknown", 40, 90, {"certlc-profile": APPROVAL_TEMPLATE}, ("vpn.example.com",)),
)


@dataclass(frozen=True)
class Expect:
    """The outcome the pipeline must record for a certificate; ``status`` None: nothing is to act on it."""

    status: str | None
    reason: str = ""
    waits: bool = False  # the CA leaves the request pending first (approval), then issues
    ca_words: bool = False  # the CA's request id and its own message reach the audit trail
    served: str = ""  # the SERVED column (the snapshot's Served; "" when certlc knows no target); {port}: nginx's
    left_behind: str = ""  # a server name still serving the replaced version: its `serving` alert must arrive
    moved: bool = False  # the gateway's reference was moved to the renewed version (audit rollout_updated)


CAS = ("local", "acme", "cfssl", "adcs")
_MERGED = Expect(RENEWED, "merged")
_UNTOUCHED = Expect(None)
_DENIED = Expect(FAILED, "ca_denied")
_MOVED = replace(_MERGED, served="1/1", moved=True)  # served everywhere once the gateway was moved
_LEFT_BEHIND = replace(
    _MERGED,
    served=f"1/2: {LEFT_BEHIND}:{{port}}@{CONNECT} serves the old version",
    left_behind=LEFT_BEHIND,
)
# Certificate → CA → what the pipeline must record; a CA not in a row is not given that certificate.
# partner-retired is refused as each CA refuses: local and cfssl do not offer its profile "retired-template"
# (cfssl would sign with its default policy; the adapter reads cfssl's info and refuses instead), pebble's
# policy blocks its name (ACME has no templates), AD CS denies the template with its disposition message.
EXPECTED: dict[str, dict[str, Expect]] = {
    PINNED: dict.fromkeys(CAS, _MOVED),
    SYNCED: dict.fromkeys(CAS, _LEFT_BEHIND),
    "api-healthy": dict.fromkeys(CAS, _UNTOUCHED),
    "portal-selfsigned": dict.fromkeys(CAS, _UNTOUCHED),
    "partner-retired": {"local": _DENIED, "acme": _DENIED, "cfssl": _DENIED, "adcs": replace(_DENIED, ca_words=True)},
    "intranet-yearly": dict.fromkeys(CAS, _MERGED),
    "legacy-v2-template": {"adcs": _MERGED},  # its template OID looked up to a name in the directory
    "vpn-approval": {"adcs": Expect(RENEWED, "merged", waits=True, ca_words=True)},
}


def seeds_for(ca: str) -> tuple[Seed, ...]:
    """The certificates the demo gives ``ca``."""
    return tuple(seed for seed in SEEDS if ca in EXPECTED[seed.name])


@dataclass(frozen=True)
class Evidence:
    """What the pipeline recorded and Key Vault shows once the run is over, gathered once; outcomes are read here."""

    ca: str  # the CA the stack renewed with
    audit: list[dict[str, Any]]  # the audit trail's records, in order
    sweep: SweepReport  # what the sweep reported it did
    versions: dict[str, list[str]]  # certificate → its issued versions (those with a thumbprint)
    current: dict[str, str]  # certificate → the version Key Vault serves
    alerts: list[dict[str, Any]]  # what the notification webhook received
    rows: list[dict[str, Any]]  # the status snapshot's rows
    approved: list[str] = field(default_factory=list)  # CA request ids the demo approved as a CA manager
    nginx_port: int = 0  # where the demo's nginx listened
    references: dict[str, str] = field(default_factory=dict)  # certificate → the keyVaultSecretId its gateway names


@dataclass(frozen=True)
class Observed:
    status: str  # renewed | failed | skipped | in_progress | queued | in_flight | error | unconfirmed | not examined
    reason: str
    via: tuple[str, ...]  # what examined it: the triggers of its renewals, and "sweep" when the sweep reported it
    profile: str = ""  # the profile or template the pipeline asked the CA for
    waited: bool = False  # the CA left its request pending at least once
    ca_request_id: str = ""  # what the CA said of its request, in its own words (pending or denied)
    ca_message: str = ""
    detail: str = ""  # what the last failed or skipped record said, for a run that went wrong


@dataclass
class Outcome:
    name: str
    expected: str | None
    status: str
    reason: str
    via: list[str]
    versions: int
    alerts: int
    renewed_by: str  # the snapshot's outlook, for reading: checked against nothing
    next_renewal: str
    outlook: str
    ok: bool
    detail: str = ""
    profile: str = ""
    waited: bool = False
    ca_request_id: str = ""
    ca_message: str = ""
    served: str = ""  # the snapshot's SERVED column: its targets, as the last target check saw them
    serving_alerts: list[str] = field(default_factory=list)  # "target: problem" of each `serving` alert received
    moved: list[str] = field(default_factory=list)  # "target: old -> new version" of each reference certlc moved


@dataclass
class CaSetup:
    """A CA the stack renews with: its app settings, and what its CA manager can do (AD CS approval)."""

    description: str
    settings: dict[str, str]
    approve: Callable[[str], None] | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, default=DEMO_DIR, help=f"state folder, wiped first (default {DEMO_DIR})")
    parser.add_argument(
        "--ca",
        choices=CAS,
        default="local",
        help="the CA to renew with: local (in process, the default), acme (pebble), cfssl (cfssl serve) or adcs "
        "(the local /certsrv over NTLM and a slapd with the certificate templates); started in the state folder",
    )
    parser.add_argument(
        "--keyvault-pending-version",
        choices=("placeholder", "previous"),
        default="placeholder",
        help="the Key Vault emulator's --pending-version (default placeholder)",
    )


def run(args: argparse.Namespace) -> int:
    as_json = args.output == "json"  # -o json, or its alias --json
    say = _progress(quiet=as_json)
    shutil.rmtree(args.dir, ignore_errors=True)
    log_file = args.dir / "demo.log"
    started = time.monotonic()
    with _logging_to(log_file):
        evidence, dashboard = play(args.dir, args.keyvault_pending_version, say, args.ca)
    elapsed = time.monotonic() - started
    outcomes = assess(evidence)
    ok = all(o.ok for o in outcomes)
    if as_json:
        print(
            json.dumps(
                {
                    "ok": ok,
                    "ca": evidence.ca,
                    "seconds": round(elapsed, 1),
                    "dashboard": str(dashboard),
                    "approved": evidence.approved,
                    "certificates": [asdict(o) for o in outcomes],
                },
                indent=2,
            )
        )
    else:
        print_summary(outcomes, elapsed, dashboard)
        print(f"logs: {log_file.resolve()}")
    if not ok:
        wrong = "; ".join(f"{o.name}: {o.detail}" for o in outcomes if not o.ok)
        print(f"demo FAILED: {wrong}", file=sys.stderr)
    return 0 if ok else 1


def play(directory: Path, pending_version: str, say: Callable[[str], None], ca: str = "local") -> tuple[Evidence, Path]:
    """Run the scenario on a fresh local stack renewing with ``ca``; the evidence it left and the dashboard."""
    from localazure.receiver import WebhookReceiver
    from localazure.stack import LocalStack

    from ingestion.history import STREAM_DEFAULT as HISTORY_STREAM

    receiver = WebhookReceiver().start()
    try:
        with ca_server(ca, directory / "ca-server", say) as setup, endpoint_server(directory / "nginx", say) as nginx:
            seeds = tuple(_with_endpoints(seed, nginx) for seed in seeds_for(ca))
            say("starting the local stack (Azurite, Key Vault and Logs Ingestion emulators, Functions host)")
            with LocalStack(
                directory,
                vaults=(VAULT,),
                extra_settings=_demo_settings(receiver.url) | setup.settings,
                pending_version=pending_version,
            ) as stack:
                client = stack.certificate_client(VAULT)
                audit_file = Path(stack.settings["CERTLC_AUDIT_FILE"])
                say(f"seeding vault {VAULT} with {len(seeds)} certificates")
                # the served one first, installed on nginx as a server is set up; then the others as before (the
                # expired one's event comes within a second of its seeding, as it always did)
                seeded = seed_vault(client, stack, tuple(seed for seed in seeds if seed.name == SYNCED))
                for host in (KEPT_IN_STEP, LEFT_BEHIND):
                    say(f"{host}: certlc sync installs {SYNCED} on nginx (reload, then a TLS check of the endpoint)")
                    sync(stack, nginx, host, say)
                seeded |= seed_vault(client, stack, tuple(seed for seed in seeds if seed.name != SYNCED))
                gateway = add_gateway(stack, seeded[PINNED])
                say(f"moving the Key Vault clock {ADVANCE_DAYS} days forward: Key Vault raises its expiry events")
                stack.control.advance(ADVANCE_DAYS * 86400)
                stack.settle()
                say(f"{KEPT_IN_STEP}: certlc sync installs the renewed {SYNCED}; {LEFT_BEHIND} is left behind")
                sync(stack, nginx, KEPT_IN_STEP, say)
                say("running the sweep (the safety net for missed events), then its target check (rollout: update)")
                report = run_sweep()
                stack.settle()
                approved = approve_waiting(stack, audit_file, setup, say)
                say("the next target check: what each endpoint and the gateway serve now")
                check_targets()
                say("ingesting the status snapshot and writing the dashboard")
                stack.host.trigger_timer("ingest")
                rows = stack.logs.rows()
                dashboard = _dashboard(rows, stack.logs.rows(HISTORY_STREAM), directory)
                references = {PINNED: _reference(stack, gateway)}
                evidence = gather(ca, client, audit_file, report, receiver.payloads(), rows, approved)
                evidence = replace(evidence, nginx_port=nginx.port, references=references)
    finally:
        receiver.stop()
    return evidence, dashboard


@contextlib.contextmanager
def endpoint_server(directory: Path, say: Callable[[str], None]) -> Iterator[Any]:
    """The demo's nginx in ``directory``, serving a stand-in certificate for its two server names until certlc sync
    installs the real one (as a server is set up), stopped afterwards; one line (``UserError``) when nginx cannot
    be installed or started."""
    from localazure.nginx import start_nginx
    from localazure.pki import write_loopback_tls, write_private
    from localazure.process import ServerStartError
    from localazure.tools import ToolMissing

    from certlc.cli import UserError

    try:
        stand_in = write_loopback_tls(directory / "stand-in", "nginx")
        nginx = start_nginx(directory, stand_in.cert_pem, stand_in.key_pem)
    except (ToolMissing, ServerStartError, OSError) as exc:
        raise UserError(f"certlc demo: nginx could not be started: {exc}") from exc
    try:
        try:
            for host in (KEPT_IN_STEP, LEFT_BEHIND):
                files = _site_files(nginx, host)
                files["cert"].parent.mkdir(parents=True, exist_ok=True)
                for path in (files["cert"], files["fullchain"]):
                    shutil.copyfile(stand_in.cert_pem, path)
                write_private(files["key"], stand_in.key_pem.read_bytes())
                nginx.sites[host] = (files["fullchain"], files["key"])
            nginx.write_config()
            nginx.reload()
        except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as exc:
            raise UserError(f"certlc demo: nginx did not take its server names: {exc}") from exc
        say(f"nginx on {CONNECT}:{nginx.port} serves {KEPT_IN_STEP} and {LEFT_BEHIND} (a stand-in certificate)")
        yield nginx
    finally:
        nginx.stop()


def _site_files(nginx: Any, host: str) -> dict[str, Path]:
    """The PEM files nginx reads for ``host`` and certlc sync writes."""
    folder = Path(nginx.folder) / "sites" / host
    return {"cert": folder / "cert.pem", "fullchain": folder / "fullchain.pem", "key": folder / "key.pem"}


def _with_endpoints(seed: Seed, nginx: Any) -> Seed:
    """``SYNCED`` declares its two names on nginx (tag ``certlc-endpoints``); the others are as seeded."""
    if seed.name != SYNCED:
        return seed
    endpoints = ",".join(f"{host}:{nginx.port}@{CONNECT}" for host in (KEPT_IN_STEP, LEFT_BEHIND))
    return replace(seed, tags={**seed.tags, "certlc-endpoints": endpoints})


def sync(stack: Any, nginx: Any, host: str, say: Callable[[str], None]) -> None:
    """One round of the real ``certlc sync`` for ``host``, as its server would run it: the certificate's current
    version as PEM files, ``nginx -s reload``, then a TLS check that the endpoint serves it (rolled back if not).
    What it did is in the audit trail (``trigger: sync``) and in what the target check sees."""
    files = _site_files(nginx, host)
    command = [
        sys.executable, "-m", "certlc", "--settings", str(stack.settings_path), "sync", "--vault", VAULT,
        "--name", SYNCED, "--cert", str(files["cert"]), "--fullchain", str(files["fullchain"]),
        "--key", str(files["key"]), "--reload", nginx.reload_command(), "--verify", f"{CONNECT}:{nginx.port}",
        "--verify-sni", host, "-o", "json",
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=SYNC_TIMEOUT, stdin=subprocess.DEVNULL, check=False
        )
    except subprocess.TimeoutExpired:
        say(f"{host}: certlc sync did not finish within {SYNC_TIMEOUT:g} s")
        return
    lines = done.stdout.strip().splitlines()
    try:
        said = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        said = {}
    if said:
        say(f"{host}: certlc sync: {said.get('action')} ({said.get('reason')})")
    else:
        say(f"{host}: certlc sync exited {done.returncode}: {(done.stderr.strip().splitlines() or ['-'])[-1]}")


def add_gateway(stack: Any, version: str) -> str:
    """An Application Gateway in the consumers emulator, where the target check discovers it, whose listener names
    ``PINNED``'s seeded ``version`` (pinned, as set up before certlc came: the expired certificate may be renewed
    already); its id."""
    from localazure.stack import LOCAL_APP

    secret = f"{stack.keyvault.vault_urls[VAULT]}/secrets/{PINNED}/{version}"
    group, name = GATEWAY
    return stack.consumers.add_app_gateway(LOCAL_APP[0], group, name, {"www": ([GATEWAY_HOST], secret)})


def _reference(stack: Any, gateway: str) -> str:
    """The keyVaultSecretId the gateway's certificate names now."""
    certificates = stack.consumers.resource(gateway)["properties"]["sslCertificates"]
    return str(certificates[0]["properties"]["keyVaultSecretId"])


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


def read_audit(path: Path) -> list[dict[str, Any]]:
    """The audit trail's records, in order (none before the first one is written)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_sweep() -> SweepReport:
    """The sweep's function body, as its timer runs it, keeping the report it returns (a timer's return value goes
    nowhere in Azure). A sweep that returns no report examined nothing."""
    from renewal import handlers
    from renewal.sweep import SweepReport

    return handlers.on_sweep_timer() or SweepReport()


def check_targets() -> None:
    """The target check that follows every sweep, once more on its own (the next sweep's): it sees what the last
    one's rollout changed. What it saw is kept where the snapshot and ``certlc targets`` read it."""
    from renewal import handlers

    handlers.check_targets_after_sweep(handlers.runtime())


@contextlib.contextmanager
def _logging_to(path: Path) -> Iterator[None]:
    """The functions' and the audit trail's log lines go to a file; the terminal shows progress and the summary."""
    import logging

    from certlc.host.host import quiet_http_logging

    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    quiet_http_logging()
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()


def _demo_settings(webhook_url: str) -> dict[str, str]:
    return {
        "CERTLC_WEBHOOK_URLS": f"generic={webhook_url}",
        "CERTLC_NOTIFY_DEFAULT_RECIPIENTS": "pki-team@example.com",
        "CERTLC_ROLLOUT": "update",  # a reference pinned to the replaced version is moved to the new one
    }


def _progress(quiet: bool) -> Callable[[str], None]:
    def say(message: str) -> None:
        if not quiet:
            print(f"==> {message}", flush=True)

    return say


def seed_vault(client: Any, stack: Any, seeds: tuple[Seed, ...]) -> dict[str, str]:
    """Seed the (fresh) vault; certificate → the version seeded, as Key Vault returned it."""
    from localazure.seeding import PreviousCA, seed_sample

    ca, now = PreviousCA(), stack.now()
    return {seed.name: seed_sample(client, ca, seed, now).properties.version for seed in seeds}


def _dashboard(rows: list[dict[str, Any]], history: list[dict[str, Any]], directory: Path) -> Path:
    from certlc.dashboard import render

    return render(rows, directory / "dashboard.html", history)


def gather(
    ca: str,
    client: Any,
    audit_file: Path,
    report: SweepReport,
    alerts: list[Any],
    rows: list[dict[str, Any]],
    approved: list[str],
) -> Evidence:
    """Read once what the run left: the audit trail, Key Vault's versions, the alerts received."""
    names = [seed.name for seed in seeds_for(ca)]
    versions = {
        name: [v.version for v in client.list_properties_of_certificate_versions(name) if v.x509_thumbprint]
        for name in names
    }
    current = {name: client.get_certificate(name).properties.version for name in names}
    alerted = [a for a in alerts if isinstance(a, dict)]
    return Evidence(ca, read_audit(audit_file), report, versions, current, alerted, rows, approved)


def assess(evidence: Evidence) -> list[Outcome]:
    """Each seeded certificate's recorded outcome against what the demo expects of it with this CA."""
    outcomes = []
    for seed in seeds_for(evidence.ca):
        expect = EXPECTED[seed.name][evidence.ca]
        seen = observed(seed.name, evidence)
        versions = len(evidence.versions.get(seed.name, []))
        alerts = [a for a in evidence.alerts if a.get("name") == seed.name]
        row = _snapshot_row(evidence.rows, seed.name)
        served = str(row.get("Served") or "")
        serving = [f"{a.get('target')}: {a.get('problem')}" for a in alerts if a.get("kind") == "serving"]
        moved = [
            f"{r.get('target')}: {r.get('old_version')} -> {r.get('new_version')}"
            for r in evidence.audit
            if r.get("event") == "rollout_updated" and r.get("vault") == VAULT and r.get("name") == seed.name
        ]
        wrong = problem(expect, seen, versions, alerts) or serving_problem(
            expect, served, serving, moved, evidence.references.get(seed.name, ""), evidence, seed.name
        )
        outcomes.append(
            Outcome(
                seed.name,
                expect.status,
                seen.status,
                seen.reason,
                list(seen.via),
                versions,
                len(alerts),
                row.get("RenewedBy") or "",
                row.get("NextRenewal") or "",
                row.get("RenewalNote") or "",
                not wrong,
                wrong,
                seen.profile,
                seen.waited,
                seen.ca_request_id,
                seen.ca_message,
                served,
                serving,
                moved,
            )
        )
    return outcomes


def observed(name: str, evidence: Evidence) -> Observed:
    """What the pipeline recorded for ``name``'s renewal: the audit trail first (a merge counts once Key Vault serves
    the merged version), else the sweep's report, else nothing examined it. What the target check and certlc sync
    recorded about where it is served is no part of its renewal."""
    records = [r for r in evidence.audit if r.get("vault") == VAULT and r.get("name") == name and not _about_serving(r)]
    key = f"{VAULT}/{name}"
    swept = _sweep_entry(evidence.sweep, key)
    triggers = [r["trigger"] for r in records if r.get("trigger")] + (["sweep"] if swept else [])
    via = tuple(dict.fromkeys(triggers))
    said = _cas_words(records)
    words = {
        "profile": next((r.get("profile") or "" for r in reversed(records) if r["event"] == "submitted"), ""),
        "waited": any(r["event"] == "pending" for r in records),
        "ca_request_id": str(said.get("ca_request_id") or ""),
        "ca_message": str(said.get("ca_message") or ""),
    }
    merged = [r for r in records if r["event"] == "merged"]
    if merged:
        version = merged[-1].get("new_version")
        if version != evidence.current.get(name):
            reason = f"merged {version}, Key Vault serves {evidence.current.get(name)}"
            return Observed("unconfirmed", reason, via, **words)
        return Observed(RENEWED, "merged", via, **words)
    for events, status in ((("failed", "rejected"), FAILED), (("skipped",), "skipped")):
        last = next((r for r in reversed(records) if r["event"] in events), None)
        if last is not None:
            return Observed(status, last.get("reason") or "", via, **words, detail=str(last.get("detail") or ""))
    if records:
        return Observed("in_progress", records[-1]["event"], via, **words)
    if swept:
        return Observed(*swept, via, **words)
    return Observed(NOT_EXAMINED, "", via, **words)


def _about_serving(record: dict[str, Any]) -> bool:
    """A record of certlc sync, or of the target check: a reference moved, a version retired, a `serving` alert."""
    return (
        record.get("trigger") == "sync"
        or record.get("event") in ("rollout_updated", "retired", "served")
        or (record.get("event") == "notified" and record.get("kind") == "serving")
    )


def _cas_words(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The record whose words show what the CA said: its last answer that was not "still pending", else its first
    "pending" (the submission's page, naming who must approve; later polls only say "Taken Under Submission")."""
    spoke = [r for r in records if r.get("ca_request_id") or r.get("ca_message")]
    final = [r for r in spoke if r["event"] != "pending" and r.get("ca_message")]
    return final[-1] if final else (spoke[0] if spoke else {})


def _sweep_entry(report: SweepReport, key: str) -> tuple[str, str] | None:
    """What the sweep reported doing with one certificate, or None when its report does not name it."""
    if key in report.errors:
        return "error", report.errors[key]
    if key in report.skipped:
        return "skipped", report.skipped[key]
    for names, status, reason in (
        (report.enqueued, "queued", "sweep"),
        (report.taken_over, "queued", "orphaned_pending_operation"),
        (report.in_flight, "in_flight", ""),
    ):
        if key in names:
            return status, reason
    return None


def problem(expect: Expect, seen: Observed, versions: int, alerts: list[dict[str, Any]]) -> str:
    """Why a certificate did not end as the demo expects, or "" when it did."""
    if expect.status is None:
        return "" if versions == 1 else f"nothing was to renew it, yet Key Vault shows {versions} versions"
    expected = f"{expect.status} ({expect.reason})"
    if seen.status == NOT_EXAMINED:
        return f"expected {expected}, but it was not examined by the pipeline"
    if (seen.status, seen.reason) != (expect.status, expect.reason):
        because = f": {seen.detail}" if seen.detail else ""
        return f"expected {expected}, the pipeline recorded {seen.status} ({seen.reason}){because}"
    wanted = 2 if expect.status == RENEWED else 1
    if versions != wanted:
        return f"expected {wanted} version(s) in Key Vault, found {versions}"
    if expect.status == FAILED and not any(a.get("kind") == "renewal_failed" for a in alerts):
        return "no renewal_failed alert was sent"
    if expect.waits and not seen.waited:
        return "expected the CA to leave its request pending for approval first, but no pending was recorded"
    if expect.ca_words and not (seen.ca_request_id and seen.ca_message):
        return "the CA's request id and message did not reach the audit trail"
    return ""


def serving_problem(
    expect: Expect,
    served: str,
    serving: list[str],
    moved: list[str],
    reference: str,
    evidence: Evidence,
    name: str,
) -> str:
    """Why where a certificate is served is not what the demo expects (the snapshot's SERVED column, the `serving`
    alerts received, the gateway's reference and its rollout record), or "" when it is."""
    wanted = expect.served.format(port=evidence.nginx_port)
    if served != wanted:
        return f"expected SERVED {wanted or '(no target)'!r}, the snapshot says {served or '(no target)'!r}"
    if expect.left_behind and not any(alert.startswith(f"{expect.left_behind}:") for alert in serving):
        return f"{expect.left_behind} still serves the replaced version, yet no serving alert names it"
    if expect.moved:
        current = evidence.current.get(name, "")
        if not moved:
            return "no rollout_updated record: the gateway's reference to the replaced version was not moved"
        if not reference.rstrip("/").endswith(f"/{current}"):
            return f"the gateway names {reference or 'nothing'}, not the version Key Vault serves ({current})"
    return ""


def _snapshot_row(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The newest status row of ``name`` (empty when the snapshot has none)."""
    mine = [r for r in rows if r.get("KeyVault") == VAULT and r.get("CertName") == name]
    return max(mine, key=lambda r: r.get("TimeGenerated") or "", default={})


def print_summary(outcomes: list[Outcome], elapsed: float, dashboard: Path) -> None:
    width = max(len(o.name) for o in outcomes)
    via = max(18, *(len(", ".join(o.via)) for o in outcomes))
    served = max(len("served"), *(len(o.served) for o in outcomes))
    print()
    print(
        f"{'certificate':<{width}}  {'outcome':<12}  {'reason':<9}  {'examined by':<{via}}  versions  alerts  check  "
        f"{'served':<{served}}  what happens next (the snapshot's outlook)"
    )
    for o in outcomes:
        print(
            f"{o.name:<{width}}  {o.status:<12}  {o.reason:<9}  {', '.join(o.via) or '-':<{via}}  {o.versions:>8}  "
            f"{o.alerts:>6}  {'ok' if o.ok else 'WRONG':<5}  {o.served or '-':<{served}}  {o.outlook or '-'}"
        )
    followed = [o for o in outcomes if o.moved or o.serving_alerts]
    if followed:
        print("\nwhere they are served (the target check's audit records and the serving alerts received):")
    for o in followed:
        for move in o.moved:
            print(f"  {o.name}: moved {move}")
        for alert in o.serving_alerts:
            print(f"  {o.name}: serving alert: {alert}")
    said = [o for o in outcomes if o.ca_request_id or o.ca_message or o.waited]
    if said:
        print("\nwhat the CA said (from the audit trail):")
    for o in said:
        status = f"pending, then {o.status}" if o.waited else o.status
        print(f"  {o.name}: request {o.ca_request_id or '-'} {status}: {o.ca_message or '-'}")
    counts = {status: sum(o.status == status for o in outcomes) for status in (RENEWED, FAILED, NOT_EXAMINED)}
    unexamined = ", ".join(o.name for o in outcomes if o.status == NOT_EXAMINED) or "none"
    print(
        f"\n{counts[RENEWED]} renewed, {counts[FAILED]} failed, {counts[NOT_EXAMINED]} not examined by the pipeline "
        f"({unexamined}), in {elapsed:.1f} s; outcomes from the audit trail, the sweep's report and Key Vault, "
        "SERVED from the status snapshot"
    )
    print(f"dashboard: {dashboard.resolve()}")
