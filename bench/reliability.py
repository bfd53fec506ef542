"""Benchmark: the reliability matrix. Exactly one renewal per due certificate, whatever goes wrong around it.

Starts the local stack (Azurite, the Key Vault emulator, the local CA, the in-process Functions host) with a
webhook receiver for failure alerts, and runs one row per scenario on fresh certificates:

- processes: 1, 2 and 4 processes on one queue (the stack's host plus ``certlc worker`` subprocesses), every
  certificate delivered 20 times at once (NearExpiry and Expired with redeliveries, and a sweep);
- Key Vault answering 429 to the create, slow (latency on every call), and slower than the read deadline once;
- a CA that is down, Pending until approved, denying, or answering garbage;
- storage (Azurite) stopped and restarted while renewals run; the queue alone down while the renewals' merges
  are on their way (messages of finished renewals come back, and must not notify twice);
- a crash (an exception) right after each step, the message delivered again;
- a holder paused (SIGSTOP) past its lease while another ``certlc worker`` renews, resumed at three points (in
  its first Key Vault read after the other merged; while its CA refuses, after the other merged, and while the
  other waits for the CA's approval): it must stop at its fence (``lock_lost``) and do nothing;
- the operator at work while the CA waits for approval: tags changed, the version disabled, the certificate
  deleted.

Per row: certificates, new versions per certificate (min/max), CA requests per renewal (audit ``submitted``
records per certificate, min/max), orphaned pending operations (in progress at the end with no live renewal
record), lost renewals (no new version and no permanent failure recorded), failure alerts received, renewed notices
per certificate, and wall time. Bar: one new version and one CA request per due certificate, no alert (or,
where failure is the expected end, no new version and an alert each; where the operator stopped the renewal,
no new version, no pending operation, no failed-store entry and one notice saying why); zero orphans and zero
lost everywhere; rows that say so also one renewed notice per certificate, no failed-store entry and
``lock_lost`` in the audit. Then the lock's cost:
storage calls per renewal (the ledger's container client wrapped) and seconds per renewal with the blob
lease and with ``DryRunLedger`` instead. Prints JSON, writes bench/results/reliability.json, exits 1 when a
row misses its bar.

    python bench/reliability.py [--quick] [--certs 12] [--only ROW ...]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from localazure.ports import poll_until  # noqa: E402
from localazure.refusing_ca import SlowRefusingCfssl  # noqa: E402

from bench.support import (  # noqa: E402
    certificate_client,
    local_stack,
    seed,
    spawn_worker,
    wait_polling,
    worker_processes,
    write_result,
)
from renewal.eventgrid.schema import (  # noqa: E402
    CERTIFICATE_EXPIRED,
    CERTIFICATE_NEAR_EXPIRY,
    EVENT_TYPE_HEADER,
    NOTIFICATION,
)

VAULT = "kv1"
DELIVERIES = 20  # per certificate in the process rows: 19 Event Grid deliveries and one sweep
POST_WORKERS = 32
POLL = 0.25
QUIET_SECONDS = 1.5  # the queue must stay empty this long before a row counts as settled
ROW_TIMEOUT = 120.0
KV_READ_TIMEOUT = 8  # seconds; the "slower than the deadline" row stalls one create past it
CA_PROFILES = {"server": {}, "approval": {"requires_approval": True, "poll_seconds": 1}}
EVENT_TYPES = (CERTIFICATE_NEAR_EXPIRY, CERTIFICATE_EXPIRED)
LOCK_SECONDS = 15  # the shortest blob lease: a paused holder's lapses sooner
STOPPED = {  # the operator's act that ends a renewal: audit reason → what its notice says
    "certificate_disabled": "disabled while it was renewed",
    "certificate_deleted": "deleted while it was renewed",
}


@dataclasses.dataclass
class Row:
    name: str
    scenario: str
    names: list[str]
    expect: str = "renewed"  # or "failed", "stopped" (by the operator: a reason of STOPPED), or "compromised"
    max_ca_requests: int = 1  # per renewal; above 1 only for a documented residual window
    ca_requests_of_merged: bool = False  # count only the merged renewal's submissions, not a fenced holder's
    one_renewed_notice: bool = False  # bar: exactly one renewed notice per certificate
    failure_notices: int = 0  # bar for a renewed row: failure alerts per certificate (a transient outage's one notice)
    no_failed_entry: bool = False  # bar: nothing in the failed store for these certificates
    lock_lost: bool = False  # bar: the audit shows a holder fenced off (retried, lock_lost) per certificate
    queue_name: str | None = None  # the row's own queue (its failed store and poison queue), else the stack's
    processes: int = 1
    deliveries: int = 0
    seconds: float = 0.0
    notes: list[str] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)
    versions_before: int = 1  # versions each certificate had when the row began
    extra_check: Callable[[], list[str]] | None = None  # the row's own bars, checked once it settled


class Matrix:
    """The stack, the alert receiver and what every row shares: seeding, deliveries, settling, measuring."""

    def __init__(self, stack: Any, receiver: Any, scratch: Path) -> None:
        from renewal import handlers
        from renewal.clients import queue_client

        self.stack = stack
        self.receiver = receiver
        self.scratch = scratch
        self.client = certificate_client(stack, VAULT)
        self.queue = queue_client(stack.settings, stack.settings["CERTLC_QUEUE_NAME"])
        self.poison = queue_client(stack.settings, f"{stack.settings['CERTLC_QUEUE_NAME']}-poison")
        self.runtime = handlers.runtime()

    # --- the stack -----------------------------------------------------------------------------------------

    def seed(self, prefix: str, count: int, tags: Mapping[str, str] | None = None) -> dict[str, str]:
        """Due for certlc (60 of 365 days left), far from Key Vault's NearExpiry; name → current version.

        No renew-before tag: the new version (90 days from the local CA) is not due, so a sweep or an event
        that reads it after the merge queues nothing, and a second version would be a real second renewal.
        """
        run = uuid.uuid4().hex[:6]
        names = [(VAULT, f"{prefix}-{run}-{i:03d}") for i in range(count)]
        return {name: version for (_, name), version in seed(self.stack, names, tags=tags).items()}

    def event(self, name: str, version: str, event_type: str, event_id: str) -> dict[str, Any]:
        """One Key Vault event as Event Grid delivers it (EventGridSchema)."""
        now = dt.datetime.now(dt.UTC)
        return {
            "id": event_id,
            "topic": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/certlc-local/providers"
            f"/Microsoft.KeyVault/vaults/{VAULT}",
            "subject": name,
            "eventType": event_type,
            "eventTime": now.isoformat().replace("+00:00", "Z"),
            "data": {
                "Id": f"{self.stack.keyvault.vault_urls[VAULT]}/certificates/{name}/{version}",
                "VaultName": VAULT,
                "ObjectType": "Certificate",
                "ObjectName": name,
                "Version": version,
                "NBF": str(int(now.timestamp()) - 86400),
                "EXP": str(int(now.timestamp()) + 86400),
            },
            "dataVersion": "1",
            "metadataVersion": "1",
        }

    def expiry_events(self, versions: Mapping[str, str], per_certificate: int) -> list[dict[str, Any]]:
        """NearExpiry and Expired alternately, each a redelivery of its first (same event id), shuffled."""
        events = []
        for name, version in versions.items():
            ids = [str(uuid.uuid4()) for _ in EVENT_TYPES]
            for i in range(per_certificate):
                kind = i % len(EVENT_TYPES)
                events.append(self.event(name, version, EVENT_TYPES[kind], ids[kind]))
        random.shuffle(events)
        return events

    def post(self, event: dict[str, Any]) -> int:
        """One delivery of one event to the host's Event Grid webhook; the HTTP status."""
        import requests

        try:
            response = requests.post(
                self.stack.host.eventgrid_url("event"),
                json=[event],
                headers={EVENT_TYPE_HEADER: NOTIFICATION},
                timeout=60,
            )
        except requests.RequestException:
            return 0
        return response.status_code

    def deliver(self, events: Sequence[dict[str, Any]], also: Callable[[], Any] | None = None) -> list[int]:
        """Every event in its own delivery, all at once; ``also`` (e.g. a sweep) runs among them."""
        with ThreadPoolExecutor(POST_WORKERS) as pool:
            half = len(events) // 2
            statuses = list(pool.map(self.post, events[:half]))
            extra = pool.submit(also) if also else None
            statuses += list(pool.map(self.post, events[half:]))
            if extra:
                extra.result()
        return statuses

    def sweep(self) -> None:
        self.stack.host.trigger_timer("sweep")

    def queued(self) -> int:
        """Messages on the renewal queue, visible or not (delayed retries and leased ones count)."""
        return self.queue.get_queue_properties().approximate_message_count

    def audit(self) -> list[dict[str, Any]]:
        path = Path(self.stack.settings["CERTLC_AUDIT_FILE"])
        if not path.exists():
            return []
        records = []
        for line in path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):  # several processes append to one file
                records.append(json.loads(line))
        return records

    def by_name(self, names: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        wanted = {n: [] for n in names}
        for record in self.audit():
            if record.get("name") in wanted:
                wanted[record["name"]].append(record)
        return wanted

    def settle(self, names: Sequence[str], expect: str, timeout: float = ROW_TIMEOUT) -> bool:
        """Until every certificate merged (or failed, or was stopped, as expected) and the queue stayed empty for a
        while."""
        quiet_since: float | None = None

        def quiet_long_enough() -> bool:
            nonlocal quiet_since
            records = self.by_name(names)
            if not (all(any(_ends(r, expect) for r in rs) for rs in records.values()) and self.queued() == 0):
                quiet_since = None
                return False
            quiet_since = quiet_since or time.monotonic()
            return time.monotonic() - quiet_since >= QUIET_SECONDS

        try:
            poll_until(quiet_long_enough, timeout=timeout, interval=POLL)
        except TimeoutError:
            return False
        return True

    # --- measuring -----------------------------------------------------------------------------------------

    def pending_in_progress(self, name: str) -> bool:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return (self.client.get_certificate_operation(name).status or "").lower() == "inprogress"
        except ResourceNotFoundError:
            return False

    def new_versions(self, name: str, before: int = 1) -> int:
        """Versions made after the ``before`` the row began with (a pending create's placeholder has no thumbprint);
        0 when deleted."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            listed = self.client.list_properties_of_certificate_versions(name)
            return sum(1 for v in listed if v.x509_thumbprint) - before
        except ResourceNotFoundError:
            return 0

    def failed_entries(self, row: Row) -> set[str]:
        """The row's certificates with an entry in the failed store (the row's own queue's, when it has one)."""
        if row.queue_name is None:
            return {e.name for e in self.runtime.failed.list() if e.name in set(row.names)}
        from azure.core.exceptions import ResourceExistsError

        from renewal.clients import queue_client

        store = queue_client(self.stack.settings, f"{row.queue_name}-failed")
        with contextlib.suppress(ResourceExistsError):
            store.create_queue()  # absent unless something failed
        contents = [m.content or "" for m in store.peek_messages(max_messages=32)]
        return {n for n in row.names if any(n in c for c in contents)}

    def notices(self, kind: str, names: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """The generic-webhook payloads of one ``kind`` the receiver got, per certificate."""
        wanted: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        for p in self.receiver.payloads():
            if isinstance(p, dict) and p.get("kind") == kind and p.get("name") in wanted:
                wanted[p["name"]].append(p)
        return wanted

    def measure(self, row: Row, settled: bool) -> dict[str, Any]:
        from azure.core.exceptions import ResourceNotFoundError

        now = self.stack.now()
        records = self.by_name(row.names)
        failed_store = self.failed_entries(row)
        failure_notices = self.notices("renewal_failed", row.names)
        alerts = Counter({n: len(ps) for n, ps in failure_notices.items()})
        renewed_notices = {n: len(ps) for n, ps in self.notices("renewed", row.names).items()}
        new_versions, ca_requests, orphans, lost, left_pending, lock_lost = {}, {}, [], [], [], {}
        for name in row.names:
            new_versions[name] = self.new_versions(name, row.versions_before)
            merged_by = {r.get("correlation_id") for r in records[name] if r["event"] == "merged"}
            ca_requests[name] = sum(
                r["event"] == "submitted" and (not row.ca_requests_of_merged or r.get("correlation_id") in merged_by)
                for r in records[name]
            )
            lock_lost[name] = sum(r["event"] == "retried" and r.get("reason") == "lock_lost" for r in records[name])
            record = self.runtime.workflow.ledger.peek(VAULT, name)
            in_progress = self.pending_in_progress(name)
            if in_progress:
                left_pending.append(name)
            if in_progress and not (record and record.is_live(now)):
                orphans.append(name)
            failed = name in failed_store or any(r["event"] == "failed" for r in records[name])
            stopped = any(_ends(r, "stopped") for r in records[name])
            if new_versions[name] == 0 and not (failed or stopped):
                lost.append(name)
        problems = list(row.problems)
        if not settled:
            problems.append(f"not settled within {ROW_TIMEOUT:g} s")
        if settled and row.extra_check is not None:
            problems += row.extra_check()
        for name in row.names:
            if row.expect in ("renewed", "compromised"):
                bad = (
                    new_versions[name] != 1
                    or not 1 <= ca_requests[name] <= row.max_ca_requests
                    or alerts[name] != row.failure_notices
                )
            elif row.expect == "stopped":  # the operator's act: nothing merged or pending, one notice saying why
                told = [
                    p for p in failure_notices[name] if any(words in str(p.get("reason")) for words in STOPPED.values())
                ]
                bad = (
                    new_versions[name] != 0
                    or alerts[name] != 1
                    or len(told) != 1
                    or name in left_pending
                    or name in failed_store
                    or not 1 <= ca_requests[name] <= row.max_ca_requests
                )
            else:  # one permanent failure per certificate: one alert, no more CA requests than one renewal's
                bad = new_versions[name] != 0 or alerts[name] != 1 or ca_requests[name] > row.max_ca_requests
            bad = bad or (row.one_renewed_notice and renewed_notices[name] != 1)
            bad = bad or (row.no_failed_entry and name in failed_store) or (row.lock_lost and not lock_lost[name])
            if bad or name in orphans or name in lost:
                trail = [
                    (r["event"], r.get("reason") or r.get("ca_request_id"), (r.get("correlation_id") or "")[:8])
                    for r in records[name]
                ]
                problems.append(
                    f"{name}: {new_versions[name]} new version(s), {ca_requests[name]} CA request(s), "
                    f"{alerts[name]} alert(s), {renewed_notices[name]} renewed notice(s), "
                    f"failed-store entry={name in failed_store}, pending left={name in left_pending}, "
                    f"lock_lost={lock_lost[name]}, orphan={name in orphans}, lost={name in lost}; audit {trail}"
                )
        poison = self.poison
        if row.queue_name is not None:
            from renewal.clients import queue_client

            poison = queue_client(self.stack.settings, f"{row.queue_name}-poison")
        poisoned = 0
        with contextlib.suppress(ResourceNotFoundError):  # a row's own queue has no poison queue unless it poisoned
            poisoned = sum(
                1 for m in poison.peek_messages(max_messages=32) if any(n in (m.content or "") for n in row.names)
            )
        if poisoned:
            problems.append(f"{poisoned} message(s) of this row on the poison queue")
        return {
            "row": row.name,
            "scenario": row.scenario,
            "processes": row.processes,
            "expect": row.expect,
            "certificates": len(row.names),
            "deliveries": row.deliveries,
            "new_versions_per_certificate": _span(new_versions.values()),
            "ca_requests_per_renewal": _span(ca_requests.values()),
            "orphans": len(orphans),
            "lost": len(lost),
            "alerts": sum(alerts.values()),
            "renewed_notices_per_certificate": _span(renewed_notices.values()),
            "lock_lost_per_certificate": _span(lock_lost.values()),
            "pending_left": len(left_pending),
            "permanent_failures": len(failed_store),
            "seconds": round(row.seconds, 1),
            "ok": not problems,
            "notes": row.notes,
            "problems": problems,
        }

    def run(self, row: Row, act: Callable[[Row], None], settle_timeout: float = ROW_TIMEOUT) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            act(row)
            settled = self.settle(row.names, row.expect, settle_timeout)
        except Exception as exc:  # a broken row is a failed row, the matrix goes on
            row.problems.append(f"the row could not run: {type(exc).__name__}: {exc}")
            settled = True
        row.seconds = time.perf_counter() - started
        result = self.measure(row, settled)
        print(
            f"{row.name}: {result['certificates']} certs, versions {result['new_versions_per_certificate']}, "
            f"CA requests {result['ca_requests_per_renewal']}, orphans {result['orphans']}, lost {result['lost']}, "
            f"alerts {result['alerts']}, {result['seconds']} s, {'ok' if result['ok'] else 'MISSED'}",
            file=sys.stderr,
            flush=True,
        )
        return result

    # --- processes -----------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def workers(self, count: int) -> Iterator[list[subprocess.Popen]]:
        """``count`` ``certlc worker`` processes on the stack's queue, their output in files (never a pipe)."""
        with worker_processes(self.stack, count, self.scratch) as started:
            yield [p for p, _ in started]


def _ends(record: Mapping[str, Any], expect: str) -> bool:
    """Whether an audit record ends a renewal the way a row expects: merged, failed, or stopped by the operator."""
    if expect == "stopped":
        return record["event"] == "skipped" and record.get("reason") in STOPPED
    if expect == "compromised":  # the last of a compromise renewal's steps
        return record["event"] == "compromise_finished"
    return record["event"] == ("merged" if expect == "renewed" else "failed")


def _span(values: Any) -> dict[str, int | None]:
    values = list(values)
    return {"min": min(values), "max": max(values)} if values else {"min": None, "max": None}


# --- the rows ----------------------------------------------------------------------------------------------


def processes_row(m: Matrix, processes: int, certs: int) -> dict[str, Any]:
    versions = m.seed(f"proc{processes}", certs)
    row = Row(
        f"processes_{processes}",
        f"{processes} process(es) on one queue, {DELIVERIES} deliveries per certificate at once",
        list(versions),
        processes=processes,
    )
    events = m.expiry_events(versions, DELIVERIES - 1)
    row.deliveries = len(events) + certs  # the sweep is one delivery per certificate

    def act(r: Row) -> None:
        bad = [s for s in m.deliver(events, also=m.sweep) if s != 200]
        if bad:
            r.problems.append(f"{len(bad)} deliveries refused by the webhook: {Counter(bad)}")

    with m.workers(processes - 1) as workers:
        result = m.run(row, act)
        exited = [w.returncode for w in workers if w.poll() is not None]
    result["invocations_by_worker_processes"] = [
        _invocations(log, versions) for log in sorted(m.scratch.glob(f"worker-{processes - 1}-*.log"))
    ]
    if exited:
        result["problems"].append(f"worker process(es) exited early: {exited}")
        result["ok"] = False
    return result


def _invocations(log: Path, names: Mapping[str, str]) -> int:
    """Renewal invocations a worker process logged for these certificates."""
    lines = log.read_text(errors="replace").splitlines()
    return sum(any(f"renewal {VAULT}/{n} " in line for n in names) for line in lines)


def throttled_create_row(m: Matrix, certs: int) -> dict[str, Any]:
    versions = m.seed("kv429", certs)
    row = Row("keyvault_429", "every create answered 429 (Retry-After 1 s) 6 times first", list(versions))
    events = m.expiry_events(versions, 4)
    row.deliveries = len(events)
    for name in versions:
        m.stack.control.add_fault(
            status=429, retry_after=1, count=6, method="POST", path=f"/certificates/{name}/create"
        )
    try:
        return m.run(row, lambda r: m.deliver(events))
    finally:
        m.stack.control.clear_faults()


def slow_keyvault_row(m: Matrix, certs: int) -> dict[str, Any]:
    versions = m.seed("kvslow", certs)
    row = Row("keyvault_slow", "every Key Vault call for these certificates 1.5 s late", list(versions))
    events = m.expiry_events(versions, 4)
    row.deliveries = len(events)
    prefix = next(iter(versions)).rsplit("-", 1)[0]
    m.stack.control.add_fault(latency_ms=1500, path=f"/certificates/{prefix}-")
    try:
        return m.run(row, lambda r: m.deliver(events))
    finally:
        m.stack.control.clear_faults()


def deadline_keyvault_row(m: Matrix, certs: int) -> dict[str, Any]:
    versions = m.seed("kvdeadline", certs)
    row = Row(
        "keyvault_past_deadline",
        f"the first create answered after {KV_READ_TIMEOUT + 2} s, past the {KV_READ_TIMEOUT} s read deadline "
        "(Key Vault makes the pending operation after the client gave up)",
        list(versions),
    )
    events = m.expiry_events(versions, 4)
    row.deliveries = len(events)
    for name in versions:
        m.stack.control.add_fault(
            latency_ms=(KV_READ_TIMEOUT + 2) * 1000, count=1, method="POST", path=f"/certificates/{name}/create"
        )
    try:
        return m.run(row, lambda r: m.deliver(events))
    finally:
        m.stack.control.clear_faults()


def ca_down_row(m: Matrix, certs: int) -> dict[str, Any]:
    """The CA down past every attempt: one notice that it keeps trying, never a permanent failure; when the CA can
    be reached again (here: the certificates pointed at one that answers, as an operator moving the CA would), each
    renews by itself."""
    versions = m.seed("cadown", certs, tags={"certlc-ca": "cfssl", "certlc-profile": "server"})
    row = Row(
        "ca_down",
        "cfssl adapter pointed at a port nobody listens on, past every attempt; then a CA that answers",
        list(versions),
        max_ca_requests=40,
        failure_notices=1,
        one_renewed_notice=True,
        no_failed_entry=True,
        notes=[
            "CA requests count attempts the CA never received: CERTLC_MAX_ATTEMPTS=4, then one every capped "
            "back-off (CERTLC_BACKOFF_CAP_SECONDS=8 here) until the CA answers"
        ],
    )
    events = m.expiry_events(versions, 4)
    row.deliveries = len(events)

    def act(r: Row) -> None:
        m.deliver(events)
        poll_until(
            lambda: all(m.notices("renewal_failed", r.names).values()),
            timeout=ROW_TIMEOUT,
            interval=POLL,
            what="one still-trying notice per certificate",
        )
        for name in r.names:  # the CA is reachable again (the version being renewed: not a pending placeholder)
            renewed = m.client.get_certificate_version(name, versions[name])
            tags = dict(renewed.properties.tags or {}) | {"certlc-ca": "local"}
            m.client.update_certificate_properties(name, versions[name], tags=tags)

    return m.run(row, act)


def ca_pending_row(m: Matrix, certs: int) -> dict[str, Any]:
    from renewal.ca.local import LocalCA

    versions = m.seed("capending", certs, tags={"certlc-profile": "approval"})
    row = Row("ca_pending", "CA answers Pending; 5 more deliveries each while it waits, then approval", list(versions))

    def act(r: Row) -> None:
        first = m.expiry_events(versions, 1)
        m.deliver(first)

        def pending_records() -> dict[str, list[dict[str, Any]]]:
            return {n: [x for x in rs if x["event"] == "pending"] for n, rs in m.by_name(r.names).items()}

        poll_until(lambda: all(pending_records().values()), timeout=60, interval=POLL, what="Pending at the CA")
        pending = pending_records()
        more = m.expiry_events(versions, 5)
        m.deliver(more)
        r.deliveries = len(first) + len(more)
        time.sleep(3)  # the redeliveries and a few polls run while the CA still waits
        ca = LocalCA(Path(m.stack.settings["CERTLC_LOCAL_CA_DIR"]))
        for records in pending.values():
            ca.approve(records[0]["ca_request_id"])

    return m.run(row, act)


def ca_denied_row(m: Matrix, certs: int) -> dict[str, Any]:
    versions = m.seed("cadenied", certs, tags={"certlc-profile": "retired-template"})
    row = Row("ca_denied", "the CA denies (a profile it does not offer)", list(versions), expect="failed")
    events = m.expiry_events(versions, 4)
    row.deliveries = len(events)
    return m.run(row, lambda r: m.deliver(events))


def ca_garbage_row(m: Matrix, certs: int) -> dict[str, Any]:
    from renewal.ca.base import Issued
    from renewal.ca.local import LocalCA

    versions = m.seed("cagarbage", certs)
    row = Row(
        "ca_garbage",
        "the CA answers Issued with an unreadable chain (LocalCA.submit patched in the host's process)",
        list(versions),
        expect="failed",
    )
    events = m.expiry_events(versions, 4)
    row.deliveries = len(events)
    garbage = Issued(("-----BEGIN CERTIFICATE-----\nAAAA",))
    with mock.patch.object(LocalCA, "submit", lambda self, csr, profile, replaces=None: garbage):
        return m.run(row, lambda r: m.deliver(events))


CRASH_STEPS = (
    ("renewal.keyvault.KeyVault", "get"),
    ("renewal.keyvault.KeyVault", "create_pending"),
    ("renewal.ca.local.LocalCA", "submit"),
    ("renewal.keyvault.KeyVault", "merge"),
    ("renewal.reporting.Reporter", "renewed"),
)


def crash_row(m: Matrix, target: str, attribute: str) -> dict[str, Any]:
    """The real step runs, then an exception, as a process dying right after it; the message comes again."""
    import importlib

    from azure.functions.meta import Datum

    from renewal.messages import RenewalRequest

    versions = m.seed(f"crash-{attribute.replace('_', '')}", 1)
    name = next(iter(versions))
    after_submit = attribute == "submit"
    row = Row(
        f"crash_after_{attribute}",
        f"an exception right after {target.rsplit('.', 1)[1]}.{attribute}, the message delivered again",
        [name],
        max_ca_requests=2 if after_submit else 1,
        notes=["the residual window: the CA's answer was never recorded, so the CA is asked again"]
        if after_submit
        else [],
    )
    module, cls_name = target.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), cls_name)
    real = getattr(cls, attribute)
    crashed = threading.Event()

    def crashing(self: Any, *args: Any, **kwargs: Any) -> Any:
        value = real(self, *args, **kwargs)
        if not crashed.is_set() and _mentions(name, args):
            crashed.set()
            raise RuntimeError(f"injected crash after {attribute}")
        return value

    body = RenewalRequest(VAULT, name, "manual", force=True).to_json()

    def call(dequeue_count: int) -> None:
        metadata = {
            "Id": Datum(type="string", value=str(uuid.uuid4())),
            "DequeueCount": Datum(type="json", value=json.dumps(dequeue_count)),
            "PopReceipt": Datum(type="string", value="bench"),
        }
        m.stack.host.functions["renew"].call(Datum(type="string", value=body), metadata)

    def act(r: Row) -> None:
        with mock.patch.object(cls, attribute, crashing):
            try:
                call(1)
                r.deliveries = 1
            except RuntimeError:  # it escaped the function: the host delivers the message again
                call(2)
                r.deliveries = 2

    return m.run(row, act)


def _mentions(name: str, args: tuple) -> bool:
    from cryptography import x509

    from renewal.messages import RenewalRequest

    for arg in args:
        if (isinstance(arg, str) and arg == name) or (isinstance(arg, RenewalRequest) and arg.name == name):
            return True
        if isinstance(arg, bytes) and arg.startswith(b"-----BEGIN CERTIFICATE REQUEST"):
            return name in x509.load_pem_x509_csr(arg).subject.rfc4514_string()
    return False


def restart_azurite(m: Matrix, log_name: str, queue_elsewhere: bool = False) -> None:
    """Start Azurite again, stopped before, on its ports and its data folder (the queue service on another port
    when ``queue_elsewhere``: nobody reaches the queue, the blobs answer as before)."""
    from localazure.ports import LOOPBACK, free_port, port_open
    from localazure.process import ManagedProcess

    from localazure import tools

    azurite = m.stack.azurite
    queue_port = free_port() if queue_elsewhere else azurite.port
    binary = tools.ensure_azurite().with_name("azurite")
    workdir = m.stack.directory / "azurite"
    command = [
        str(binary),
        *("--queueHost", LOOPBACK, "--queuePort", str(queue_port)),
        *("--blobHost", LOOPBACK, "--blobPort", str(azurite.blob_port)),
        *("--tableHost", LOOPBACK, "--tablePort", str(free_port())),
        *("--location", str(workdir / "data"), "--skipApiVersionCheck", "--disableTelemetry", "--silent"),
    ]
    azurite.process = ManagedProcess("azurite", command, workdir / log_name, cwd=workdir)
    azurite.process.wait_ready(lambda: port_open(queue_port) and port_open(azurite.blob_port), timeout=30)


def short_message_lease(m: Matrix) -> None:
    """The in-process host's message lease cut to 20 s, so a message whose settlement failed comes back soon."""
    for poller in m.stack.host._pollers:
        poller._options = dataclasses.replace(poller._options, lease=20.0)


def storage_down_row(m: Matrix, certs: int, outage: float) -> dict[str, Any]:
    """Azurite stopped while renewals run, deliveries refused meanwhile, then restarted on the same ports."""
    versions = m.seed("storage", certs)
    row = Row(
        "storage_down",
        f"Azurite (queue and lock blobs) stopped for {outage:g} s while the renewals run, then restarted",
        list(versions),
        max_ca_requests=2,
        notes=[
            "up to 2 CA requests: the residual window; a renewal whose CA answer arrives while storage is down "
            "cannot record the issued chain, retries, and the next attempt asks the CA again",
            "the in-process host's message lease is cut to 20 s (10 min, as the Functions host takes) so a message "
            "whose settlement failed during the outage comes back within the run",
            "deliveries refused during the outage are delivered again after it, as Event Grid retries",
        ],
    )
    azurite = m.stack.azurite
    short_message_lease(m)

    def act(r: Row) -> None:
        events = m.expiry_events(versions, 4)
        pool = ThreadPoolExecutor(POST_WORKERS)
        first = pool.map(m.post, events)
        time.sleep(0.3)  # some renewals are under way
        azurite.process.stop()
        during = m.expiry_events(versions, 1)
        refused = [e for e, status in zip(during, pool.map(m.post, during), strict=True) if status != 200]
        refused += [e for e, status in zip(events, first, strict=True) if status != 200]
        time.sleep(outage)
        restart_azurite(m, "azurite-restarted.log")
        again = [s for s in pool.map(m.post, refused) if s != 200]
        pool.shutdown()
        r.deliveries = len(events) + len(during) + len(refused)
        r.notes.append(f"{len(refused)} deliveries refused during the outage and delivered again")
        if again:
            r.problems.append(f"{len(again)} deliveries still refused after the restart")

    return m.run(row, act, settle_timeout=150.0)


def queue_outage_row(m: Matrix, certs: int, outage: float) -> dict[str, Any]:
    """The queue service down while the renewals' merges are on their way (Key Vault answers each merge 3 s late):
    the renewals finish, record their notice, and cannot settle their messages, which come back after the outage.
    Azurite runs blob and queue in one process: it is restarted with its queue service on a port nobody knows for
    the outage, then as before (the lock blobs are unreachable for about a second at each restart)."""
    versions = m.seed("queueout", certs)
    row = Row(
        "queue_outage",
        f"the queue (Azurite's queue service) down for {outage:g} s while every renewal's merge is on its way "
        "(answered 3 s late), the lock blobs up: the renewals finish and their messages come back",
        list(versions),
        max_ca_requests=2,
        one_renewed_notice=True,
        notes=[
            "up to 2 CA requests: the residual window, as in storage_down",
            "the in-process host's message lease is cut to 20 s so an unsettled message comes back within the run",
            f"{outage:g} s: longer than the storage SDK's retries (1, 2 and 4 s), so a settlement fails for good",
        ],
    )
    azurite = m.stack.azurite
    short_message_lease(m)

    def notified() -> list[bool | None]:
        records = [m.runtime.workflow.ledger.peek(VAULT, n) for n in versions]
        return [x.notified if x else None for x in records]

    def act(r: Row) -> None:
        events = m.expiry_events(versions, 2)
        r.deliveries = len(events)
        for name in versions:
            m.stack.control.add_fault(
                latency_ms=3000, count=1, method="POST", path=f"/certificates/{name}/pending/merge"
            )
        try:
            refused = [s for s in m.deliver(events) if s != 200]
            if refused:
                r.problems.append(f"{len(refused)} deliveries refused by the webhook before the outage")
            poll_until(
                lambda: sum(f["hits"] for f in m.stack.control.call("GET", "faults")) >= len(versions),
                timeout=60,
                interval=0.02,
                what="every merge on its way",
            )
            azurite.process.stop()
            restart_azurite(m, "azurite-queue-elsewhere.log", queue_elsewhere=True)
            time.sleep(outage)
            merged = sum(any(x["event"] == "merged" for x in rs) for rs in m.by_name(r.names).values())
            r.notes.append(f"{merged} of {len(r.names)} certificate(s) merged during the outage")
            r.notes.append(f"records say notified, during the outage: {notified()}")
            azurite.process.stop()
            restart_azurite(m, "azurite-restarted-queue.log")
            r.notes.append(f"records say notified, after it: {notified()}")
        finally:
            m.stack.control.clear_faults()

    result = m.run(row, act, settle_timeout=150.0)
    records = m.by_name(row.names)
    result["merged_again_per_certificate"] = _span(  # a message of a finished renewal delivered again
        sum(x["event"] == "merged" and bool(x.get("recovered")) for x in records[n]) for n in row.names
    )
    return result


PAUSE_POINTS = {
    "paused_in_read": "holder A paused (SIGSTOP) in its first Key Vault read past its lease; worker B renews; "
    "A resumed after B merged",
    "paused_ca_refuses_merged": "holder A paused while its CA (cfssl, 6 s, then a refusal) answers, past its "
    "lease; worker B renews with the local CA; A resumed after B merged",
    "paused_ca_refuses_pending": "holder A paused while its CA refuses, past its lease; worker B waits for the "
    "local CA's approval; A resumed meanwhile, then the request approved",
}


def paused_holder_row(m: Matrix, point: str) -> dict[str, Any]:
    """Two ``certlc worker`` processes on a queue of their own, one certificate: A takes the renewal and is stopped
    past its lease, B renews, A resumes at ``point`` and must stop at its fence (``lock_lost``)."""
    from renewal.ca.local import LocalCA
    from renewal.clients import queue_client
    from renewal.messages import RenewalRequest

    versions = m.seed(point.replace("_", ""), 1)
    name, version = next(iter(versions.items()))
    values = {
        **m.stack.settings,
        "CERTLC_QUEUE_NAME": f"fence-{uuid.uuid4().hex[:10]}",
        "CERTLC_LOCK_SECONDS": str(LOCK_SECONDS),
    }
    in_read, waits = point == "paused_in_read", point == "paused_ca_refuses_pending"
    row = Row(
        point,
        PAUSE_POINTS[point],
        [name],
        ca_requests_of_merged=True,
        no_failed_entry=True,
        lock_lost=True,
        queue_name=values["CERTLC_QUEUE_NAME"],
        notes=[]
        if in_read
        else ["CA requests: the merged renewal's `submitted` records; A's own, to the CA that refused it, not counted"],
    )
    queue = queue_client(values)
    queue.create_queue()
    folder = m.scratch / point
    folder.mkdir()

    def trail() -> list[tuple[str, Any]]:
        return [(x["event"], x.get("reason")) for x in m.by_name([name])[name]]

    def audited(event: str, reason: str | None = None) -> bool:
        return any(
            x["event"] == event and (reason is None or x.get("reason") == reason) for x in m.by_name([name])[name]
        )

    def act(r: Row) -> None:
        refusing = None if in_read else SlowRefusingCfssl(delay=6)
        a_values = values if refusing is None else {**values, "CERTLC_CA": "cfssl", "CERTLC_CFSSL_URL": refusing.url}
        b_values = {**values, "CERTLC_CA": "local", **({"CERTLC_CA_PROFILE": "approval"} if waits else {})}
        started: list[subprocess.Popen] = []

        def message() -> str:  # a message of its own each time (its own correlation id), naming the version
            return RenewalRequest(VAULT, name, "manual", version=version).to_json()

        if in_read:  # A's first read: the SDK's challenge request (401), then the read itself; both late
            m.stack.control.add_fault(latency_ms=4000, method="GET", path=f"/certificates/{name}/?$", count=2)
        try:
            started.append(spawn_worker(_settings_file(folder / "a.json", a_values), folder / "a.log"))
            wait_polling(started[0], folder / "a.log")
            queue.send_message(message())
            if in_read:
                poll_until(
                    lambda: sum(f["hits"] for f in m.stack.control.call("GET", "faults")) >= 2,
                    timeout=30,
                    interval=0.05,
                    what="worker A's first read",
                )
            elif not refusing.asked.wait(60):
                raise RuntimeError(f"worker A never asked its CA: {trail()}")
            started[0].send_signal(signal.SIGSTOP)  # the answer arrives while A is stopped
            paused = time.monotonic()
            started.append(spawn_worker(_settings_file(folder / "b.json", b_values), folder / "b.log"))
            wait_polling(started[1], folder / "b.log")
            time.sleep(max(0.0, LOCK_SECONDS + 3 - (time.monotonic() - paused)))  # A's lease lapses
            queue.send_message(message())
            r.deliveries = 2
            if waits:
                poll_until(lambda: audited("pending"), timeout=60, what=lambda: f"B waiting for its CA: {trail()}")
            else:
                poll_until(lambda: m.new_versions(name) >= 1, timeout=60, what=lambda: f"B's renewal: {trail()}")
            started[0].send_signal(signal.SIGCONT)
            r.notes.append(f"A paused {time.monotonic() - paused:.1f} s")
            poll_until(lambda: audited("retried", "lock_lost"), timeout=60, what=lambda: f"A fenced off: {trail()}")
            if waits:
                if not m.pending_in_progress(name):
                    r.problems.append(f"B's pending operation did not outlive A's refusal: {trail()}")
                pending = next(x for x in m.by_name([name])[name] if x["event"] == "pending")
                LocalCA(Path(m.stack.settings["CERTLC_LOCAL_CA_DIR"])).approve(pending["ca_request_id"])
                poll_until(lambda: m.new_versions(name) >= 1, timeout=60, what=lambda: f"B's merge: {trail()}")
            quiet_since: list[float] = []

            def settled() -> bool:  # the row's own queue empty (A's requeued message handled) for a while
                if queue.get_queue_properties().approximate_message_count:
                    quiet_since.clear()
                    return False
                quiet_since[:] = quiet_since or [time.monotonic()]
                return time.monotonic() - quiet_since[0] >= QUIET_SECONDS

            poll_until(settled, timeout=60, interval=POLL, what=lambda: f"the row's queue settled: {trail()}")
        finally:
            for process in started:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGCONT)
                    process.send_signal(signal.SIGTERM)
            for process in started:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
            if in_read:
                m.stack.control.clear_faults()
            if refusing is not None:
                refusing.close()

    return m.run(row, act)


def _settings_file(path: Path, values: Mapping[str, str]) -> Path:
    path.write_text(json.dumps({"IsEncrypted": False, "Values": dict(values)}), encoding="utf-8")
    return path


OPERATOR_ACTS = {
    "operator_tags": "tags changed while the CA waits for approval (the `approval` profile); then approved",
    "operator_disabled": "the version disabled while the CA waits for approval; then approved",
    "operator_deleted": "the certificate deleted while the CA waits for approval; then approved",
}


def operator_row(m: Matrix, act_name: str, certs: int) -> dict[str, Any]:
    """The operator's intent wins over a renewal in flight: what they did while the CA decided is what the merge
    finds (the new version carries the changed tags; a disabled or deleted certificate gets none, and a notice)."""
    from renewal.ca.local import LocalCA

    versions = m.seed(act_name.replace("_", ""), certs, tags={"certlc-profile": "approval", "team": "payments"})
    row = Row(
        act_name,
        OPERATOR_ACTS[act_name],
        list(versions),
        expect="renewed" if act_name == "operator_tags" else "stopped",
        no_failed_entry=True,
    )

    def act(r: Row) -> None:
        events = m.expiry_events(versions, 1)
        r.deliveries = len(events)
        m.deliver(events)

        def pending() -> dict[str, list[dict[str, Any]]]:
            return {n: [x for x in rs if x["event"] == "pending"] for n, rs in m.by_name(r.names).items()}

        poll_until(lambda: all(pending().values()), timeout=60, interval=POLL, what="Pending at the CA")
        waiting = pending()
        for name, version in versions.items():
            if act_name == "operator_tags":
                tags = m.client.get_certificate_version(name, version).properties.tags or {}
                m.client.update_certificate_properties(name, version, tags={**tags, "team": "platform"})
            elif act_name == "operator_disabled":
                m.client.update_certificate_properties(name, version, enabled=False)
            else:
                m.client.begin_delete_certificate(name).wait()
        ca = LocalCA(Path(m.stack.settings["CERTLC_LOCAL_CA_DIR"]))
        for records in waiting.values():
            ca.approve(records[0]["ca_request_id"])

    result = m.run(row, act)
    stop = {"operator_disabled": "certificate_disabled", "operator_deleted": "certificate_deleted"}.get(act_name)
    if stop:  # stopped for this act's reason, and the notice says so
        records, told = m.by_name(row.names), m.notices("renewal_failed", row.names)
        wrong = [
            n
            for n in row.names
            if not any(x["event"] == "skipped" and x.get("reason") == stop for x in records[n])
            or not any(STOPPED[stop] in str(p.get("reason")) for p in told[n])
        ]
        if wrong:
            result["problems"].append(f"not stopped as {stop}, or no notice saying so: {wrong}")
            result["ok"] = False
    if act_name == "operator_tags":
        carried = {n: (m.client.get_certificate(n).properties.tags or {}).get("team") for n in versions}
        result["new_version_team_tag"] = dict(Counter(carried.values()))
        wrong = {n: t for n, t in carried.items() if t != "platform"}
        if wrong:
            result["problems"].append(f"new version(s) without the changed tag team=platform: {wrong}")
            result["ok"] = False
    return result


# --- the lock's cost ---------------------------------------------------------------------------------------


class _Counted:
    """A proxy counting the calls made through it; blob and lease clients it hands out are counted too."""

    def __init__(self, inner: Any, calls: Counter, prefix: str) -> None:
        self._inner, self._calls, self._prefix = inner, calls, prefix

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._inner, attr)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            self._calls[f"{self._prefix}.{attr}"] += 1
            result = value(*args, **kwargs)
            if attr == "get_blob_client":
                self._calls[f"{self._prefix}.{attr}"] -= 1  # no request: a client object
                return _Counted(result, self._calls, "blob")
            if attr == "acquire_lease":
                return _Counted(result, self._calls, "lease")
            return result

        return call


def lock_cost(stack: Any, certs: int) -> dict[str, Any]:
    """Storage calls per renewal through the ledger, and seconds per renewal with the lease and without."""
    from renewal.ledger import DryRunLedger
    from renewal.messages import RenewalRequest
    from renewal.runtime import build_runtime

    rt = build_runtime(stack.settings)
    calls: Counter = Counter()
    rt.workflow.ledger._container = _Counted(rt.workflow.ledger._container, calls, "container")

    def renew_all(names: Sequence[str]) -> tuple[list[float], list[Counter]]:
        seconds, counts = [], []
        for name in names:
            before = Counter(calls)
            started = time.perf_counter()
            result = rt.workflow.handle(RenewalRequest(VAULT, name, "manual", force=True))
            seconds.append(time.perf_counter() - started)
            if result.status != "renewed":
                raise RuntimeError(f"lock-cost renewal of {name} ended {result.status} ({result.reason})")
            counts.append(Counter(calls) - before)
        return seconds, counts

    run = uuid.uuid4().hex[:6]
    locked = [f"lock-{run}-{i:03d}" for i in range(certs)]
    unlocked = [f"nolock-{run}-{i:03d}" for i in range(certs)]
    seed(stack, [(VAULT, n) for n in locked + unlocked])
    renew_all(locked[:1] + unlocked[:1])  # warm-up: clients, connections, the container
    first_seconds, first_counts = renew_all(locked[1:])
    again_seconds, again_counts = renew_all(locked[1:])  # the certificate's blob exists now
    real = rt.workflow.ledger
    rt.workflow.ledger = DryRunLedger()
    try:
        bare_seconds, _ = renew_all(unlocked[1:])
    finally:
        rt.workflow.ledger = real

    def per_renewal(counts: list[Counter]) -> dict[str, Any]:
        totals = [sum(c.values()) for c in counts]
        merged: Counter = Counter()
        for c in counts:
            merged.update(c)
        return {
            "calls": _span(totals),
            "by_call": {k: round(v / len(counts), 2) for k, v in sorted(merged.items())},
        }

    median = lambda values: round(statistics.median(values) * 1000, 1)  # noqa: E731
    return {
        "renewals_each": len(first_seconds),
        "storage_calls_first_renewal_of_a_certificate": per_renewal(first_counts),
        "storage_calls_later_renewal": per_renewal(again_counts),
        "ms_per_renewal_with_lock_median": median(first_seconds + again_seconds),
        "ms_per_renewal_without_lock_median": median(bare_seconds),
        "ms_lock_overhead_median": round(median(first_seconds + again_seconds) - median(bare_seconds), 1),
        "note": "sequential renewals in this process through RenewalWorkflow.handle; without the lock = "
        "renewal.ledger.DryRunLedger in its place. Calls counted on the ledger's container, blob and lease "
        "clients (one HTTP request each).",
    }


# --- compromise --------------------------------------------------------------------------------------------


def _issued_here(m: Matrix, prefix: str, tags: Mapping[str, str] | None = None) -> tuple[str, str, int]:
    """A certificate whose current version the local CA issued (a seeded one's CA revokes nothing): its name, that
    version and its serial."""
    from cryptography import x509

    from renewal.messages import RenewalRequest

    name = next(iter(m.seed(prefix, 1, tags=tags)))
    m.runtime.workflow.handle(RenewalRequest(VAULT, name, "manual", force=True))
    cert = m.client.get_certificate(name)
    return name, cert.properties.version, x509.load_der_x509_certificate(bytes(cert.cer)).serial_number


def _compromise_bars(m: Matrix, name: str, version: str, serial: int) -> Callable[[], list[str]]:
    """One revocation of the compromised serial at the CA and none of the new one; its version disabled; no step
    left (the new version's ``certlc-compromised`` tag gone)."""
    from cryptography import x509

    from renewal import tags as cert_tags

    def check() -> list[str]:
        folder = Path(m.stack.settings["CERTLC_LOCAL_CA_DIR"])
        crl = x509.load_der_x509_crl((folder / "crl.der").read_bytes())
        listed = [entry.serial_number for entry in crl]
        current = m.client.get_certificate(name)
        new_serial = x509.load_der_x509_certificate(bytes(current.cer)).serial_number
        problems = []
        if listed.count(serial) != 1 or new_serial in listed:
            problems.append(
                f"{name}: the CRL lists the old serial {listed.count(serial)} time(s), the new one "
                f"{listed.count(new_serial)}"
            )
        if m.client.get_certificate_version(name, version).properties.enabled:
            problems.append(f"{name}: the compromised version {version} is still enabled")
        if cert_tags.tag(current.properties.tags or {}, cert_tags.COMPROMISED):
            problems.append(f"{name}: a compromise step is left (certlc-compromised on {current.properties.version})")
        return problems

    return check


def _compromise_row(m: Matrix, label: str, scenario: str, issued: tuple[str, str, int]) -> Row:
    """A compromise row's bars: the renewal's, and ``_compromise_bars``; one of its two CA requests made the version
    the row compromises (a seeded version's CA revokes nothing)."""
    name, version, serial = issued
    return Row(
        label,
        scenario,
        [name],
        expect="compromised",
        versions_before=2,
        max_ca_requests=2,
        notes=["the CA requests include the renewal that made the compromised version (from the local CA)"],
        extra_check=_compromise_bars(m, name, version, serial),
    )


def compromise_crash_row(m: Matrix) -> dict[str, Any]:
    """A compromise renewal dies right after its CA revoked the old certificate, before it wrote that down and
    disabled the version; the retry asks the CA again (which says it already did), disables it and finishes."""
    from renewal.ca.local import LocalCA
    from renewal.messages import RenewalRequest

    name, version, serial = _issued_here(m, "compromise-crash")
    row = _compromise_row(
        m,
        "compromise_crash_after_revoke",
        "a compromise renewal dies after the revocation, before the disable; the retry finishes it",
        (name, version, serial),
    )
    real = LocalCA.revoke
    crashed = threading.Event()

    def crashing(self: Any, certificate_pem: str, reason: str) -> Any:
        done = real(self, certificate_pem, reason)
        if not crashed.is_set():
            crashed.set()
            raise RuntimeError("injected crash after the revocation")
        return done

    def act(r: Row) -> None:
        with mock.patch.object(LocalCA, "revoke", crashing):
            m.runtime.workflow.handle(RenewalRequest(VAULT, name, "compromise", version=version))
            m.settle(r.names, r.expect)
        r.deliveries = 1

    return m.run(row, act)


def compromise_race_row(m: Matrix) -> dict[str, Any]:
    """The operator's compromise of a version and Key Vault's near-expiry event for it at once: one new version and
    one revocation, whichever renews first."""
    from renewal import tags as cert_tags
    from renewal.messages import RenewalRequest

    name, version, serial = _issued_here(m, "compromise-race", tags={cert_tags.RENEW_BEFORE_DAYS: "100"})
    row = _compromise_row(
        m,
        "compromise_racing_expiry",
        "a compromise renewal and a near-expiry event for the same version at once",
        (name, version, serial),
    )

    def act(r: Row) -> None:
        compromise = RenewalRequest(VAULT, name, "compromise", version=version)
        r.deliveries = 2
        m.deliver(
            [m.event(name, version, CERTIFICATE_NEAR_EXPIRY, str(uuid.uuid4()))],
            also=lambda: m.runtime.workflow.handle(compromise),
        )

    return m.run(row, act)


# --- main --------------------------------------------------------------------------------------------------


def rows(m: Matrix, args: argparse.Namespace) -> Iterator[tuple[str, Callable[[], dict[str, Any]]]]:
    n, small = args.certs, args.small
    for processes in (1, 2, 4):
        yield f"processes_{processes}", lambda p=processes: processes_row(m, p, n)
    yield "keyvault_429", lambda: throttled_create_row(m, small)
    yield "keyvault_slow", lambda: slow_keyvault_row(m, small)
    yield "keyvault_past_deadline", lambda: deadline_keyvault_row(m, small)
    yield "ca_down", lambda: ca_down_row(m, small)
    yield "ca_pending", lambda: ca_pending_row(m, small)
    yield "ca_denied", lambda: ca_denied_row(m, small)
    yield "ca_garbage", lambda: ca_garbage_row(m, small)
    for target, attribute in CRASH_STEPS:
        yield f"crash_after_{attribute}", lambda t=target, a=attribute: crash_row(m, t, a)
    for point in PAUSE_POINTS:  # about 25 s each (an 18 s pause): --quick keeps the first unless named in --only
        if not args.quick or point == "paused_in_read" or (args.only and point in args.only):
            yield point, lambda p=point: paused_holder_row(m, p)
    for act_name in OPERATOR_ACTS:
        yield act_name, lambda a=act_name: operator_row(m, a, args.tiny)
    yield "compromise_crash_after_revoke", lambda: compromise_crash_row(m)
    yield "compromise_racing_expiry", lambda: compromise_race_row(m)
    yield "queue_outage", lambda: queue_outage_row(m, args.tiny, args.queue_outage)  # these two restart Azurite
    yield "storage_down", lambda: storage_down_row(m, small, args.outage)


ROW_NAMES = (
    *(f"processes_{p}" for p in (1, 2, 4)),
    "keyvault_429",
    "keyvault_slow",
    "keyvault_past_deadline",
    "ca_down",
    "ca_pending",
    "ca_denied",
    "ca_garbage",
    *(f"crash_after_{a}" for _, a in CRASH_STEPS),
    *PAUSE_POINTS,
    *OPERATOR_ACTS,
    "compromise_crash_after_revoke",
    "compromise_racing_expiry",
    "queue_outage",
    "storage_down",
    "lock_cost",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer certificates per row (about a minute less)")
    parser.add_argument("--certs", type=int, help="due certificates per process row (default 12, --quick 4)")
    parser.add_argument("--outage", type=float, default=5.0, help="seconds storage stays down")
    parser.add_argument("--queue-outage", type=float, default=12.0, help="seconds the queue stays down")
    parser.add_argument("--only", nargs="+", metavar="ROW", choices=ROW_NAMES, help="run only these rows")
    args = parser.parse_args(argv)
    args.certs = args.certs or (4 if args.quick else 12)
    args.small = 2 if args.quick else 4
    args.tiny = 1 if args.quick else 2  # the operator and queue-outage rows
    from localazure.ports import free_port
    from localazure.receiver import WebhookReceiver

    receiver = WebhookReceiver().start()
    settings = {
        "CERTLC_WEBHOOK_URLS": f"generic={receiver.url}",
        "CERTLC_BACKOFF_BASE_SECONDS": "1",
        "CERTLC_BACKOFF_CAP_SECONDS": "8",
        "CERTLC_MAX_ATTEMPTS": "4",
        "CERTLC_LOCK_SECONDS": "15",  # the shortest lease: a lease stranded by the storage outage lapses sooner
        "CERTLC_KEYVAULT_READ_TIMEOUT": str(KV_READ_TIMEOUT),
        "CERTLC_CFSSL_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens there: a CA that is down
    }
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    cost: dict[str, Any] | None = None
    try:
        with local_stack([VAULT], settings, ca_profiles=CA_PROFILES) as stack:
            m = Matrix(stack, receiver, Path(stack.directory))
            chosen = [(name, row) for name, row in rows(m, args) if not args.only or name in args.only]
            for name, row in chosen:
                restarts_azurite = name in ("queue_outage", "storage_down")
                if restarts_azurite and cost is None and (not args.only or "lock_cost" in args.only):
                    cost = lock_cost(stack, 4 if args.quick else 11)
                results.append(row())
            if cost is None and (not args.only or "lock_cost" in args.only):
                cost = lock_cost(stack, 4 if args.quick else 11)
    finally:
        receiver.stop()
    failed = [r["row"] for r in results if not r["ok"]]
    result = {
        "benchmark": "reliability",
        "quick": args.quick,
        "certificates_per_process_row": args.certs,
        "certificates_per_fault_row": args.small,
        "seconds": round(time.perf_counter() - started, 1),
        "rows": results,
        "lock_cost": cost,
        "failed_rows": failed,
    }
    write_result("reliability", result)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
