"""Benchmark: renewals under Key Vault's throttling limits with certlc's pacing: few 429s, near the limit, 0 failures.

Seeds N due certificates across vaults of one subscription (throttling off), turns on the emulator's throttling at
Key Vault's real limits (20 creates per vault and 100 per subscription per 10 s window, an HSM create weighing 2;
``--time-scale`` shrinks the window and the pacing's ``CERTLC_PACING_WINDOW_SECONDS`` with it), queues one message
per certificate and lets the stack's in-process Functions host, plus ``--processes - 1`` ``certlc worker``
processes on the same queue, drain it. The functions use the wall clock (the emulator's clock is never moved, so
both agree): the emulated clock's HTTPS call per renewal is a local-stack cost production never pays.

Measured, from the emulator's throttling counts (``throttle_stats``) and request log, the audit trail and the vaults:

* Key Vault calls (granted + 429, by the emulator's counts) and the share answered 429;
* the binding limit, in creates per window: min(vaults x 20, 100), halved for HSM keys;
* the achieved rate over the steady part of the run: windows counted from the first successful create, the mean
  creates of the whole windows after the first and before the last; the first is left out because an empty budget
  lets a burst through at once, the last because the last create cut it short. Also the creates in each window and
  the most any sliding window held per vault and for the subscription, by the time Key Vault answered (so a little
  above what it counted when its answers lag);
* failures (audit ``failed``/``rejected``, failed-store entries), versions per certificate (each must have exactly 2),
  the workflow's send-backs by reason, wall time, and the pacing's own blob calls made in this process.

Bars (``bars``): 429 share <= 1 %, achieved rate >= 0.9 x the binding limit, 0 failures, exactly one new version per
certificate. ``--no-throttling`` measures the stack alone, pacing off unless ``--pacing on`` (the creates per second
it sustains; only the last two bars).
``--matrix full`` runs the issue's configurations (1,000 and 10,000 certificates, 1, 2 and 4 processes, 2 vaults,
6 vaults and HSM keys), each in a fresh process, and writes them all to bench/results/throughput.json.

    python bench/throughput.py [--certs 160] [--vaults 2] [--processes 1|2|4] [--hsm] [--time-scale 1.0]
                               [--retry-after always|never|mixed] [--no-throttling] [--matrix full]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from localazure.ports import poll_until  # noqa: E402

from bench.support import (  # noqa: E402
    RESULTS,
    certificate_client,
    count_shapes,
    emulated_now,
    enqueue,
    local_stack,
    seed,
    spread,
    vault_calls,
    worker_processes,
    write_result,
)
from renewal import handlers  # noqa: E402
from renewal.messages import RenewalRequest  # noqa: E402

CREATE_LIMIT = 20  # creates per vault per window (Key Vault service limits), software keys
SUBSCRIPTION_FACTOR = 5  # the subscription's ceiling: 5 x the per-vault limit, all vaults together
HSM_CREATE_COST = 2  # an HSM key's create weighs 2 (10 per vault per window)
WINDOW_SECONDS = 10.0
SUBSCRIPTION = "sub-bench"
POLL_SECONDS = 0.5
MAX_429_SHARE = 0.01
MIN_FRACTION_OF_LIMIT = 0.9
CLOCK_SKEW_ALLOWED = 5.0  # seconds between the emulator's clock and the wall clock before the wall clock is refused
_WORKER_INVOCATION = re.compile(r"renewal \S+/tp-\d+ ")
MATRIX_CERTS = (1000, 10000)
MATRIX_PROCESSES = (1, 2, 4)
MATRIX_SHAPES = {"vaults_2": ["--vaults", "2"], "vaults_6": ["--vaults", "6"], "hsm": ["--vaults", "2", "--hsm"]}


# --- the bars, from the run's own records (pure) -------------------------------------------------------------


def binding_limit(vaults: int, hsm: bool = False) -> float:
    """Creates per window the vaults of one subscription may make together: each vault's 20 or the subscription's
    100, whichever is lower; an HSM create weighs 2, so half as many."""
    weight = min(vaults * CREATE_LIMIT, SUBSCRIPTION_FACTOR * CREATE_LIMIT)
    return weight / (HSM_CREATE_COST if hsm else 1)


def binding_scope(vaults: int) -> str:
    return "vault" if vaults * CREATE_LIMIT < SUBSCRIPTION_FACTOR * CREATE_LIMIT else "subscription"


def at(entry: Mapping[str, Any]) -> float:
    return dt.datetime.fromisoformat(entry["time"]).timestamp()


def is_create(entry: Mapping[str, Any]) -> bool:
    return entry["method"] == "POST" and entry["path"].rstrip("/").endswith("/create")


def create_times(entries: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Per vault, the sorted times of the creates Key Vault granted (answered below 400)."""
    found: dict[str, list[float]] = defaultdict(list)
    for e in entries:
        if is_create(e) and e["status"] < 400:
            found[e["vault"]].append(at(e))
    return {vault: sorted(times) for vault, times in sorted(found.items())}


def steady_rate(times: Sequence[float], window: float) -> dict[str, Any] | None:
    """Creates per window over the steady part: the whole windows (counted from the first create) after the first
    and before the last, which the last create cut short.

    The first is left out for the burst an empty budget lets through, the last for being partial (its creates come
    at its start). None when the run is too short to have one (its creates all within three windows)."""
    counts = per_window(times, window)[1:-1]
    if not counts:
        return None
    creates = sum(counts)
    return {
        "windows": len(counts),
        "creates": creates,
        "creates_per_window": round(creates / len(counts), 3),
        "creates_per_second": round(creates / len(counts) / window, 3),
    }


def per_window(times: Sequence[float], window: float) -> list[int]:
    """Creates in each window from the first create (window 0 holds it)."""
    if not times:
        return []
    first = min(times)
    counts = Counter(int((t - first) // window) for t in times)
    return [counts.get(i, 0) for i in range(max(counts) + 1)]


def max_in_any_window(times: Sequence[float], window: float) -> int:
    """The most creates any sliding window of ``window`` seconds held (Key Vault's own way of counting)."""
    ordered = sorted(times)
    best, left = 0, 0
    for right, t in enumerate(ordered):
        while ordered[left] <= t - window:
            left += 1
        best = max(best, right - left + 1)
    return best


def share_429(calls: int, throttled: int) -> float:
    """The share of Key Vault calls answered 429 (0 without calls)."""
    return round(throttled / calls, 5) if calls else 0.0


def log_calls(entries: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """Key Vault calls and 429s in the request log (the SDK's 401 bearer challenge is no call)."""
    calls = vault_calls(entries)
    return len(calls), sum(1 for e in calls if e["status"] == 429)


def stats_calls(stats: Mapping[str, Any]) -> tuple[int, int, int]:
    """Calls, 429s and granted create weight over every subscription in the emulator's counts."""
    calls = throttled = create_weight = 0
    for counts in stats.get("subscriptions", {}).values():
        calls += sum(c["requests"] for c in counts["granted"].values()) + sum(counts["throttled"].values())
        throttled += sum(counts["throttled"].values())
        create_weight += counts["granted"]["create"]["weight"]
    return calls, throttled, create_weight


def bars(
    *,
    throttled: bool,
    share: float,
    fraction: float | None,
    failures: int,
    versions: Mapping[int, int],
    certs: int,
) -> dict[str, dict[str, Any]]:
    """Each bar with the value the run measured and whether it met it; rate and 429 bars only under throttling."""
    found: dict[str, dict[str, Any]] = {}
    if throttled:
        found["share_429"] = {"value": share, "bar": f"<= {MAX_429_SHARE}", "met": share <= MAX_429_SHARE}
        found["fraction_of_limit"] = {
            "value": fraction,
            "bar": f">= {MIN_FRACTION_OF_LIMIT}",
            "met": fraction is not None and fraction >= MIN_FRACTION_OF_LIMIT,
        }
    found["failures"] = {"value": failures, "bar": "== 0", "met": failures == 0}
    exactly = dict(versions) == {2: certs}
    found["one_new_version_each"] = {
        "value": {str(k): v for k, v in sorted(versions.items())},
        "bar": f"every one of {certs} certificates has 2 versions",
        "met": exactly,
    }
    return found


# --- the run ---------------------------------------------------------------------------------------------------


class AuditReader:
    """The audit trail (host and workers append to one file), read incrementally."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.events: list[dict[str, Any]] = []

    def read(self) -> list[dict[str, Any]]:
        if self.path.exists():
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
            complete = chunk.rfind(b"\n") + 1  # a line still being written waits for the next read
            self.offset += complete
            for line in chunk[:complete].decode("utf-8").splitlines():
                if line.strip():
                    self.events.append(json.loads(line))
        return self.events


def run_until_settled(stack: Any, audit: AuditReader, expected: int, timeout: float) -> list[dict[str, Any]]:
    """Until every certificate merged or failed; the host polls on its own, the workers too."""
    settled: set[tuple[str, str]] = set()
    seen = 0

    def all_settled() -> bool:
        nonlocal seen
        events = audit.read()
        settled.update((e["vault"], e["name"]) for e in events[seen:] if e["event"] in ("merged", "failed", "rejected"))
        seen = len(events)
        return len(settled) >= expected

    poll_until(all_settled, timeout=timeout, interval=POLL_SECONDS, what=lambda: f"{len(settled)} of {expected}")
    return audit.read()


@contextmanager
def counting_budget_calls() -> Iterator[Counter[str]]:
    """The pacing's calls on its budget blob made in this process (the host's; workers' are not seen)."""
    from azure.storage.blob import BlobClient

    from renewal.pacing.store import BLOB_NAME

    counts: Counter[str] = Counter()
    originals = {name: getattr(BlobClient, name) for name in ("download_blob", "upload_blob")}

    def counted(name: str) -> Any:
        original = originals[name]

        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            if self.blob_name != BLOB_NAME:
                return original(self, *args, **kwargs)
            counts[name] += 1
            try:
                return original(self, *args, **kwargs)
            except Exception as exc:
                counts[f"{name}:{type(exc).__name__}"] += 1
                raise

        return call

    for name in originals:
        setattr(BlobClient, name, counted(name))
    try:
        yield counts
    finally:
        for name, original in originals.items():
            setattr(BlobClient, name, original)


@contextmanager
def tracing_grants() -> Iterator[list[dict[str, Any]]]:
    """In this process (the host's): for each create, when the pacing granted it and when the create was sent, to
    set beside when Key Vault answered it (the request log)."""
    from renewal.pacing.store import BlobPacer
    from renewal.workflow import RenewalWorkflow

    traced: list[dict[str, Any]] = []
    local = threading.local()
    acquire, create = BlobPacer.acquire, RenewalWorkflow._create

    def traced_acquire(self: Any, vault: str, kind: Any) -> Any:
        local.granted = granted = acquire(self, vault, kind)
        return granted

    def traced_create(self: Any, kv: Any, request: Any, cert: Any, tags: Any) -> Any:
        traced.append(
            {
                "vault": request.vault,
                "name": request.name,
                "granted": getattr(local, "granted", None),
                "sent": time.time(),
            }
        )
        return create(self, kv, request, cert, tags)

    BlobPacer.acquire, RenewalWorkflow._create = traced_acquire, traced_create  # type: ignore[method-assign]
    try:
        yield traced
    finally:
        BlobPacer.acquire, RenewalWorkflow._create = acquire, create  # type: ignore[method-assign]


def grant_delays(traced: Sequence[Mapping[str, Any]], entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Seconds from the pacing's grant to the create's sending and to Key Vault's answer, per create this process
    made (its answer: the certificate's first create in the request log answered after it was sent)."""
    answered: dict[tuple[str, str], list[float]] = defaultdict(list)
    for e in entries:
        if is_create(e):
            answered[e["vault"], e["path"].strip("/").split("/")[1]].append(at(e))
    to_send, to_answer = [], []
    for t in traced:
        if t["granted"] is None:
            continue
        to_send.append(t["sent"] - t["granted"])
        later = [a for a in answered.get((t["vault"], t["name"]), ()) if a >= t["sent"]]
        if later:
            to_answer.append(min(later) - t["granted"])
    return {
        "grant_to_send": spread(to_send) if to_send else None,
        "grant_to_answer": spread(to_answer) if to_answer else None,
    }


def throttled_creates(
    entries: Sequence[Mapping[str, Any]], traced: Sequence[Mapping[str, Any]], window: float
) -> list[dict[str, Any]]:
    """Each create Key Vault answered 429: its vault, when (seconds from the first create), and the vault's creates
    the pacing granted in this process in the window before it and Key Vault answered in that window."""
    creates = [e for e in entries if is_create(e)]
    if not creates:
        return []
    first = min(at(e) for e in creates)
    found = []
    for e in creates:
        if e["status"] != 429:
            continue
        t = at(e)
        found.append(
            {
                "vault": e["vault"],
                "at_seconds": round(t - first, 3),
                "window": int((t - first) // window),
                "granted_in_window_before": sum(
                    1 for g in traced if g["vault"] == e["vault"] and g["granted"] and t - window < g["granted"] <= t
                ),
                "answered_in_window_before": sum(
                    1 for c in creates if c["vault"] == e["vault"] and c["status"] < 400 and t - window < at(c) <= t
                ),
            }
        )
    return found


def budget_blob(stack: Any) -> Any:
    """The shared budget as it was left, for the report (None when pacing never wrote it)."""
    from renewal.ledger import lock_container
    from renewal.pacing.store import BLOB_NAME

    try:
        return json.loads(lock_container(stack.settings).get_blob_client(BLOB_NAME).download_blob().readall())
    except Exception as exc:  # a report line, not a bar
        return f"unreadable: {type(exc).__name__}"


def version_counts(stack: Any, names: Sequence[tuple[str, str]]) -> Counter[int]:
    clients = {v: certificate_client(stack, v) for v in stack.vault_names}

    def count(key: tuple[str, str]) -> int:
        vault, name = key
        return sum(1 for p in clients[vault].list_properties_of_certificate_versions(name) if p.x509_thumbprint)

    with ThreadPoolExecutor(8) as pool:
        return Counter(pool.map(count, names))


def storm(stack: Any, shells: int) -> list[int]:
    """A CA migration: ``certlc renew --all --force --queue`` typed in ``shells`` shells at once, each queueing every
    certificate pinned to the version it saw; the duplicates find it replaced. Their exit codes."""
    command = [sys.executable, "-m", "certlc", "--settings", str(stack.settings_path)]
    command += ["renew", "--all", "--force", "--queue", "-o", "json"]
    runs = [
        subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL) for _ in range(shells)
    ]
    return [run.wait(timeout=1800) for run in runs]


def measure(stack: Any, names: Sequence[tuple[str, str]], args: argparse.Namespace) -> dict[str, Any]:
    """Seed, queue every renewal under throttling, settle; what the emulator, the audit and the vaults show."""
    from azure.keyvault.certificates import KeyType

    policy = {"key_type": KeyType.rsa_hsm, "exportable": False} if args.hsm else {}
    seed_started = time.perf_counter()
    versions = seed(stack, names, policy=policy)
    seed_seconds = time.perf_counter() - seed_started
    stack.host.drain(timeout=60)
    audit = AuditReader(Path(stack.settings["CERTLC_AUDIT_FILE"]))
    audit.read()
    before = len(audit.events)  # seeding raises no renewal, but leave anything earlier out all the same
    with (
        worker_processes(stack, args.processes - 1) as workers,
        counting_budget_calls() as budget_calls,
        tracing_grants() as traced,
    ):
        stack.control.throttling(
            not args.no_throttling, args.time_scale, args.retry_after, {SUBSCRIPTION: list(stack.vault_names)}
        )
        stack.control.clear_requests()
        started = time.perf_counter()
        if args.storm:
            storm_exits = storm(stack, args.storm)
        else:
            storm_exits = []
            enqueue(
                stack,
                (RenewalRequest(v, n, "near_expiry", version=ver).to_json() for (v, n), ver in versions.items()),
            )
        run_until_settled(stack, audit, len(names), args.timeout)
        seconds = time.perf_counter() - started
        stats = stack.control.throttle_stats()
        entries = stack.control.requests()
        worker_invocations = [
            sum(1 for line in log.read_text(errors="replace").splitlines() if _WORKER_INVOCATION.search(line))
            for _, log in workers
        ]
    stack.control.throttling(False)
    return {
        "seed_seconds": seed_seconds,
        "seconds": seconds,
        "stats": stats,
        "entries": entries,
        "events": audit.events[before:],
        "version_counts": version_counts(stack, names),
        "failed_store": len(handlers.runtime().failed.list()),
        "budget_calls_in_host": dict(budget_calls),
        "worker_invocations": worker_invocations,
        "budget_blob": budget_blob(stack),
        "traced": traced,
        "storm_exits": storm_exits,
    }


def report(run: Mapping[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    entries, events, counts = run["entries"], run["events"], run["version_counts"]
    throttled = not args.no_throttling
    window = WINDOW_SECONDS * args.time_scale
    limit = binding_limit(args.vaults, args.hsm)
    by_vault = create_times(entries)
    everything = sorted(t for times in by_vault.values() for t in times)
    steady = steady_rate(everything, window)
    fraction = round(steady["creates_per_window"] / limit, 3) if steady and throttled else None
    calls, throttled_429, create_weight = stats_calls(run["stats"])
    log_total, log_429 = log_calls(entries)
    share = share_429(calls, throttled_429)
    failures = sum(e["event"] in ("failed", "rejected") for e in events) + run["failed_store"]
    retried = Counter(
        f"{e.get('reason')}{' (throttled)' if '(throttled)' in str(e.get('detail', '')) else ''}"
        for e in events
        if e["event"] == "retried"
    )
    found = bars(
        throttled=throttled, share=share, fraction=fraction, failures=failures, versions=counts, certs=args.certs
    )
    if args.storm:  # the storm bar is exactly once; the rate (duplicates and shells included) is reported
        exits = run["storm_exits"]
        found["storm_shells_done"] = {"value": exits, "bar": "every shell exit 0", "met": set(exits) == {0}}
        found.pop("fraction_of_limit", None)
    subscription_stats = run["stats"].get("subscriptions", {}).get(SUBSCRIPTION, {})
    return {
        "benchmark": "throughput",
        "certificates": args.certs,
        "vaults": args.vaults,
        "processes": args.processes,
        "storm_shells": args.storm,
        "hsm": args.hsm,
        "throttling": throttled,
        "pacing": args.pacing,
        "retry_after": args.retry_after,
        "time_scale": args.time_scale,
        "window_seconds": window,
        "clock": "emulated (CERTLC_CLOCK_URL)" if args.emulated_clock else "wall",
        "binding_limit": {
            "scope": binding_scope(args.vaults),
            "creates_per_window": limit,
            "creates_per_second": round(limit / window, 3),
            "pacing_aims_at": "95 % of each limit",
        },
        "steady": steady,
        "fraction_of_limit": fraction,
        "creates_per_window": per_window(everything, window),
        "max_creates_in_any_window": {
            "subscription": max_in_any_window(everything, window),
            "vaults": {v: max_in_any_window(t, window) for v, t in by_vault.items()},
        },
        "granted_create_weight": create_weight,
        "keyvault_calls": calls,
        "throttled_429": throttled_429,
        "share_429": share,
        "throttled_by": subscription_stats.get("throttled_by"),
        "request_log": {
            "calls": log_total,
            "throttled_429": log_429,
            "truncated": len(entries) >= 50_000,
            "by_request": count_shapes(entries),
            "throttled_429_by_request": count_shapes([e for e in entries if e["status"] == 429]),
        },
        "seed_seconds": round(run["seed_seconds"], 1),
        "seconds": round(run["seconds"], 2),
        "renewals_per_second": round(args.certs / run["seconds"], 2),
        "workflow_send_backs": dict(retried.most_common()),
        "throttled_creates": throttled_creates(entries, run["traced"], window),
        "grant_delays_in_host_process": grant_delays(run["traced"], entries),
        "worker_invocations": run["worker_invocations"],
        "pacing_blob_calls_in_host_process": run["budget_calls_in_host"],
        "budget_blob_after": run["budget_blob"],
        "failures": failures,
        "failed_store_entries": run["failed_store"],
        "versions_per_certificate": {str(k): v for k, v in sorted(counts.items())},
        "storm_shells_exit_codes": run["storm_exits"],
        "bars": found,
        "met": all(b["met"] for b in found.values()),
    }


def single(args: argparse.Namespace) -> dict[str, Any]:
    vaults = [f"kv{i}" for i in range(1, args.vaults + 1)]
    names = [(vaults[i % len(vaults)], f"tp-{i:05d}") for i in range(args.certs)]
    window = WINDOW_SECONDS * args.time_scale
    settings = {
        "CERTLC_BACKOFF_BASE_SECONDS": "1",
        "CERTLC_BACKOFF_CAP_SECONDS": "30",
        "CERTLC_PACING": args.pacing,
        "CERTLC_PACING_WINDOW_SECONDS": f"{window:g}",
        "CERTLC_PACING_WAIT_SECONDS": f"{window:g}",
        "CERTLC_KEYVAULT_SUBSCRIPTIONS": f"{SUBSCRIPTION}={','.join(vaults)}",
    }
    if not args.emulated_clock:
        settings["CERTLC_CLOCK_URL"] = ""  # the wall clock, as in production
    if args.timeout is None:
        rate = binding_limit(args.vaults, args.hsm) / window
        args.timeout = 180.0 + 3 * args.certs / rate
    with local_stack(vaults, settings) as stack:
        skew = abs((emulated_now(stack) - dt.datetime.now(dt.UTC)).total_seconds())
        if skew > CLOCK_SKEW_ALLOWED and not args.emulated_clock:
            raise SystemExit(f"the emulator's clock is {skew:.0f} s off the wall clock: run with --emulated-clock")
        run = measure(stack, names, args)
    return report(run, args)


def matrix(args: argparse.Namespace) -> dict[str, Any]:
    """The issue's configurations, each in a fresh process with its own stack; one result holding them all."""
    rows: dict[str, Any] = {}
    for certs in MATRIX_CERTS:
        for processes in MATRIX_PROCESSES:
            for shape, extra in MATRIX_SHAPES.items():
                label = f"certs_{certs}_processes_{processes}_{shape}"
                command = [
                    *(sys.executable, str(Path(__file__).resolve())),
                    *("--certs", str(certs), "--processes", str(processes), *extra),
                    *("--time-scale", str(args.time_scale), "--retry-after", args.retry_after),
                    *("--result-name", f"throughput-{label}"),
                ]
                print(f"==> throughput {label}", flush=True)
                started = time.perf_counter()
                done = subprocess.run(command, cwd=ROOT, check=False)
                result_file = RESULTS / f"throughput-{label}.json"
                rows[label] = {
                    "exit_code": done.returncode,
                    "seconds": round(time.perf_counter() - started, 1),
                    "result": json.loads(result_file.read_text(encoding="utf-8")) if result_file.exists() else None,
                }
    missed = sorted(label for label, row in rows.items() if row["exit_code"] != 0)
    return {"benchmark": "throughput", "matrix": "full", "rows": rows, "missed": missed, "met": not missed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--certs", type=int, default=160, help="due certificates, spread over the vaults")
    parser.add_argument("--vaults", type=int, default=2, help="vaults, all in one subscription")
    parser.add_argument("--processes", type=int, choices=(1, 2, 4), default=1, help="the host + N-1 certlc workers")
    parser.add_argument("--hsm", action="store_true", help="RSA-HSM keys: each create weighs 2")
    parser.add_argument("--time-scale", type=float, default=1.0, help="window = 10 s x this (0 < x <= 1)")
    parser.add_argument("--retry-after", choices=("always", "never", "mixed"), default="always", help="on 429s")
    parser.add_argument("--no-throttling", action="store_true", help="measure the stack alone, without limits")
    parser.add_argument(
        "--pacing", choices=("on", "off"), default=None, help="certlc's pacing (default: on; off with --no-throttling)"
    )
    parser.add_argument("--emulated-clock", action="store_true", help="keep CERTLC_CLOCK_URL (an HTTPS call a renewal)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds to settle (default: 3 x the ideal)")
    parser.add_argument("--matrix", choices=("full",), help="run the issue's configurations, each in its own process")
    parser.add_argument(
        "--storm",
        type=int,
        default=0,
        metavar="SHELLS",
        help="a CA migration: `certlc renew --all --force --queue` from SHELLS shells at once, instead of the queue",
    )
    parser.add_argument("--result-name", default="throughput", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 0 < args.time_scale <= 1:
        parser.error("--time-scale must be in (0, 1]")
    args.pacing = args.pacing or ("off" if args.no_throttling else "on")
    result = matrix(args) if args.matrix else single(args)
    write_result(args.result_name, result)
    return 0 if result["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
