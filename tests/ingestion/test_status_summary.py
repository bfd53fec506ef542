"""``certlc status --summary``: the renewal metrics and one line per renewal, from history rows or the audit file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from certlc.cli import main
from renewal.audit import Audit, JsonlFileSink


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_audit(path: Path, now: datetime) -> None:
    """A forced renewal that merged, a denied one and an operator's retry, through the real audit sink."""
    base = now - timedelta(hours=2)
    clock = [base]
    audit = Audit([JsonlFileSink(path)], clock=lambda: clock[0])

    def at(minutes: float, event: str, cid: str, name: str, **fields: Any) -> None:
        clock[0] = base + timedelta(minutes=minutes)
        audit.record(event, vault="kv1", name=name, correlation_id=cid, attempt=fields.pop("attempt", 1), **fields)

    at(0, "operator_action", "f1", "web", attempt=None, action="renew_force", user="ops", host="admin-1")
    at(1, "renewal_initiated", "f1", "web", trigger="manual")
    at(
        3,
        "merged",
        "f1",
        "web",
        trigger="manual",
        ca_request_id="42",
        old_expires_on=base + timedelta(days=9, minutes=3),
    )
    at(10, "renewal_initiated", "d1", "api", trigger="sweep")
    at(11, "failed", "d1", "api", trigger="sweep", reason="ca_denied")
    at(20, "operator_action", "o1", "api", attempt=None, action="failed_retry", user="ops", host="admin-1")
    at(-60 * 24 * 40, "merged", "old", "web")  # 40 days ago: outside the default window


@pytest.fixture
def history(tmp_path: Path) -> Path:
    path = tmp_path / "audit.jsonl"
    write_audit(path, datetime.now(UTC))
    return path


def status(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["status", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_summary_from_the_audit_file_as_text(history, capsys):
    code, out, _ = status(capsys, "--summary", "--history", str(history))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("Renewals since ") and lines[0].endswith(
        ": 2 (renewed 1, failed 1, in progress 0, skipped 0)"
    )
    assert lines[1:7] == [
        "Success rate:          50 %",
        "Lead time:             average 9 days, shortest 9 days",
        "Trigger to merged:     average 3 min, longest 3 min",
        "Trigger to served:     average -, longest - (every target serves the new version)",  # no target known
        "Failures by cause:     ca_denied 1",
        "Manual interventions:  2 (failed_retry 1, renew_force 1)",
    ]
    table = lines[8:]
    assert table[0].split()[:3] == ["STARTED", "(UTC)", "VAULT"]
    rows = {line.split()[-1]: line.split() for line in table[1:]}  # by correlation id
    assert list(rows) == ["o1", "d1", "f1"]  # newest first
    assert rows["f1"][3:] == ["web", "manual", "renewed", "3", "min", "42", "f1"]
    assert rows["d1"][3:7] == ["api", "sweep", "failed", "ca_denied"]
    assert rows["o1"][3:6] == ["api", "operator", "failed_retry"]
    assert not [line for line in lines if "operator_action" in line]  # the steps only with -v


def test_verbose_folds_each_renewals_steps_under_it(history, capsys):
    code, out, _ = status(capsys, "--summary", "--history", str(history), "-v")
    assert code == 0
    lines = out.splitlines()
    web = lines[next(i for i, line in enumerate(lines) if line.endswith(" f1")) :]
    assert web[0].split()[3:] == ["web", "manual", "renewed", "3", "min", "42", "f1"]
    assert [line.split()[2] for line in web[1:4]] == ["operator_action", "renewal_initiated", "merged"]
    assert "action=renew_force operatoruser=ops operatorhost=admin-1" in web[1]


def test_the_summary_as_json_and_the_window(history, capsys):
    code, out, _ = status(capsys, "--summary", "--history", str(history), "-o", "json")
    body = json.loads(out)
    summary = body["summary"]
    assert code == 0 and (summary["renewed"], summary["failed"], summary["success_rate"]) == (1, 1, 50.0)
    assert (summary["lead_days_avg"], summary["interventions_total"]) == (9.0, 2)
    forced = next(r for r in body["renewals"] if r["correlation_id"] == "f1")
    assert (forced["outcome"], forced["ca_request_id"], forced["trigger_to_merged_minutes"]) == ("renewed", "42", 3.0)
    assert [s["Event"] for s in forced["steps"]] == ["operator_action", "renewal_initiated", "merged"]
    assert forced["started"].endswith("Z")

    code, out, _ = status(capsys, "--summary", "--history", str(history), "-o", "json", "--days", "60")
    assert json.loads(out)["summary"]["renewed"] == 2  # the 40-day-old renewal is inside 60 days
    code, out, _ = status(capsys, "--summary", "--history", str(history), "-o", "json", "--vault", "kv2")
    assert json.loads(out)["summary"]["renewals"] == 0


def test_the_audit_file_setting_is_the_default_history(history, capsys, monkeypatch):
    monkeypatch.setenv("CERTLC_AUDIT_FILE", str(history))
    code, out, _ = status(capsys, "--summary", "-o", "json")
    assert code == 0 and json.loads(out)["summary"]["renewals"] == 2


def test_history_rows_read_as_they_are(tmp_path, capsys):
    now = datetime.now(UTC)
    rows = tmp_path / "rows.jsonl"
    row = {"TimeGenerated": iso(now - timedelta(minutes=5)), "KeyVault": "kv1", "CertName": "web", "Event": "merged",
           "CorrelationId": "c1", "Trigger": "sweep"}  # fmt: skip
    rows.write_text(json.dumps(row) + "\n")
    code, out, _ = status(capsys, "--summary", "--history", str(rows), "-o", "json")
    assert code == 0 and json.loads(out)["summary"]["renewed"] == 1


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (["--summary"], 2, "no renewal history to sum up: pass --history FILE"),
        (["web", "--summary", "--history", "h.jsonl"], 2, "--summary sums up every renewal: leave out the name"),
        (["--summary", "--rows", "r.jsonl", "--history", "h.jsonl"], 2, "--summary reads the renewal history"),
        (["--history", "h.jsonl"], 2, "--history is read by --summary"),
        (["--summary", "--days", "0", "--history", "h.jsonl"], 2, "--days must be a whole number of days, 1 or more"),
    ],
    ids=["no-history", "with-name", "with-rows", "history-alone", "days-zero"],
)
def test_mistakes_are_one_line_and_exit_2(args, code, said, capsys, monkeypatch):
    monkeypatch.delenv("CERTLC_AUDIT_FILE", raising=False)
    try:
        got, _, err = status(capsys, *args)
    except SystemExit as exit_:  # argparse's own usage errors
        got, err = exit_.code, capsys.readouterr().err
    assert got == code and said in err


def test_an_unreadable_history_is_exit_1(tmp_path, capsys):
    broken = tmp_path / "h.jsonl"
    broken.write_text("{not json\n")
    code, _, err = status(capsys, "--summary", "--history", str(broken))
    assert code == 1 and f"certlc status: {broken} is not JSON lines of rows" in err
