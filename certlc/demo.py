"""``certlc demo``: the whole pipeline on the local stack, end to end, with a summary.

It seeds a vault the way an operator's vault looks on the day certlc is installed (an
expired certificate, one expiring within 30 days, a healthy one, a Key Vault self-signed
one, and one whose CA template was retired), moves the Key Vault clock forward so Key
Vault raises its events, lets Event Grid → queue → renew → merge → notify run, runs the
sweep, ingests the status snapshot, writes the dashboard and checks every certificate
ended as it should. Exit code 0 only when all did.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEMO_DIR = Path(".local/demo")
VAULT = "kv1"
ADVANCE_DAYS = 15


@dataclass(frozen=True)
class Seed:
    name: str
    issuer: str  # "Unknown" (certlc renews) or "Self" (Key Vault renews)
    days_left: int  # at seeding time
    lifetime_days: int
    expect: str  # the status the certificate must end in
    expect_reason: str
    tags: dict[str, str] = field(default_factory=dict)
    sans: tuple[str, ...] = ()


SEEDS = (
    Seed(
        "web-expired",
        "Unknown",
        -2,
        90,
        "renewed",
        "renewed",
        {"Recipient": "web-team@example.com"},
        ("www.example.com",),
    ),
    Seed(
        "shop-expiring",
        "Unknown",
        40,
        90,
        "renewed",
        "renewed",
        {"Recipient": "shop@example.com; oncall@example.com", "owner": "shop"},
        ("shop.example.com", "cart.example.com"),
    ),
    Seed("api-healthy", "Unknown", 300, 365, "skipped", "not_due", {}, ("api.example.com",)),
    Seed("portal-selfsigned", "Self", 0, 0, "skipped", "not_managed", {}, ("portal.example.com",)),
    Seed(
        "partner-retired",
        "Unknown",
        38,
        90,
        "failed",
        "ca_denied",
        {"certlc-profile": "retired-template"},
        ("partner.example.com",),
    ),
)


@dataclass
class Outcome:
    name: str
    expected: str
    status: str
    reason: str
    versions: int
    alerts: int
    ok: bool
    detail: str = ""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, default=DEMO_DIR, help=f"state folder, wiped first (default {DEMO_DIR})")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--keyvault-pending-version",
        choices=("placeholder", "previous"),
        default="placeholder",
        help="the Key Vault emulator's --pending-version (default placeholder)",
    )


def run(args: argparse.Namespace) -> int:
    from certlc.localstack.receiver import WebhookReceiver
    from certlc.localstack.stack import LocalStack

    say = _progress(quiet=args.json)
    shutil.rmtree(args.dir, ignore_errors=True)
    log_file = _log_to_file(args.dir / "demo.log")
    receiver = WebhookReceiver().start()
    say("starting the local stack (Azurite, Key Vault and Logs Ingestion emulators, Functions host)")
    started = time.monotonic()
    try:
        with LocalStack(
            args.dir,
            vaults=(VAULT,),
            extra_settings=_demo_settings(receiver.url),
            pending_version=args.keyvault_pending_version,
        ) as stack:
            client = stack.certificate_client(VAULT)
            say(f"seeding vault {VAULT} with {len(SEEDS)} certificates")
            seed_vault(client, stack)
            say(f"moving the Key Vault clock {ADVANCE_DAYS} days forward: Key Vault raises its expiry events")
            stack.control.advance(ADVANCE_DAYS * 86400)
            stack.settle()
            say("running the sweep (the safety net for missed events)")
            stack.host.trigger_timer("sweep")
            stack.settle()
            say("ingesting the status snapshot and writing the dashboard")
            stack.host.trigger_timer("ingest")
            dashboard = _dashboard(stack, args.dir)
            outcomes = assess(client, stack, args.dir, receiver.payloads())
    finally:
        receiver.stop()
    elapsed = time.monotonic() - started
    ok = all(o.ok for o in outcomes)
    if args.json:
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
    return 0 if ok else 1


def _log_to_file(path: Path) -> Path:
    """The functions' and the audit trail's log lines go to a file; the terminal shows progress and the summary."""
    import logging

    from certlc.localstack.host import quiet_http_logging

    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    quiet_http_logging()
    return path


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
    from certlc.localstack.seeding import PreviousCA, seed_certificate

    ca = PreviousCA()
    now = stack.now()
    for seed in SEEDS:
        seed_certificate(
            client,
            ca,
            seed.name,
            now=now,
            sans=seed.sans,
            issuer=seed.issuer,
            days_left=seed.days_left,
            lifetime_days=seed.lifetime_days,
            tags=seed.tags,
        )


def _dashboard(stack: Any, directory: Path) -> Path:
    from certlc.dashboard import render

    return render(stack.logs.rows(), directory / "dashboard.html")


def assess(client: Any, stack: Any, directory: Path, alerts: list[Any]) -> list[Outcome]:
    """Each seeded certificate's final state, from the audit trail, Key Vault and the alerts received."""
    from renewal.decide import Input, WindowSettings, decide
    from renewal.keyvault import KeyVault
    from renewal.messages import RenewalRequest
    from renewal.vaults import Vault

    audit = _audit_records(directory / "stack" / "audit.jsonl", stack)
    kv = KeyVault(client, Vault(VAULT, stack.keyvault.vault_urls[VAULT]))
    vaults = {VAULT: kv.vault}
    outcomes = []
    for seed in SEEDS:
        records = [r for r in audit if r.get("name") == seed.name]
        versions = sum(1 for v in client.list_properties_of_certificate_versions(seed.name) if v.x509_thumbprint)
        mine = [a for a in alerts if isinstance(a, dict) and a.get("name") == seed.name]
        status, reason = _final_state(records)
        if status == "untouched":  # no event and not due for the sweep: say why, from the decision chain
            verdict = decide(
                Input(
                    RenewalRequest(VAULT, seed.name, "sweep"),
                    vaults,
                    kv.get(seed.name),
                    stack.now(),
                    WindowSettings(),
                )
            )
            status, reason = ("skipped", verdict.reason) if verdict.outcome == "skip" else ("missed", verdict.reason)
        expected_versions = 2 if seed.expect == "renewed" else 1
        failure_alerted = seed.expect != "failed" or any(a.get("kind") == "renewal_failed" for a in mine)
        ok = (status, reason) == (seed.expect, seed.expect_reason) and versions == expected_versions and failure_alerted
        detail = "" if ok else f"expected {seed.expect} ({seed.expect_reason}) with {expected_versions} version(s)"
        outcomes.append(Outcome(seed.name, seed.expect, status, reason, versions, len(mine), ok, detail))
    return outcomes


def _audit_records(path: Path, stack: Any) -> list[dict[str, Any]]:
    if not path.exists():
        path = Path(stack.settings.get("CERTLC_AUDIT_FILE", path))
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _final_state(records: list[dict[str, Any]]) -> tuple[str, str]:
    """A renewal, once merged, stays renewed; otherwise the last failure, else the last skip."""
    events = [r["event"] for r in records]
    if "merged" in events:
        return "renewed", "renewed"
    for record in reversed(records):
        if record["event"] in ("failed", "rejected"):
            return "failed", record.get("reason", "?")
    for record in reversed(records):
        if record["event"] == "skipped":
            return "skipped", record.get("reason", "?")
    return "untouched", ""


def print_summary(outcomes: list[Outcome], elapsed: float, dashboard: Path) -> None:
    width = max(len(o.name) for o in outcomes)
    print()
    print(f"{'certificate':<{width}}  {'outcome':<8}  {'reason':<12}  versions  alerts  check")
    for o in outcomes:
        mark = "ok" if o.ok else f"WRONG: {o.detail}"
        print(f"{o.name:<{width}}  {o.status:<8}  {o.reason:<12}  {o.versions:>8}  {o.alerts:>6}  {mark}")
    renewed = sum(o.status == "renewed" for o in outcomes)
    failed = sum(o.status == "failed" for o in outcomes)
    skipped = sum(o.status == "skipped" for o in outcomes)
    print(f"\n{renewed} renewed, {skipped} skipped, {failed} failed with an alert, in {elapsed:.1f} s")
    print(f"dashboard: {dashboard.resolve()}")
    if not all(o.ok for o in outcomes):
        print("demo FAILED: some certificates did not end as they should", file=sys.stderr)
