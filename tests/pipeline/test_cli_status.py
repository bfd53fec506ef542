"""`certlc status NAME`, the status table, `certlc renew --all`, and quiet `dev`/`worker`, on the local stack.

`renew --all` runs on kv2, which no other pipeline test uses, so what it finds there is this file's; the test
that leaves a renewal retrying comes last.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from localazure.ports import poll_until

from certlc.cli import main as certlc
from tests.pipeline.helpers import audit, seed, unique, versions

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parents[2]
QUIET_SECONDS = 10
SDK_REQUEST_LINES = ("Request URL", "Request headers", "Response headers")


def run(stack, capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = certlc(["--settings", str(stack.settings_path), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def due(stack, name: str, vault: str = "kv1", **tags: str) -> None:
    """Due by its own renew-before tag, 400 days out: no NearExpiry event renews it behind the test's back."""
    seed(stack, name, vault=vault, days_left=400, lifetime_days=500, tags={"certlc-renew-before-days": "450", **tags})


def not_due(stack, name: str, vault: str = "kv1", **tags: str) -> None:
    seed(stack, name, vault=vault, days_left=400, lifetime_days=500, tags=tags)


def due_by_lifetime(stack, name: str, vault: str = "kv1", **tags: str) -> None:
    """Due by a third of its lifetime, 100 days out (no NearExpiry event); its renewal (90 days) is not due."""
    seed(stack, name, vault=vault, days_left=100, lifetime_days=500, tags=tags)


# -- certlc status NAME -------------------------------------------------------------------------------------------


def test_status_of_a_managed_certificate_after_a_renewal_shows_its_history(stack, capsys):
    name = unique("st-managed")
    not_due(stack, name, **{"certlc-profile": "server"})
    assert run(stack, capsys, "renew", name, "--vault", "kv1", "--force")[0] == 0
    current = versions(stack, name)
    assert len(current) == 2

    code, out, err = run(stack, capsys, "status", name, "--vault", "kv1", "-o", "json")
    assert (code, err) == (0, "")
    status = json.loads(out)
    assert status["version"] in {v.version for v in current}
    assert (status["renewed_by"], status["plan"]) == ("certlc", "scheduled")
    assert (status["ca"], status["profile"]) == ("local", "server")
    assert status["policy_issuer"] == "Unknown" and "CN=" in status["issuer"]
    assert status["next_renewal"].endswith("Z") and status["canary"] is False
    assert status["last_outcome"].startswith("renewed")
    assert status["versions"][0]["version"] == status["version"]
    assert status["versions"][0]["correlation"] and status["versions"][0]["last_outcome"].startswith("renewed")
    events = [e["event"] for e in status["audit"]]
    assert events == [e["event"] for e in audit(stack, name)] and "merged" in events


def test_status_text_names_who_renews_it_and_when(stack, capsys):
    name = unique("st-text")
    not_due(stack, name)
    code, out, _ = run(stack, capsys, "status", name, "--vault", "kv1")
    assert code == 0
    fields = dict(line.split(":", 1) for line in out.splitlines() if not line.startswith(" ") and ":" in line)
    assert fields["Renewed by"].strip().startswith("certlc (scheduled): certlc renews it on ")
    assert fields["Next renewal"].strip().endswith("UTC")
    assert fields["CA adapter"].strip() == "local" and fields["Pending"].strip().startswith("none")
    assert fields["Last outcome"].strip() == "-"


def test_status_of_an_opted_out_certificate_shows_no_renewal_date(stack, capsys):
    name = unique("st-optout")
    due(stack, name, **{"certlc-renew": "false"})
    code, out, _ = run(stack, capsys, "-o", "json", "status", name, "--vault", "kv1")
    assert code == 0
    status = json.loads(out)
    assert (status["renewed_by"], status["plan"], status["next_renewal"]) == ("opted_out", "opted_out", None)
    code, out, _ = run(stack, capsys, "status", name, "--vault", "kv1")
    assert "Renewed by:      nobody: opted out" in out
    assert "Next renewal:    -" in out.splitlines()


def test_status_of_a_certificate_that_does_not_exist_is_one_line_and_exit_1(stack, capsys):
    name = unique("st-missing")
    code, out, err = run(stack, capsys, "status", name, "--vault", "kv1")
    assert (code, out) == (1, "")
    assert err.strip().splitlines() == [f"certlc: certificate '{name}' does not exist in vault 'kv1'"]


def test_status_without_a_vault_when_several_are_configured_names_them(stack, capsys):
    code, out, err = run(stack, capsys, "status", "web")
    assert (code, out) == (2, "")
    assert err.strip().splitlines() == ["certlc: name the vault with --vault: CERTLC_VAULTS has several (kv1, kv2)"]


# -- certlc status (all) ------------------------------------------------------------------------------------------


def test_the_status_table_says_who_renews_each_certificate_and_when(stack, capsys):
    managed, opted_out, failed = unique("st-tab-m"), unique("st-tab-o"), unique("st-tab-f")
    not_due(stack, managed)
    due(stack, opted_out, **{"certlc-renew": "false"})
    not_due(stack, failed, **{"certlc-last-outcome": "failed: ca_denied 2025-01-01"})
    code, out, _ = run(stack, capsys, "status", "--vault", "kv1", "--no-color")
    assert code == 0
    lines = out.splitlines()
    header = lines[1].split("  ")
    for column in ("RENEWED BY", "NEXT RENEWAL", "LAST OUTCOME"):
        assert column in [h.strip() for h in header if h.strip()], lines[1]
    assert "Failed " in lines[0] and "nobody renews " in lines[0]
    start = lines[1].index("NEXT RENEWAL")
    rows = {line.split()[1]: line for line in lines[2:] if len(line.split()) > 1}
    assert rows[managed][start:].split()[0][:2] == "20"  # a date
    assert " opted out" in rows[opted_out]
    assert rows[opted_out][start : start + len("NEXT RENEWAL")].strip() == ""  # no date: certlc leaves it alone
    assert "failed: ca_denied" in rows[failed]

    code, out, _ = run(stack, capsys, "status", "--vault", "kv1", "--json")
    body = json.loads(out)
    assert body["failed"] >= 1
    by_name = {row["CertName"]: row for row in body["certificates"]}
    assert by_name[opted_out]["RenewedBy"] == "opted_out" and by_name[opted_out]["NextRenewal"] is None


# -- certlc renew --all -------------------------------------------------------------------------------------------


def test_renew_all_renews_the_due_ones_and_leaves_the_others(stack, capsys):
    due_one, later, opted_out = unique("all-due"), unique("all-later"), unique("all-optout")
    due_by_lifetime(stack, due_one, vault="kv2")
    not_due(stack, later, vault="kv2")
    due(stack, opted_out, vault="kv2", **{"certlc-renew": "false"})

    code, out, _ = run(stack, capsys, "renew", "--all", "--vault", "kv2", "--dry-run", "-o", "json")
    assert code == 0
    dry = {c["name"]: c for c in json.loads(out)["certificates"]}
    assert (dry[due_one]["status"], dry[due_one]["reason"]) == ("skipped", "dry_run")
    assert later not in dry and opted_out not in dry  # opted out outside the notice window: the sweep reads it not
    assert len(versions(stack, due_one, "kv2")) == 1 and audit(stack, due_one) == []

    code, out, _ = run(stack, capsys, "renew", "--all", "--vault", "kv2")
    assert code == 0, out
    lines = out.splitlines()
    assert [line for line in lines if line.startswith(f"kv2/{due_one}: ")] == [
        next(line for line in lines if line.startswith(f"kv2/{due_one}: renewed"))
    ]
    assert not [line for line in lines if later in line or opted_out in line]
    assert lines[-1].startswith("renewed ") and "nothing to do" in lines[-1]
    assert len(versions(stack, due_one, "kv2")) == 2
    assert len(versions(stack, later, "kv2")) == 1 and len(versions(stack, opted_out, "kv2")) == 1

    code, out, _ = run(stack, capsys, "renew", "--all", "--vault", "kv2")  # renewed: nothing is due any more
    assert code == 0 and not [line for line in out.splitlines() if due_one in line]


def test_renew_takes_a_name_or_all_not_both(stack, capsys):
    with pytest.raises(SystemExit) as usage:  # argparse's own usage error
        run(stack, capsys, "renew", "web", "--all")
    assert usage.value.code == 2
    code, _, err = run(stack, capsys, "renew")
    assert code == 2 and "--all" in err


def test_renew_all_is_exit_1_when_a_renewal_is_left_retrying(stack, capsys):
    """Last of the kv2 tests: the certificate whose CA is down stays behind, retrying, then failed."""
    name = unique("all-cadown")
    due(stack, name, vault="kv2", **{"certlc-ca": "cfssl", "certlc-profile": "server"})  # cfssl is down
    code, out, _ = run(stack, capsys, "renew", "--all", "--vault", "kv2")
    assert code == 1
    assert f"kv2/{name}: retrying (ca_unavailable)" in out
    assert "retrying 1" in out.splitlines()[-1]


# -- dev and worker: quiet by default -----------------------------------------------------------------------------


def start(stack, tmp_path: Path, *args: str) -> tuple[subprocess.Popen, Path]:
    """`certlc ARGS` against the stack, on a queue of its own (it must not take the stack's messages)."""
    log = tmp_path / "out.log"
    env = {**os.environ, "PYTHONPATH": str(REPO), "CERTLC_QUEUE_NAME": unique("quiet")}
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "certlc", "--settings", str(stack.settings_path), *args, "--script-root", str(REPO)],
            cwd=tmp_path,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return process, log


def output_after(process: subprocess.Popen, log: Path, seconds: float, until: str | None = None) -> str:
    """What the process printed within ``seconds`` (sooner once ``until`` shows up); then it is stopped."""

    def done() -> bool:
        return process.poll() is not None or bool(until and until in log.read_text(errors="replace"))

    try:
        with contextlib.suppress(TimeoutError):  # the time is up: what it printed by then is the answer
            poll_until(done, timeout=seconds, interval=0.2)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return log.read_text(errors="replace")


@pytest.mark.parametrize("command", [["worker"], ["dev", "--no-timers", "--port", "0"]], ids=lambda c: c[0])
def test_dev_and_worker_print_no_sdk_requests_by_default(stack, tmp_path, command):
    process, log = start(stack, tmp_path, *command)
    out = output_after(process, log, QUIET_SECONDS)
    assert "polling" in out or "Listening" in out or "INFO" in out, out  # its own lines do show
    assert not [line for line in out.splitlines() if any(word in line for word in SDK_REQUEST_LINES)], out


def test_worker_with_debug_prints_the_sdk_requests(stack, tmp_path):
    """The same output with --debug does show them: the quiet test above can fail."""
    process, log = start(stack, tmp_path, "worker", "--debug")
    out = output_after(process, log, QUIET_SECONDS, until="Request URL")
    assert "Request URL" in out, out


# -- -v and --debug -------------------------------------------------------------------------------------------------


def certlc_process(stack, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        code = subprocess.run(
            [sys.executable, "-m", "certlc", *args, "--settings", str(stack.settings_path)],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            timeout=90,
        ).returncode
    return code, out.read_text(), err.read_text()


def test_verbose_shows_certlcs_progress_and_debug_the_sdks_requests(stack, tmp_path):
    quiet, verbose, debug = unique("v-quiet"), unique("v-verbose"), unique("v-debug")
    for name in (quiet, verbose, debug):
        not_due(stack, name)
    code, out, err = certlc_process(stack, tmp_path, "renew", quiet, "--vault", "kv1")
    assert (code, err) == (0, "") and len(out.splitlines()) == 1 and "(scheduled)" in out  # the outcome only
    code, _, err = certlc_process(stack, tmp_path, "-v", "renew", verbose, "--vault", "kv1")
    assert code == 0 and '"event":"skipped"' in err and "Request URL" not in err, err
    code, _, err = certlc_process(stack, tmp_path, "renew", debug, "--vault", "kv1", "--debug")
    assert code == 0 and '"event":"skipped"' in err and "Request URL" in err, err[-2000:]
