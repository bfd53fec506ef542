"""Benchmark: Key Vault requests per renewal, counted in the Key Vault emulator's request log.

Every case goes through the app's real entry points on the local stack (a message on the renewal
queue drained by the Functions host, ``renewal.handlers.on_queue_message`` for the CA-pending polls,
``renewal.handlers.on_sweep_timer`` for the sweep). The SDK's 401 bearer challenge is left out: it is
a handshake once per process and vault, not a transaction. Target (SPEC §4.2): 3 calls for a plain
renewal (get, create, merge). Prints JSON and writes bench/results/keyvault_calls.json.

    python bench/keyvault_calls.py [--sweep-certs 60]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.support import (  # noqa: E402
    HEALTHY_DAYS_LEFT,
    call_shapes,
    count_shapes,
    enqueue,
    local_stack,
    seed,
    vault_calls,
    write_result,
)
from renewal.messages import RenewalRequest  # noqa: E402

PLAIN_TARGET = 3
PAGE_SIZE = 25  # the emulator's (and Key Vault's) default list page
SWEEP_QUEUE = "bench-sweep-out"
CA_PROFILES = {"server": {}, "approval": {"requires_approval": True, "poll_seconds": 3600}}


class Recorder:
    """Runs one case at a time and keeps the Key Vault requests it made and the audit steps it wrote."""

    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.audit = Path(stack.settings["CERTLC_AUDIT_FILE"])
        self.cases: dict[str, dict[str, Any]] = {}

    def case(self, name: str, action: Callable[[], Any], **extra: Any) -> Any:
        self.stack.control.clear_requests()
        audit_before = len(self._audit_lines())
        started = time.perf_counter()
        outcome = action()
        seconds = time.perf_counter() - started
        entries = self.stack.control.requests()
        steps = [json.loads(line) for line in self._audit_lines()[audit_before:]]
        self.cases[name] = {
            "calls": len(vault_calls(entries)),
            "challenges_401": len(entries) - len(vault_calls(entries)),
            "requests": call_shapes(entries),
            "audit": [" ".join(filter(None, (s["event"], s.get("reason")))) for s in steps],
            "seconds": round(seconds, 3),
            **extra,
        }
        return outcome

    def _audit_lines(self) -> list[str]:
        if not self.audit.exists():
            return []
        return [line for line in self.audit.read_text(encoding="utf-8").splitlines() if line.strip()]

    def through_queue(self, request: RenewalRequest) -> int:
        enqueue(self.stack, [request.to_json()])
        return self.stack.host.drain(timeout=60)


def single_certificate_cases(rec: Recorder) -> None:
    stack = rec.stack
    versions = seed(stack, [("kv1", "plain")])
    versions |= seed(stack, [("kv1", "healthy")], days_left=HEALTHY_DAYS_LEFT)
    seed_pending = seed(stack, [("kv1", "pending")], tags={"certlc-profile": "approval"})
    stack.host.drain(timeout=60)

    first = RenewalRequest("kv1", "plain", "near_expiry", version=versions[("kv1", "plain")])
    rec.case("plain_renewal", lambda: rec.through_queue(first), target=PLAIN_TARGET)
    rec.case("redelivered_after_merge", lambda: rec.through_queue(first))
    stale = RenewalRequest("kv1", "plain", "near_expiry", version=versions[("kv1", "plain")])
    rec.case("stale_event", lambda: rec.through_queue(stale))
    healthy = RenewalRequest("kv1", "healthy", "near_expiry", version=versions[("kv1", "healthy")])
    rec.case("not_due", lambda: rec.through_queue(healthy))
    ca_pending_cases(rec, RenewalRequest("kv1", "pending", "near_expiry", version=seed_pending[("kv1", "pending")]))


def ca_pending_cases(rec: Recorder, request: RenewalRequest) -> None:
    """Submit → Pending, one poll while the CA still waits, approval, the poll that merges."""
    from renewal import handlers
    from renewal.ca.local import LocalCA

    def handle(req: RenewalRequest) -> Any:
        return handlers.on_queue_message(req.to_json())

    submitted = rec.case("ca_pending_submit", lambda: handle(request))
    waiting = submitted.request
    polled = rec.case("ca_pending_poll_still_pending", lambda: handle(waiting))
    LocalCA(Path(rec.stack.settings["CERTLC_LOCAL_CA_DIR"])).approve(waiting.ca_request_id)
    issued = rec.case("ca_pending_poll_issued", lambda: handle(waiting))
    for key, result in (("submit", submitted), ("poll_still_pending", polled), ("poll_issued", issued)):
        rec.cases[f"ca_pending_{key}"]["result"] = f"{result.status} {result.reason}"


def sweep_case(rec: Recorder, certs: int) -> None:
    """The sweep over ``certs`` certificates in kv2, a third of them due; its messages go to a queue nobody polls."""
    from renewal import handlers
    from renewal.runtime import build_runtime

    stack = rec.stack
    due = [("kv2", f"sweep-due-{i:04d}") for i in range(certs // 3)]
    healthy = [("kv2", f"sweep-ok-{i:04d}") for i in range(certs - len(due))]
    seed(stack, due)
    seed(stack, healthy, days_left=HEALTHY_DAYS_LEFT)
    stack.host.drain(timeout=60)
    env = dict(stack.settings) | {"CERTLC_VAULTS": f"kv2={stack.keyvault.vault_urls['kv2']}"}
    runtime = build_runtime(env | {"CERTLC_QUEUE_NAME": SWEEP_QUEUE})
    handlers.reset_runtime(runtime)
    try:
        report = rec.case("sweep", handlers.on_sweep_timer, certificates=certs, due=len(due))
    finally:
        handlers.reset_runtime()
    case = rec.cases["sweep"]
    shapes = count_shapes(stack.control.requests())
    case["requests"] = shapes  # one line per request otherwise: counted by shape instead
    case["audit"] = len(case["audit"])
    case["list_pages"] = shapes.get("GET /certificates", 0)
    case["list_pages_expected"] = -(-certs // PAGE_SIZE)
    case["enqueued"] = len(report.enqueued)
    case["per_due_certificate"] = round((case["calls"] - case["list_pages"]) / max(1, len(due)), 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep-certs", type=int, default=60, help="certificates in the swept vault (default 60)")
    args = parser.parse_args(argv)
    settings = {"CERTLC_BACKOFF_BASE_SECONDS": "1"}
    with local_stack(("kv1", "kv2"), settings, CA_PROFILES) as stack:
        rec = Recorder(stack)
        single_certificate_cases(rec)
        sweep_case(rec, args.sweep_certs)
    result = {"benchmark": "keyvault_calls", "cases": rec.cases}
    write_result("keyvault_calls", result)
    plain = rec.cases["plain_renewal"]
    ok = plain["calls"] <= PLAIN_TARGET and "merged" in plain["audit"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
