"""The command line without any service: global options anywhere, --version, -o json, usage mistakes, and the
status table's columns from stored rows."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from certlc.cli import main, parse
from certlc.dashboard.terminal import ANSI, RESET, render_table
from ingestion.schema import STATUS_EXPIRED, STATUS_OK
from tests.environment import without_certlc_settings

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(60)


def certlc(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = without_certlc_settings()
    return subprocess.run(
        [sys.executable, "-m", "certlc", *args],
        cwd=cwd,
        env={**clean, **(env or {}), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=45,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--settings", "s.json", "-v", "-o", "json", "sweep"],
        ["sweep", "--settings", "s.json", "-v", "-o", "json"],
        ["-v", "sweep", "--settings", "s.json", "--json"],
        ["--settings", "s.json", "sweep", "--verbose", "--output", "json"],
    ],
    ids=["before", "after", "split", "long"],
)
def test_global_options_mean_the_same_before_or_after_the_command(argv):
    args = parse(argv)
    assert (args.command, args.settings, args.verbose, args.debug, args.output) == (
        "sweep",
        "s.json",
        True,
        False,
        "json",
    )


def test_global_options_have_their_defaults_when_not_given():
    args = parse(["status"])
    assert (args.settings, args.verbose, args.debug, args.output) == (None, False, False, "table")


def test_an_option_given_before_the_command_is_not_reset_by_the_command():
    assert parse(["-o", "json", "--debug", "failed", "list"]).output == "json"
    assert parse(["--debug", "failed", "list"]).debug is True
    assert parse(["failed", "list", "--json"]).output == "json"  # after a nested action too


def test_json_is_one_option_everywhere_even_for_the_demo_and_local_up():
    assert parse(["demo", "--json"]).output == "json"
    assert parse(["demo", "-o", "json"]).output == "json"
    assert parse(["local", "up", "--json"]).output == "json"
    assert parse(["local", "up", "-v"]).verbose is True
    assert parse(["status", "-o", "table"]).output == "table"


def test_renew_takes_a_name_or_all_not_both(capsys):
    with pytest.raises(SystemExit) as usage:
        parse(["renew", "web", "--all"])
    assert usage.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    assert parse(["renew", "--all", "--vault", "kv1", "--dry-run"]).all is True


def test_an_unknown_output_format_is_a_usage_mistake(capsys):
    with pytest.raises(SystemExit) as usage:
        parse(["status", "-o", "yaml"])
    assert usage.value.code == 2
    assert "invalid choice: 'yaml'" in capsys.readouterr().err


def test_version_is_the_package_version(tmp_path):
    result = certlc(tmp_path, "--version")
    expected = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert (result.returncode, result.stdout.strip()) == (0, f"certlc {expected}")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["renew"], "name the certificate to renew, or pass --all"),
        (["renew", "--all", "--compromise"], "--compromise renews one certificate"),
        (["renew", "web", "--queue"], "--queue applies to --all"),
        (["status", "web", "--rows", "rows.json"], "--rows lists stored status rows"),
    ],
)
def test_usage_mistakes_are_one_line_and_exit_2(tmp_path, args, message):
    result = certlc(tmp_path, *args, env={"CERTLC_VAULTS": "kv1"})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def row(vault: str, name: str, renewed_by: str, plan: str, next_renewal: str | None = None, outcome: str = "") -> dict:
    return {
        "KeyVault": vault,
        "CertName": name,
        "CertExpiration": "2026-03-01T00:00:00Z",
        "DaysLeft": 90,
        "ExpiryStatus": STATUS_OK,
        "RenewedBy": renewed_by,
        "RenewalPlan": plan,
        "NextRenewal": next_renewal,
        "LastRenewalOutcome": outcome or None,
    }


ROWS = [
    row("kv1", "web", "certlc", "scheduled", "2026-01-30T00:00:00Z", "renewed 2025-11-01"),
    row("kv1", "legacy", "opted_out", "opted_out"),
    row("kv1", "api", "certlc", "failed", outcome="failed: ca_denied 2025-11-02"),
    row("kv2", "orphan", "nobody", "uncovered"),
]
SNAPSHOT = "2025-12-01T00:00:00Z"


def test_the_status_table_says_who_renews_it_and_paints_failed_rows_red():
    rows = [{**r, "TimeGenerated": SNAPSHOT} for r in ROWS]
    plain = render_table(rows, colour=False).splitlines()
    assert plain[0].endswith("Failed 1, nobody renews 1")
    header = plain[1]
    for column in ("RENEWED BY", "NEXT RENEWAL", "LAST OUTCOME"):
        assert column in header
    start = header.index("NEXT RENEWAL")
    by_name = {line.split()[1]: line for line in plain[2:] if len(line.split()) > 1}
    assert by_name["web"][start:].startswith("2026-01-30")
    assert "opted out" in by_name["legacy"] and by_name["legacy"][start : start + 12].strip() == ""
    assert "NOBODY" in by_name["orphan"]

    painted = render_table(rows, colour=True).splitlines()
    red, green = ANSI[STATUS_EXPIRED], ANSI[STATUS_OK]
    assert [line for line in painted if "api" in line] == [f"{red}{by_name['api']}{RESET}"]  # not-expired, yet red
    assert [line for line in painted if " web " in line] == [f"{green}{by_name['web']}{RESET}"]


def test_status_json_from_stored_rows_counts_failed_and_uncovered(tmp_path, capsys):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({**r, "TimeGenerated": SNAPSHOT}) + "\n" for r in ROWS))
    assert main(["status", "--rows", str(path), "-o", "json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert (body["failed"], body["uncovered"]) == (1, 1)
    assert sorted(row["CertName"] for row in body["certificates"]) == ["api", "legacy", "orphan", "web"]
    assert main(["status", "--rows", str(path), "--vault", "kv2", "--json"]) == 0
    assert [row["CertName"] for row in json.loads(capsys.readouterr().out)["certificates"]] == ["orphan"]
