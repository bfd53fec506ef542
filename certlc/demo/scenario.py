"""The demo's scenario on a fresh local stack: seed, move Key Vault's clock, let the pipeline run, sweep, check the
targets, ingest the snapshot, write the dashboard, then gather what it all left.

Every server it starts (the CA's, nginx, the stack's) is a context manager entered here, so an error or Ctrl-C
anywhere stops the ones already running.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from certlc.demo.assessment import Evidence, gather
from certlc.demo.ca_servers import CaSetup, approve_waiting, ca_server
from certlc.demo.endpoints import (
    add_gateway,
    certlc_json,
    endpoint_server,
    gateway_reference,
    sync,
    with_endpoints,
)
from certlc.demo.seeds import (
    EXPOSED,
    KEPT_IN_STEP,
    LEFT_BEHIND,
    PINNED,
    REVOKED_AT_CA,
    SYNCED,
    VAULT,
    left_out,
    seed_vault,
    seeds_for,
)

if TYPE_CHECKING:
    from renewal.sweep import SweepReport

ADVANCE_DAYS = 15
RENEW_TIMEOUT = 90.0  # seconds for one certlc renew run (an AD CS request, a revocation at pebble or cfssl)


def play(directory: Path, pending_version: str, say: Callable[[str], None], ca: str = "local") -> tuple[Evidence, Path]:
    """Run the scenario on a fresh local stack renewing with ``ca``; the evidence it left and the dashboard."""
    from localazure.receiver import WebhookReceiver
    from localazure.stack import LocalStack

    from ingestion.history import STREAM_DEFAULT as HISTORY_STREAM

    receiver = WebhookReceiver().start()
    try:
        with ca_server(ca, directory / "ca-server", say) as setup, endpoint_server(directory / "nginx", say) as nginx:
            seeds = tuple(with_endpoints(seed, nginx) for seed in seeds_for(ca))
            say("starting the local stack (Azurite, Key Vault and Logs Ingestion emulators, Functions host)")
            with LocalStack(
                directory,
                vaults=(VAULT,),
                extra_settings=_demo_settings(receiver.url) | setup.settings,
                pending_version=pending_version,
            ) as stack:
                if setup.follow_clock is not None:
                    setup.follow_clock(stack.now)
                client = stack.certificate_client(VAULT)
                audit_file = Path(stack.settings["CERTLC_AUDIT_FILE"])
                say(f"seeding vault {VAULT} with {len(seeds)} certificates")
                # the served one first, installed on nginx as a server is set up; then the others as before (the
                # expired one's event comes within a second of its seeding, as it always did)
                seeded = seed_vault(client, stack, tuple(seed for seed in seeds if seed.name == SYNCED))
                for host in (KEPT_IN_STEP, LEFT_BEHIND):
                    say(f"{host}: certlc sync installs {SYNCED} on nginx (reload, then a TLS check of the endpoint)")
                    sync(stack, nginx, host, say)
                # the two whose old key is retired next, before the others: their operators' steps take seconds, and
                # the others are seeded just before the clock moves, as they always were
                retiring = tuple(seed for seed in seeds if seed.name in (EXPOSED, REVOKED_AT_CA))
                seeded |= seed_vault(client, stack, retiring)
                retire_old_keys(stack, client, setup, receiver, say, {seed.name for seed in retiring})
                seeded |= seed_vault(client, stack, tuple(seed for seed in seeds if seed.name not in seeded))
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
                dashboard = _dashboard(rows, stack.logs.rows(HISTORY_STREAM), directory, stack.now())
                references = {PINNED: gateway_reference(stack, gateway)}
                evidence = gather(
                    ca,
                    client,
                    audit_file,
                    report,
                    receiver.payloads(),
                    rows,
                    approved,
                    lambda serial: setup.says(stack, serial),
                )
                evidence = replace(evidence, nginx_port=nginx.port, references=references, left_out=left_out(ca))
    finally:
        receiver.stop()
    return evidence, dashboard


def retire_old_keys(
    stack: Any, client: Any, setup: CaSetup, receiver: Any, say: Callable[[str], None], names: set[str]
) -> None:
    """Before the clock moves: the operator renews ``EXPOSED`` with ``--compromise`` (with AD CS, which cannot
    revoke over web enrollment, the CA's operator then runs the ``certutil -revoke`` its notice names, and the
    sweep sees it on the CA's CRL), and the CA's operator revokes ``REVOKED_AT_CA`` without telling certlc, for the
    sweep to find. Each is first renewed once with ``--force``, so that this CA issued its current version."""
    from renewal.x509info import der_to_pem

    for name in sorted(names & {EXPOSED, REVOKED_AT_CA}):
        say(f"{name}: certlc renew --force, so that this CA issues the version whose key is then retired")
        renew(stack, say, name, "--force")
    if EXPOSED in names:
        say(f"{EXPOSED}: its key may be exposed: certlc renew --compromise")
        renew(stack, say, EXPOSED, "--compromise")
        awaiting = [
            n for n in receiver.payloads() if isinstance(n, dict) and n.get("kind") == "compromise"
            if n.get("name") == EXPOSED and n.get("revocation") == "awaiting" and n.get("serial")
        ]  # fmt: skip
        if awaiting and setup.revoke_serial is not None:
            say(f"{EXPOSED}: the notice says to run `{awaiting[-1].get('instructions')}`; the CA's operator runs it")
            setup.revoke_serial(str(awaiting[-1]["serial"]))
    if REVOKED_AT_CA in names and setup.revoke is not None:
        say(f"{REVOKED_AT_CA}: its CA's operator revokes it (keyCompromise) without telling certlc")
        setup.revoke(stack, der_to_pem(bytes(client.get_certificate(REVOKED_AT_CA).cer)))


def renew(stack: Any, say: Callable[[str], None], name: str, *options: str) -> None:
    """``certlc renew NAME`` as an operator runs it, in its own process with the stack's settings; its answer said."""
    said = certlc_json(stack, ["renew", name, "--vault", VAULT, *options], RENEW_TIMEOUT, f"{name}: certlc renew", say)
    if said:
        say(f"{name}: certlc renew {' '.join(options)}: {said.get('status')} ({said.get('reason')})")


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


def _demo_settings(webhook_url: str) -> dict[str, str]:
    return {
        "CERTLC_WEBHOOK_URLS": f"generic={webhook_url}",
        "CERTLC_NOTIFY_DEFAULT_RECIPIENTS": "pki-team@example.com",
        "CERTLC_ROLLOUT": "update",  # a reference pinned to the replaced version is moved to the new one
    }


def _dashboard(rows: list[dict[str, Any]], history: list[dict[str, Any]], directory: Path, stack_now: Any) -> Path:
    """The page, its snapshot's age on the stack's clock, which the demo moved forward (the page says so)."""
    from datetime import UTC, datetime

    from certlc.dashboard import render
    from certlc.dashboard.view import stack_clock

    ahead = (stack_now - datetime.now(UTC)).total_seconds()
    return render(rows, directory / "dashboard.html", history, clock=stack_clock(ahead))
