"""The sweep's heartbeat on the local stack: a sweep run through the host leaves it in the lock container and in
the Logs emulator's CertlcHeartbeat_CL stream; ``certlc status`` and ``certlc doctor``, run as a user runs them,
show when the sweep last ran, and call it late once it is older than two intervals.

The late case reads a heartbeat written three hours back into a container of its own (a settings file naming it):
the shared stack's own timers and sweeps go on untouched.
"""

from __future__ import annotations

import json
import socket
from datetime import timedelta
from pathlib import Path

import pytest

from ingestion.heartbeat import STREAM_DEFAULT, heartbeat_row
from renewal.clock import clock_from_env, iso_utc
from renewal.heartbeat import Heartbeat, read_heartbeat, write_heartbeat
from tests.cli import run_certlc
from tests.pipeline.helpers import unique

pytestmark = pytest.mark.timeout(300)


def doctor_line(stdout: str) -> dict:
    (check,) = [c for c in json.loads(stdout)["checks"] if c["name"] == "sweep heartbeat"]
    return check


def test_a_sweep_run_leaves_its_heartbeat_in_storage_and_in_log_analytics(stack):
    before = clock_from_env(stack.settings)().replace(microsecond=0)  # the heartbeat keeps whole seconds
    stack.host.trigger_timer("sweep")

    last, _ = read_heartbeat(stack.settings, 5)
    assert last is not None and last.host == socket.gethostname()
    assert before <= last.at <= clock_from_env(stack.settings)()  # this run's, on the functions' clock
    assert heartbeat_row(last) in stack.logs.rows(STREAM_DEFAULT)  # the same run, every column as declared


def test_status_and_doctor_show_when_the_sweep_last_ran(stack):
    stack.host.trigger_timer("sweep")
    last, _ = read_heartbeat(stack.settings, 5)
    assert last is not None
    settings = str(stack.settings_path)

    table = run_certlc("--settings", settings, "status", "--vault", "kv1", "--no-color")
    status = run_certlc("--settings", settings, "status", "--vault", "kv1", "-o", "json")
    doctor = run_certlc("--settings", settings, "doctor", "-o", "json")

    assert table.returncode == 0, table.stderr
    (line,) = [line for line in table.stdout.splitlines() if line.startswith("sweep: ")]
    assert f"last sweep {iso_utc(last.at)} on {last.host} ({last.counts()})" in line, table.stdout
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["sweep"]["state"] == "ok"
    assert f"last sweep {iso_utc(last.at)}" in json.loads(status.stdout)["sweep"]["message"]
    check = doctor_line(doctor.stdout)
    assert check["ok"] is True and f"last sweep {iso_utc(last.at)} on {last.host}" in check["detail"], doctor.stdout


def test_a_sweep_older_than_two_intervals_is_late_in_status_and_doctor(stack, tmp_path: Path):
    values = json.loads(stack.settings_path.read_text())["Values"] | {"CERTLC_LOCK_CONTAINER": unique("hb-late")}
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    old = clock_from_env(values)().replace(microsecond=0) - timedelta(hours=3)
    beat = Heartbeat(old, "fn-stopped", queued=1, taken_over=0, in_flight=0, warned=0, errors=0)
    blob_only = {k: v for k, v in values.items() if k != "CERTLC_DCE_ENDPOINT"}  # no stale row in the shared stream
    assert write_heartbeat(blob_only, beat)

    status = run_certlc("--settings", str(settings), "status", "--vault", "kv1", "-o", "json")
    table = run_certlc("--settings", str(settings), "status", "--vault", "kv1", "--no-color")
    doctor = run_certlc("--settings", str(settings), "doctor", "-o", "json")

    assert status.returncode == 0, status.stderr  # the table is still shown; the sweep line says what is wrong
    sweep = json.loads(status.stdout)["sweep"]
    assert sweep["state"] == "late" and f"last sweep {iso_utc(old)} on fn-stopped" in sweep["message"]
    assert "late, 3 h ago" in sweep["message"] and "CERTLC_SWEEP_SCHEDULE" in sweep["fix"]
    assert "\n  check: check that the Function App runs" in table.stdout, table.stdout
    check = doctor_line(doctor.stdout)
    assert check["ok"] is False and "late, 3 h ago" in check["detail"] and "certlc doctor --app" in check["fix"]
    assert doctor.returncode == 1
