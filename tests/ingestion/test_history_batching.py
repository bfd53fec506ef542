"""The renewal history off the renewal's path: buffered per invocation, one upload at its end, bounded in memory,
and only ever a copy of what the audit log and file already hold."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ingestion import history
from ingestion.history import LogsHistorySink, history_row, history_target
from ingestion.upload import MAX_BODY_BYTES, logs_ingestion_client
from renewal import handlers
from renewal.audit import Audit, JsonlFileSink, MemorySink, audit_from_env
from renewal.messages import RenewalRequest
from renewal.reporting import Reporter
from renewal.vaults import parse_allow_list

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]
# the steps RenewalWorkflow audits for a renewal the CA issues at once, with a notification
STEPS = ("renewal_initiated", "csr_created", "submitted", "issued", "merged", "notified")


def history_uploads(emulator: Any) -> int:
    return sum(1 for r in emulator.requests() if r["path"].endswith(f"/streams/{history.STREAM_DEFAULT}"))


def rows_of(emulator: Any, vault: str) -> list[dict[str, Any]]:
    return [r for r in emulator.rows(history.STREAM_DEFAULT) if r["KeyVault"] == vault]


class RecordingClient:
    """A stand-in for the SDK client: what each upload call got."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.fail = fail

    def upload(self, *, rule_id: str, stream_name: str, logs: list[dict[str, Any]]) -> None:
        self.calls.append(list(logs))
        if self.fail:
            raise ConnectionError("the DCE is down")


def recording_sink(client: RecordingClient, **options: Any) -> LogsHistorySink:
    target = history_target({"CERTLC_DCE_ENDPOINT": "https://dce.example", "CERTLC_DCR_IMMUTABLE_ID": "dcr-1"})
    return LogsHistorySink(target, lambda: client, **options)


def record(audit: Audit, vault: str, step: str, attempt: int = 1) -> dict[str, Any]:
    return audit.record(step, vault=vault, name="web", correlation_id="c1", attempt=attempt)


def test_a_renewals_steps_go_up_in_one_upload_at_the_end_of_its_invocation(logs_emulator, tmp_path, monkeypatch):
    """The queue function's handler: six audit steps, no upload between them, one upload when it ends."""
    vault = f"kv-{uuid.uuid4().hex[:8]}"
    audit = audit_from_env({**logs_emulator.settings(), "CERTLC_AUDIT_FILE": str(tmp_path / "a.jsonl")})
    reporter = Reporter(None, audit, {}, lambda: NOW)
    uploads_between_steps: list[int] = []
    before = history_uploads(logs_emulator)

    def handle(request: RenewalRequest) -> Any:
        for step in STEPS:
            reporter.audit(step, request)
            uploads_between_steps.append(history_uploads(logs_emulator) - before)
        return SimpleNamespace(request=request, status="renewed", reason="", message="")

    fake_runtime(monkeypatch, vault, handle)
    handlers.on_queue_message(RenewalRequest(vault=vault, name="web", trigger="sweep").to_json())

    assert uploads_between_steps == [0] * len(STEPS)  # nothing on the renewal's path
    assert history_uploads(logs_emulator) - before == 1  # was one per step (6)
    assert [r["Event"] for r in rows_of(logs_emulator, vault)] == list(STEPS)  # every row once the invocation ended
    written = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert rows_of(logs_emulator, vault) == [history_row(r) for r in written]  # the row mapping as before


def test_the_invocation_flushes_even_when_the_renewal_raised(logs_emulator, monkeypatch):
    vault = f"kv-{uuid.uuid4().hex[:8]}"
    audit = audit_from_env(logs_emulator.settings())
    before = history_uploads(logs_emulator)

    def handle(request: RenewalRequest) -> Any:
        record(audit, vault, "renewal_initiated")
        record(audit, vault, "submitted")
        raise RuntimeError("the CA hung up")  # an unexpected error: the host retries the message

    fake_runtime(monkeypatch, vault, handle)
    with pytest.raises(RuntimeError, match="the CA hung up"):
        handlers.on_queue_message(RenewalRequest(vault=vault, name="web", trigger="sweep").to_json())
    assert [r["Event"] for r in rows_of(logs_emulator, vault)] == ["renewal_initiated", "submitted"]
    assert history_uploads(logs_emulator) - before == 1


def test_the_sweep_and_event_functions_end_with_a_flush_too(monkeypatch):
    client = RecordingClient()
    audit = Audit([recording_sink(client, flush_seconds=None)], clock=lambda: NOW)
    monkeypatch.setattr(handlers, "runtime", lambda: (_ for _ in ()).throw(RuntimeError("no settings")))
    for call in (lambda: handlers.on_sweep_timer(), lambda: handlers.on_event_grid_event(object())):
        record(audit, "kv1", "skipped")
        with pytest.raises(RuntimeError, match="no settings"):
            call()
    assert [len(c) for c in client.calls] == [1, 1]


def fake_runtime(monkeypatch: Any, vault: str, handle: Any) -> None:
    vaults = parse_allow_list(vault)
    rt = SimpleNamespace(settings=SimpleNamespace(vaults=vaults), workflow=SimpleNamespace(handle=handle))
    monkeypatch.setattr(handlers, "runtime", lambda: rt)


def test_every_record_is_in_the_log_and_the_file_before_the_history_buffers_it(tmp_path, caplog):
    """Kill-safety: a process that dies before any flush has lost only the history copy, never an audit line."""
    path = tmp_path / "audit.jsonl"
    seen_on_disk: list[int] = []

    class Spy:
        """A buffered sink that looks at the trail at the moment it is handed a record."""

        buffered = True

        def write(self, record: dict[str, Any], line: str) -> None:
            seen_on_disk.append(path.read_text().splitlines().count(line))

        def flush(self) -> None:
            return None

    client = RecordingClient()
    history_sink = recording_sink(client, flush_seconds=None)
    audit = Audit([history_sink, Spy(), JsonlFileSink(path)], clock=lambda: NOW)  # in any order given
    assert [type(s) for s in audit.sinks] == [JsonlFileSink, LogsHistorySink, Spy]  # the file first
    with caplog.at_level(logging.INFO, logger="certlc.audit"):
        written = [record(audit, "kv1", step) for step in STEPS]

    assert seen_on_disk == [1] * len(STEPS)
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == written  # the file has every record, nothing flushed yet
    assert [r.getMessage() for r in caplog.records if r.name == "certlc.audit"] == lines  # so has the log
    assert client.calls == [] and history_sink.pending == len(STEPS)  # what dying now would lose: this copy


def test_a_full_buffer_drops_the_oldest_rows_and_says_how_many(caplog):
    client = RecordingClient()
    sink = recording_sink(client, max_rows=3, flush_seconds=None)
    audit = Audit([sink], clock=lambda: NOW)
    with caplog.at_level(logging.WARNING, logger="certlc.audit"):
        for attempt in range(1, 6):
            record(audit, "kv1", "retried", attempt)
        assert sink.pending == 3 and sink.overflowed == 2
        assert sink.flush() == 3
    assert [[r["Attempt"] for r in call] for call in client.calls] == [[3, 4, 5]]  # the newest kept
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "Custom-CertlcRenewals_CL: history buffer full (3 rows): dropping the oldest rows until the next upload "
        "(the certlc.audit log keeps every record)",
        "Custom-CertlcRenewals_CL: 2 history rows dropped, the oldest, while the buffer was full (3 rows); "
        "the certlc.audit log keeps every record",
    ]  # one when it starts, one with the count: not one per row


def test_a_failed_upload_loses_its_rows_and_starts_the_quiet_period(caplog):
    clock = [1000.0]
    client = RecordingClient(fail=True)
    sink = recording_sink(client, monotonic=lambda: clock[0], flush_seconds=None)
    audit = Audit([sink, MemorySink()], clock=lambda: NOW)
    record(audit, "kv1", "submitted")
    record(audit, "kv1", "issued")
    with caplog.at_level(logging.WARNING, logger="certlc.audit"):
        audit.flush()  # logged, never raised
    (warning,) = [r.getMessage() for r in caplog.records if "LogsHistorySink" in r.getMessage()]
    assert warning == (
        "audit sink LogsHistorySink failed: HistoryUploadError: Custom-CertlcRenewals_CL: ConnectionError: the DCE "
        "is down; history rows are not sent for the next 300 s; 2 rows of this upload are lost (the certlc.audit "
        "log keeps every record)"
    )
    assert (len(client.calls), sink.failed) == (1, 2)
    record(audit, "kv1", "merged")  # quiet: dropped unsent, no call
    assert sink.flush() == 0 and (len(client.calls), sink.dropped, sink.pending) == (1, 1, 0)
    clock[0] += history.QUIET_SECONDS + 1
    client.fail = False
    record(audit, "kv1", "notified")
    assert sink.flush() == 1 and [c[0]["Event"] for c in client.calls] == ["submitted", "notified"]


def test_a_long_running_process_uploads_on_a_timer_and_on_a_size_threshold():
    """``certlc worker`` and ``certlc dev`` between invocations: the background thread, no flush called."""
    client = RecordingClient()
    timed = recording_sink(client, flush_seconds=0.3)
    audit = Audit([timed], clock=lambda: NOW)
    record(audit, "kv1", "rollout_updated")
    record(audit, "kv1", "retired")
    deadline = time.monotonic() + 10
    while timed.pending and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [len(c) for c in client.calls] == [2]  # both rows, one upload

    sized_client = RecordingClient()
    sized = recording_sink(sized_client, flush_rows=3, flush_seconds=3600)  # the timer alone would wait an hour
    sized_audit = Audit([sized], clock=lambda: NOW)
    for attempt in range(1, 4):
        record(sized_audit, "kv1", "retried", attempt)
    deadline = time.monotonic() + 10
    while sized.pending and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [len(c) for c in sized_client.calls] == [3]


def test_a_big_buffer_goes_up_in_calls_under_the_body_limit():
    client = RecordingClient()
    sink = recording_sink(client, flush_seconds=None)
    audit = Audit([sink], clock=lambda: NOW)
    for attempt in range(1, 41):
        audit.record("failed", vault="kv1", name="web", correlation_id="c", attempt=attempt, detail="x" * 50_000)
    assert sink.flush() == 40
    assert len(client.calls) >= 2 and sum(len(c) for c in client.calls) == 40
    assert all(len(json.dumps(c).encode()) <= MAX_BODY_BYTES for c in client.calls)


def test_a_process_that_exits_normally_sends_what_it_buffered(logs_emulator, tmp_path):
    """The CLI's operator commands and ``certlc sync``: no invocation ends, the exit flushes (atexit)."""
    vault = f"kv-{uuid.uuid4().hex[:8]}"
    script = (  # a command's Audit is gone (collected) long before the process exits
        "import gc, json, sys\n"
        "from renewal.audit import audit_from_env\n"
        "def command():\n"
        "    audit = audit_from_env(json.loads(sys.argv[1]))\n"
        "    for step in ('renewal_initiated', 'merged'):\n"
        f"        audit.record(step, vault={vault!r}, name='web', correlation_id='c', attempt=1)\n"
        "command()\n"
        "gc.collect()\n"
    )
    env = {**logs_emulator.settings(), "CERTLC_AUDIT_FILE": str(tmp_path / "a.jsonl")}
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(env)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert [r["Event"] for r in rows_of(logs_emulator, vault)] == ["renewal_initiated", "merged"]


def test_the_real_sdk_client_sends_a_flush_as_one_call(logs_emulator):
    settings = logs_emulator.settings()
    sink = LogsHistorySink(history_target(settings), lambda: logs_ingestion_client(settings), flush_seconds=None)
    audit = Audit([sink], clock=lambda: NOW)
    vault = f"kv-{uuid.uuid4().hex[:8]}"
    before = history_uploads(logs_emulator)
    for step in STEPS:
        record(audit, vault, step)
    assert history_uploads(logs_emulator) == before
    assert sink.flush() == len(STEPS)
    assert history_uploads(logs_emulator) - before == 1 and len(rows_of(logs_emulator, vault)) == len(STEPS)
