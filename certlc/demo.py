"""``certlc demo``: the whole pipeline on the local stack, end to end, with a summary.

It seeds a vault the way an operator's vault looks on the day certlc is installed (an
expired certificate, one expiring within 30 days, a healthy one, a Key Vault self-signed
one, one whose CA template was retired, and a year-long one already inside its renewal
window but not yet within Key Vault's 30-day expiry event, so only the sweep can find it),
moves the Key Vault clock forward so Key Vault raises its events, lets Event Grid → queue →
renew → merge → notify run, runs the sweep, ingests the status snapshot and writes the
dashboard.

Every outcome it prints is observed, never worked out: from the audit trail, the sweep's
report and Key Vault's versions. A certificate nothing recorded is "not examined by the
pipeline"; the snapshot's outlook columns say what happens next, for reading only. Exit
code 0 only when every certificate ended as expected.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from renewal.sweep import SweepReport

DEMO_DIR = Path(".local/demo")
VAULT = "kv1"
ADVANCE_DAYS = 15
NOT_EXAMINED = "not examined"
RENEWED = "renewed"
FAILED = "failed"


@dataclass(frozen=True)
class Seed:
    name: str
    issuer: str  # "Unknown" (certlc renews) or "Self" (Key Vault renews)
    days_left: int  # at seeding time
    lifetime_days: int
    expect: str | None  # the outcome the pipeline must record; None: nothing is expected to act on it
    expect_reason: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    sans: tuple[str, ...] = ()
    auto_renew: bool = True  # Self only: Key Vault's own AutoRenew lifetime action


SEEDS = (
    Seed(
        "web-expired",
        "Unknown",
        -2,
        90,
        RENEWED,
        "merged",
        {"Recipient": "web-team@example.com"},
        ("www.example.com",),
    ),
    Seed(
        "shop-expiring",
        "Unknown",
        40,
        90,
        RENEWED,
        "merged",
        {"Recipient": "shop@example.com; oncall@example.com", "owner": "shop"},
        ("shop.example.com", "cart.example.com"),
    ),
    Seed("api-healthy", "Unknown", 300, 365, None, sans=("api.example.com",)),
    Seed("portal-selfsigned", "Self", 0, 0, None, sans=("portal.example.com",)),
    Seed(
        "partner-retired",
        "Unknown",
        38,
        90,
        FAILED,
        "ca_denied",
        {"certlc-profile": "retired-template"},
        ("partner.example.com",),
    ),
    Seed("intranet-yearly", "Unknown", 110, 365, RENEWED, "merged", sans=("intranet.example.com",)),
)


@dataclass(frozen=True)
class Evidence:
    """What the pipeline recorded and Key Vault shows once the run is over, gathered once; outcomes are read here."""

    audit: list[dict[str, Any]]  # the audit trail's records, in order
    sweep: SweepReport  # what the sweep reported it did
    versions: dict[str, list[str]]  # certificate → its issued versions (those with a thumbprint)
    current: dict[str, str]  # certificate → the version Key Vault serves
    alerts: list[dict[str, Any]]  # what the notification webhook received
    rows: list[dict[str, Any]]  # the status snapshot's rows


@dataclass(frozen=True)
class Observed:
    status: str  # renewed | failed | skipped | in_progress | queued | in_flight | error | unconfirmed | not examined
    reason: str
    via: tuple[str, ...]  # what examined it: the triggers of its renewals, and "sweep" when the sweep reported it


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, default=DEMO_DIR, help=f"state folder, wiped first (default {DEMO_DIR})")
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
        evidence, dashboard = play(args.dir, args.keyvault_pending_version, say)
    elapsed = time.monotonic() - started
    outcomes = assess(evidence)
    ok = all(o.ok for o in outcomes)
    if as_json:
        print(
            json.dumps(
                {
                    "ok": ok,
                    "seconds": round(elapsed, 1),
                    "dashboard": str(dashboard),
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


def play(directory: Path, pending_version: str, say: Callable[[str], None]) -> tuple[Evidence, Path]:
    """Run the scenario on a fresh local stack; the evidence it left behind and the dashboard written."""
    from certlc.localstack.receiver import WebhookReceiver
    from certlc.localstack.stack import LocalStack
    from ingestion.history import STREAM_DEFAULT as HISTORY_STREAM

    receiver = WebhookReceiver().start()
    say("starting the local stack (Azurite, Key Vault and Logs Ingestion emulators, Functions host)")
    try:
        with LocalStack(
            directory, vaults=(VAULT,), extra_settings=_demo_settings(receiver.url), pending_version=pending_version
        ) as stack:
            client = stack.certificate_client(VAULT)
            say(f"seeding vault {VAULT} with {len(SEEDS)} certificates")
            seed_vault(client, stack)
            say(f"moving the Key Vault clock {ADVANCE_DAYS} days forward: Key Vault raises its expiry events")
            stack.control.advance(ADVANCE_DAYS * 86400)
            stack.settle()
            say("running the sweep (the safety net for missed events)")
            report = run_sweep()
            stack.settle()
            say("ingesting the status snapshot and writing the dashboard")
            stack.host.trigger_timer("ingest")
            rows = stack.logs.rows()
            dashboard = _dashboard(rows, stack.logs.rows(HISTORY_STREAM), directory)
            evidence = gather(client, Path(stack.settings["CERTLC_AUDIT_FILE"]), report, receiver.payloads(), rows)
    finally:
        receiver.stop()
    return evidence, dashboard


def run_sweep() -> SweepReport:
    """The sweep's function body, as its timer runs it, keeping the report it returns (a timer's return value goes
    nowhere in Azure). A sweep that returns no report examined nothing."""
    from renewal import handlers
    from renewal.sweep import SweepReport

    return handlers.on_sweep_timer() or SweepReport()


@contextlib.contextmanager
def _logging_to(path: Path) -> Iterator[None]:
    """The functions' and the audit trail's log lines go to a file; the terminal shows progress and the summary."""
    import logging

    from certlc.localstack.host import quiet_http_logging

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
    }


def _progress(quiet: bool) -> Callable[[str], None]:
    def say(message: str) -> None:
        if not quiet:
            print(f"==> {message}", flush=True)

    return say


def seed_vault(client: Any, stack: Any) -> None:
    from certlc.localstack.seeding import seed_missing

    seed_missing(client, SEEDS, stack.now())


def _dashboard(rows: list[dict[str, Any]], history: list[dict[str, Any]], directory: Path) -> Path:
    from certlc.dashboard import render

    return render(rows, directory / "dashboard.html", history)


def gather(
    client: Any, audit_file: Path, report: SweepReport, alerts: list[Any], rows: list[dict[str, Any]]
) -> Evidence:
    """Read once what the run left: the audit trail, Key Vault's versions, the alerts received."""
    audit = [json.loads(line) for line in audit_file.read_text().splitlines() if line.strip()]
    versions = {
        seed.name: [v.version for v in client.list_properties_of_certificate_versions(seed.name) if v.x509_thumbprint]
        for seed in SEEDS
    }
    current = {seed.name: client.get_certificate(seed.name).properties.version for seed in SEEDS}
    return Evidence(audit, report, versions, current, [a for a in alerts if isinstance(a, dict)], rows)


def assess(evidence: Evidence) -> list[Outcome]:
    """Each seeded certificate's recorded outcome against what the demo expects of it."""
    outcomes = []
    for seed in SEEDS:
        seen = observed(seed.name, evidence)
        versions = len(evidence.versions.get(seed.name, []))
        alerts = [a for a in evidence.alerts if a.get("name") == seed.name]
        row = _snapshot_row(evidence.rows, seed.name)
        wrong = problem(seed, seen, versions, alerts)
        outcomes.append(
            Outcome(
                seed.name,
                seed.expect,
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
            )
        )
    return outcomes


def observed(name: str, evidence: Evidence) -> Observed:
    """What the pipeline recorded for ``name``: the audit trail first (a merge counts once Key Vault serves the
    merged version), else the sweep's report, else nothing examined it."""
    records = [r for r in evidence.audit if r.get("vault") == VAULT and r.get("name") == name]
    key = f"{VAULT}/{name}"
    swept = _sweep_entry(evidence.sweep, key)
    triggers = [r["trigger"] for r in records if r.get("trigger")] + (["sweep"] if swept else [])
    via = tuple(dict.fromkeys(triggers))
    merged = [r for r in records if r["event"] == "merged"]
    if merged:
        version = merged[-1].get("new_version")
        if version != evidence.current.get(name):
            return Observed("unconfirmed", f"merged {version}, Key Vault serves {evidence.current.get(name)}", via)
        return Observed(RENEWED, "merged", via)
    for events, status in ((("failed", "rejected"), FAILED), (("skipped",), "skipped")):
        last = next((r for r in reversed(records) if r["event"] in events), None)
        if last is not None:
            return Observed(status, last.get("reason") or "", via)
    if records:
        return Observed("in_progress", records[-1]["event"], via)
    if swept:
        return Observed(*swept, via)
    return Observed(NOT_EXAMINED, "", via)


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


def problem(seed: Seed, seen: Observed, versions: int, alerts: list[dict[str, Any]]) -> str:
    """Why a certificate did not end as the demo expects, or "" when it did."""
    if seed.expect is None:
        return "" if versions == 1 else f"nothing was to renew it, yet Key Vault shows {versions} versions"
    expected = f"{seed.expect} ({seed.expect_reason})"
    if seen.status == NOT_EXAMINED:
        return f"expected {expected}, but it was not examined by the pipeline"
    if (seen.status, seen.reason) != (seed.expect, seed.expect_reason):
        return f"expected {expected}, the pipeline recorded {seen.status} ({seen.reason})"
    wanted = 2 if seed.expect == RENEWED else 1
    if versions != wanted:
        return f"expected {wanted} version(s) in Key Vault, found {versions}"
    if seed.expect == FAILED and not any(a.get("kind") == "renewal_failed" for a in alerts):
        return "no renewal_failed alert was sent"
    return ""


def _snapshot_row(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The newest status row of ``name`` (empty when the snapshot has none)."""
    mine = [r for r in rows if r.get("KeyVault") == VAULT and r.get("CertName") == name]
    return max(mine, key=lambda r: r.get("TimeGenerated") or "", default={})


def print_summary(outcomes: list[Outcome], elapsed: float, dashboard: Path) -> None:
    width = max(len(o.name) for o in outcomes)
    print()
    print(
        f"{'certificate':<{width}}  {'outcome':<12}  {'reason':<9}  {'examined by':<18}  versions  alerts  check  "
        "what happens next (the snapshot's outlook)"
    )
    for o in outcomes:
        print(
            f"{o.name:<{width}}  {o.status:<12}  {o.reason:<9}  {', '.join(o.via) or '-':<18}  {o.versions:>8}  "
            f"{o.alerts:>6}  {'ok' if o.ok else 'WRONG':<5}  {o.outlook or '-'}"
        )
    counts = {status: sum(o.status == status for o in outcomes) for status in (RENEWED, FAILED, NOT_EXAMINED)}
    unexamined = ", ".join(o.name for o in outcomes if o.status == NOT_EXAMINED) or "none"
    print(
        f"\n{counts[RENEWED]} renewed, {counts[FAILED]} failed, {counts[NOT_EXAMINED]} not examined by the pipeline "
        f"({unexamined}), in {elapsed:.1f} s; outcomes from the audit trail, the sweep's report and Key Vault"
    )
    print(f"dashboard: {dashboard.resolve()}")
