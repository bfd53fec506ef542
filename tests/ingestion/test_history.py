"""The renewal history: audit records arrive as CertlcRenewals_CL rows in the real Logs emulator, best effort."""

import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from ingestion import history
from ingestion.history import LogsHistorySink, history_row, history_sink_from_env, history_target
from ingestion.upload import IngestionConfigError, logs_ingestion_client
from renewal.audit import Audit, JsonlFileSink, MemorySink, audit_from_env
from renewal.messages import RenewalRequest
from renewal.reporting import Reporter

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def mine(emulator, vault):
    return [r for r in emulator.rows(history.STREAM_DEFAULT) if r["KeyVault"] == vault]


def test_a_renewals_audit_events_arrive_as_history_rows(logs_emulator, tmp_path):
    vault = f"kv-{uuid.uuid4().hex[:8]}"
    audit = audit_from_env(
        {**logs_emulator.settings(), "CERTLC_AUDIT_FILE": str(tmp_path / "a.jsonl")}, clock=lambda: NOW
    )
    assert [type(s) for s in audit.sinks] == [JsonlFileSink, LogsHistorySink]
    reporter = Reporter(None, audit, {}, lambda: NOW)
    request = RenewalRequest(vault=vault, name="web", trigger="sweep", version="v1")
    # the steps RenewalWorkflow audits for a renewal the CA issues at once, in its order and with its fields
    reporter.audit("renewal_initiated", request, old_version="v1", ca="cfssl", profile="server", trigger="sweep")
    reporter.audit("csr_created", request, kv_request_id="op-1")
    reporter.audit("submitted", request, ca="cfssl", profile="server")
    reporter.audit("issued", request, ca="cfssl")
    reporter.audit("merged", request, old_version="v1", new_version="v2", old_expires_on=NOW + timedelta(days=12))
    retry = RenewalRequest(vault=vault, name="api", trigger="event", attempt=3)
    reporter.audit("failed", retry, reason="ca_denied", detail="denied: token=eyJhbGciOi.eyJzdWIi.c2ln")
    audit.flush()  # what the end of the invocation does (renewal.handlers): the buffered rows go up

    rows = mine(logs_emulator, vault)
    assert [(r["CertName"], r["Event"]) for r in rows] == [
        ("web", "renewal_initiated"),
        ("web", "csr_created"),
        ("web", "submitted"),
        ("web", "issued"),
        ("web", "merged"),
        ("api", "failed"),
    ]
    assert rows[0] == {
        "TimeGenerated": "2025-03-01T12:00:00.000Z",
        "KeyVault": vault,
        "CertName": "web",
        "Event": "renewal_initiated",
        "Trigger": "sweep",
        "CorrelationId": request.correlation_id,
        "Attempt": 1,
        "OldVersion": "v1",
        "NewVersion": "",
        "Reason": "",
        "Detail": "",
        "Ca": "cfssl",
        "Profile": "server",
        "CaRequestId": "",
        "OldExpiresOn": None,
        "TriggeredAt": None,
        "Action": "",
        "OperatorUser": "",
        "OperatorHost": "",
    }
    assert (rows[4]["OldVersion"], rows[4]["NewVersion"]) == ("v1", "v2")
    assert rows[4]["OldExpiresOn"] == "2025-03-13T12:00:00.000Z"  # a datetime column the emulator's DCR accepts
    failed = rows[5]
    assert (failed["Attempt"], failed["Reason"], failed["CorrelationId"]) == (3, "ca_denied", retry.correlation_id)
    assert "eyJ" not in failed["Detail"] and "[REDACTED]" in failed["Detail"]  # redacted before any sink sees it
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 6  # the other sinks still get every line


def test_the_history_needs_both_logs_settings_and_checks_them():
    assert audit_from_env({"CERTLC_DCE_ENDPOINT": "https://dce.example"}).sinks == ()
    assert audit_from_env({"CERTLC_DCR_IMMUTABLE_ID": "dcr-1"}).sinks == ()
    env = {"CERTLC_DCE_ENDPOINT": "https://dce.example/", "CERTLC_DCR_IMMUTABLE_ID": "dcr-1"}
    (sink,) = audit_from_env(env).sinks
    assert (sink.target.endpoint, sink.target.stream) == ("https://dce.example", "Custom-CertlcRenewals_CL")
    assert history_target({**env, "CERTLC_DCR_HISTORY_STREAM": "Custom-Other_CL"}).stream == "Custom-Other_CL"
    with pytest.raises(IngestionConfigError, match="must be an https:// URL"):
        history_sink_from_env({**env, "CERTLC_DCE_ENDPOINT": "http://dce.example"})


def test_a_failing_upload_never_fails_the_audit_and_then_stays_quiet(logs_emulator, caplog):
    """A refused upload (the real emulator, a wrong token) costs one call; the next rows are dropped unsent. Each
    record is flushed as if it ended an invocation of its own."""
    settings = {**logs_emulator.settings(), "CERTLC_LOGS_TOKEN": "not-the-token"}
    clock = [1000.0]
    sink = LogsHistorySink(
        history_target(settings), lambda: logs_ingestion_client(settings), monotonic=lambda: clock[0]
    )
    memory = MemorySink()
    audit = Audit([sink, memory], clock=lambda: NOW)
    vault = f"kv-{uuid.uuid4().hex[:8]}"

    def calls() -> int:
        return sum(1 for r in logs_emulator.requests() if r["path"].endswith(f"/streams/{history.STREAM_DEFAULT}"))

    before = calls()
    with caplog.at_level(logging.WARNING, logger="certlc.audit"):
        for attempt in range(1, 6):
            audit.record("retried", vault=vault, name="web", correlation_id="c", attempt=attempt, reason="ca_down")
            audit.flush()
    assert len(memory.records) == 5  # every record written; the audit never raised
    failing = calls() - before
    assert failing >= 1 and sink.dropped == 4
    (warning,) = [r.message for r in caplog.records if "LogsHistorySink" in r.message]  # one line, not five
    assert warning.startswith(
        "audit sink LogsHistorySink failed: HistoryUploadError: Custom-CertlcRenewals_CL: ClientAuthenticationError: "
        "(InvalidToken) missing or invalid bearer token; history rows are not sent for the next 300 s"
    )

    clock[0] += history.QUIET_SECONDS + 1  # the quiet period is over: the next record is tried again
    audit.record("retried", vault=vault, name="web", correlation_id="c", attempt=6, reason="ca_down")
    audit.flush()
    assert calls() - before > failing
    assert mine(logs_emulator, vault) == []


def test_a_row_for_every_column_and_nothing_else():
    record = Audit([], clock=lambda: NOW).record(
        "pending", vault="kv1", name="web", correlation_id="c1", attempt=2, ca="adcs", ca_request_id="42", detail="x"
    )
    row = history_row(record)
    assert list(row) == [name for name, _, _ in history.COLUMNS]
    assert (row["Ca"], row["Detail"], row["Attempt"], row["OldVersion"]) == ("adcs", "x", 2, "")


def test_the_ca_request_the_trigger_time_and_the_operator_columns():
    memory = MemorySink()
    audit = Audit([memory], clock=lambda: NOW)
    request = RenewalRequest(vault="kv1", name="web", trigger="near_expiry", ca_request_id="42")
    Reporter(None, audit, {}, lambda: NOW).audit(
        "renewal_initiated", request, triggered_at=NOW - timedelta(minutes=5)
    )  # every step of a renewal following a CA request names it
    audit.record(
        "operator_action", vault="kv1", name="web", correlation_id="c", attempt=None, action="failed_retry",
        user="ops", host="admin-1",
    )  # fmt: skip
    audit.record("skipped", vault="kv1", name="web", correlation_id="d", attempt=1, reason="not_due")
    initiated, operator, skipped = (history_row(r) for r in memory.records)
    assert (initiated["CaRequestId"], initiated["TriggeredAt"]) == ("42", "2025-03-01T11:55:00.000Z")
    assert (operator["Event"], operator["Action"], operator["OperatorUser"], operator["OperatorHost"]) == (
        "operator_action",
        "failed_retry",
        "ops",
        "admin-1",
    )
    assert operator["Attempt"] is None  # no delivery of a renewal request
    assert (skipped["CaRequestId"], skipped["OldExpiresOn"], skipped["TriggeredAt"]) == ("", None, None)
