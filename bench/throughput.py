"""Benchmark: sustained renewals per second against Key Vault's throttling limits, with zero failures.

Seeds N due certificates across vaults (throttling off), turns on the emulator's throttling at Key
Vault's real per-vault limits (20 creates per 10 s; ``--time-scale`` shrinks the window), queues one
message per certificate and lets the local stack's Functions host drain the queue. The SDK honours
429 ``Retry-After``; what it gives up on, the workflow re-queues with back-off.

Sustained rate per vault: the creates after the first window's allowance of 20, over the time from
its first to its last create; at the limit this equals 20 per window (2/s at the real window).
With ``--no-throttling`` it is plain creates per second: what the stack itself can do. Also reported: end-to-end
renewals/s, 429s seen in the request log, workflow retries, failures (must be 0) and versions per
certificate (must be exactly 2). Prints JSON and writes bench/results/throughput.json.

    python bench/throughput.py [--certs 160] [--vaults 2] [--time-scale 1.0] [--no-throttling]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from localazure.ports import poll_until  # noqa: E402

from bench.support import certificate_client, count_shapes, enqueue, local_stack, seed, write_result  # noqa: E402
from renewal import handlers  # noqa: E402
from renewal.messages import RenewalRequest  # noqa: E402

CREATE_LIMIT = 20  # creates per vault per window (Key Vault service limits)
WINDOW_SECONDS = 10.0
POLL_SECONDS = 0.1


def audit_events(stack: Any) -> list[dict[str, Any]]:
    path = Path(stack.settings["CERTLC_AUDIT_FILE"])
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_until_settled(stack: Any, expected: int, timeout: float) -> list[dict[str, Any]]:
    """Drain until every certificate merged or failed; delayed retries become visible on their own."""
    settled: set[tuple[str, str]] = set()
    end = time.monotonic() + timeout

    def all_settled() -> bool:
        stack.host.drain(timeout=max(1.0, end - time.monotonic()))
        events = audit_events(stack)
        settled.update((e["vault"], e["name"]) for e in events if e["event"] in ("merged", "failed", "rejected"))
        return len(settled) >= expected

    poll_until(all_settled, timeout=timeout, interval=POLL_SECONDS, what=lambda: f"{len(settled)} of {expected}")
    return audit_events(stack)


def _at(entry: Mapping[str, Any]) -> float:
    return dt.datetime.fromisoformat(entry["time"]).timestamp()


def sustained_rates(entries: Sequence[Mapping[str, Any]], allowance: int) -> dict[str, float | None]:
    """Per vault: creates beyond the first window's ``allowance``, per second between first and last create.

    None when a vault had no more creates than the allowance: the limit was never reached there.
    """
    creates: dict[str, list[float]] = defaultdict(list)
    for e in entries:
        if e["method"] == "POST" and e["path"].endswith("/create") and e["status"] < 400:
            creates[e["vault"]].append(_at(e))
    rates: dict[str, float | None] = {}
    for vault, times in creates.items():
        span = max(times) - min(times)
        beyond = len(times) - allowance
        rates[vault] = round(beyond / span, 3) if beyond > 0 and span > 0 else None
    return rates


def measure(stack: Any, names: Sequence[tuple[str, str]], args: argparse.Namespace) -> dict[str, Any]:
    """Seed, queue every renewal under throttling, settle; what the request log, audit and vaults show."""
    seed_started = time.perf_counter()
    versions = seed(stack, names)
    seed_seconds = time.perf_counter() - seed_started
    stack.host.drain(timeout=60)
    stack.control.throttling(not args.no_throttling, args.time_scale)
    stack.control.clear_requests()
    started = time.perf_counter()
    enqueue(
        stack,
        (RenewalRequest(v, n, "near_expiry", version=ver).to_json() for (v, n), ver in versions.items()),
    )
    events = run_until_settled(stack, len(names), args.timeout)
    seconds = time.perf_counter() - started
    stack.control.throttling(False)
    entries = stack.control.requests()
    clients = {v: certificate_client(stack, v) for v in stack.vault_names}
    counts = Counter(
        sum(1 for p in clients[v].list_properties_of_certificate_versions(n) if p.x509_thumbprint) for v, n in names
    )
    return {
        "seed_seconds": seed_seconds,
        "seconds": seconds,
        "entries": entries,
        "events": events,
        "version_counts": counts,
        "failed_store": len(handlers.runtime().failed.list()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--certs", type=int, default=160, help="due certificates, spread over the vaults")
    parser.add_argument("--vaults", type=int, default=2)
    parser.add_argument("--time-scale", type=float, default=1.0, help="window = 10 s x this (0 < x <= 1)")
    parser.add_argument("--no-throttling", action="store_true", help="measure the stack alone, without limits")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    vaults = [f"kv{i}" for i in range(1, args.vaults + 1)]
    names = [(vaults[i % len(vaults)], f"tp-{i:05d}") for i in range(args.certs)]
    settings = {"CERTLC_BACKOFF_BASE_SECONDS": "1", "CERTLC_BACKOFF_CAP_SECONDS": "30"}
    with local_stack(vaults, settings) as stack:
        run = measure(stack, names, args)
    entries, events, counts = run["entries"], run["events"], run["version_counts"]
    throttled = not args.no_throttling
    window = WINDOW_SECONDS * args.time_scale
    limit = CREATE_LIMIT / window
    rates = sustained_rates(entries, CREATE_LIMIT if throttled else 0)
    fractions = {v: round(r / limit, 3) for v, r in sorted(rates.items()) if r is not None}
    failures = sum(e["event"] in ("failed", "rejected") for e in events)
    result = {
        "benchmark": "throughput",
        "certificates": args.certs,
        "vaults": args.vaults,
        "throttling": throttled,
        "time_scale": args.time_scale,
        "window_seconds": window,
        "limit_creates_per_second_per_vault": limit,
        "seed_seconds": round(run["seed_seconds"], 1),
        "seconds": round(run["seconds"], 2),
        "renewals_per_second": round(args.certs / run["seconds"], 2),
        "sustained_creates_per_second": dict(sorted(rates.items())),
        "fraction_of_limit": round(sum(fractions.values()) / len(fractions), 3) if throttled and fractions else None,
        "fraction_of_limit_per_vault": fractions if throttled else None,
        "throttled_429": sum(e["status"] == 429 for e in entries),
        "throttled_429_by_request": count_shapes([e for e in entries if e["status"] == 429]),
        "keyvault_calls": count_shapes(entries),
        "workflow_retries": sum(e["event"] == "retried" for e in events),
        "failures": failures,
        "failed_store_entries": run["failed_store"],
        "versions_per_certificate": {str(k): v for k, v in sorted(counts.items())},
    }
    write_result("throughput", result)
    ok = failures == 0 and run["failed_store"] == 0 and counts == Counter({2: args.certs})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
