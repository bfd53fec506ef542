"""The local dashboard: the workbook's view from real rows, checked in real headless Chromium."""

import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certlc.dashboard import render
from certlc.dashboard.html import render_html
from certlc.dashboard.terminal import render_json, render_table
from certlc.dashboard.view import build_view
from ingestion.rows import CertificateDetails, ListedCertificate, build_row
from tests.fixtures.servers import fail_in_ci_else_skip

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
# (vault, name, days to expiry) -> 3 expired, 2 expiring soon, 4 healthy in the latest snapshot
CERTS = [
    ("kv1", "old-api", -40), ("kv1", "old-web", -1), ("kv2", "old-mail", -300),
    ("kv1", "soon-web", 3), ("kv2", "soon-vpn", 29),
    ("kv1", "web", 200), ("kv1", "api", 90), ("kv2", "mail", 365), ("kv2", "<script>alert(1)</script>", 31),
]  # fmt: skip
EXPECTED = {"Expired": 3, "ExpiringSoon": 2, "NotExpired": 4}
PENDING = "soon-web"  # a renewal in flight: its row is the last good version's, marked pending


def make_rows(now=NOW, certs=CERTS):
    rows = []
    for i, (vault, name, days) in enumerate(certs):
        listed = ListedCertificate(
            vault, name, f"{i:040X}", now - timedelta(days=400), now + timedelta(days=days, hours=1), True,
            {"Recipient": "ops@example.com"}, renewal_pending=name == PENDING,
        )  # fmt: skip
        details = CertificateDetails(f"v{i}", f"CN={name}.example.com", "CN=Contoso Issuing CA", "", "Unknown")
        rows.append(build_row(listed, details, now, 30))
    return rows


def all_rows():
    """An older snapshot with different states must not be counted."""
    return make_rows(NOW - timedelta(hours=1), [("kv1", "gone", -5)] * 4) + make_rows()


def test_view_counts_only_the_latest_snapshot_and_filters_by_vault():
    view = build_view(all_rows())
    assert view.snapshot_time == "2025-03-01T12:00:00Z"
    assert view.counts == EXPECTED
    assert [r["CertName"] for r in view.groups["Expired"]] == ["old-mail", "old-api", "old-web"]
    assert build_view(all_rows(), "kv2").counts == {"Expired": 1, "ExpiringSoon": 1, "NotExpired": 2}


def test_page_is_self_contained_and_escaped():
    page = render_html(all_rows())
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not re.search(r"""(src|href)\s*=|@import|url\(|https?://""", page)
    assert page.count('<section class="view"') == 3  # all vaults, kv1, kv2


def test_status_table_and_json():
    table = render_table(all_rows(), colour=True)
    assert (
        "\033[31mExpired (3)" in table and "\033[33mExpiring soon (2)" in table and "\033[32mNot expired (4)" in table
    )
    plain = render_table(all_rows(), colour=False)
    assert "\033[" not in plain and "soon-web" in plain and "gone" not in plain
    assert '"ExpiringSoon": 2' in render_json(all_rows())
    (line,) = [x for x in plain.splitlines() if f" {PENDING} " in x]
    assert line.split() == ["kv1", PENDING, "2025-03-04", "13:00", "3", "pending", "ops@example.com"]
    assert "renewal pending 1" in plain.splitlines()[0]
    assert [x for x in plain.splitlines()[1:] if " pending " in x] == [line]  # the others are not marked
    body = json.loads(render_json(all_rows()))
    assert body["renewals_pending"] == 1
    assert [c["CertName"] for c in body["certificates"] if c["RenewalPending"]] == [PENDING]


def test_page_marks_the_pending_renewal_with_the_good_versions_expiry():
    page = render_html(all_rows())
    rows = re.findall(r'<tr class="cert"[^>]*data-renewal-pending="true">(.*?)</tr>', page)
    assert len(rows) == 2  # in the views of all vaults and of kv1, not kv2's
    cells = re.findall(r"<td[^>]*>(.*?)</td>", rows[0])
    marker = '<span class="pending">renewal pending</span>'
    assert cells[1] == PENDING and cells[3:6] == ["2025-03-04 13:00", "3", marker]
    assert page.count("renewal pending</span>") == 2


def chromium_binary() -> str:
    from certlc.localstack import tools

    try:
        return str(tools.ensure_chromium())
    except (tools.ToolMissing, OSError) as error:
        message = f"*** CHROMIUM UNAVAILABLE: {error} -- python -m certlc.localstack.tools install chromium ***"
        fail_in_ci_else_skip(message)


def chromium(binary: str, profile: Path, *args: str) -> str:
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}",
    ]  # fmt: skip
    done = subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.chromium
def test_dashboard_in_headless_chromium(tmp_path):
    binary = chromium_binary()
    page = render(all_rows(), tmp_path / "dashboard.html")
    dom = chromium(binary, tmp_path / "profile-dom", "--dump-dom", page.as_uri())
    (visible,) = re.findall(r'<section class="view" data-vault="\*">(.*?)</section>', dom, re.S)
    shown = dict(re.findall(r'<span class="count" data-status="(\w+)">(\d+)</span>', visible))
    assert {k: int(v) for k, v in shown.items()} == EXPECTED
    assert len(re.findall(r'<tr class="cert"', visible)) == sum(EXPECTED.values())
    assert len(re.findall(r'<path data-status="', visible)) == 3
    assert re.findall(r'<span class="renewals-pending">(\d+)</span>', visible) == ["1"]
    (pending,) = re.findall(r'<tr class="cert"[^>]*data-renewal-pending="true">(.*?)</tr>', visible)
    assert f">{PENDING}<" in pending and ">2025-03-04 13:00<" in pending and "renewal pending" in pending
    out = ROOT / "test-output" / "ingestion"
    out.mkdir(parents=True, exist_ok=True)
    shot = out / "dashboard.png"
    shot.unlink(missing_ok=True)
    chromium(binary, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1400,900", page.as_uri())
    assert shot.stat().st_size > 10_000


def test_cli_dashboard_and_status_from_a_rows_file(tmp_path, capsys):
    import argparse
    import json

    from certlc.dashboard import cli

    rows_file = tmp_path / "rows.jsonl"
    rows_file.write_text("".join(json.dumps(r) + "\n" for r in all_rows()))
    parser = argparse.ArgumentParser()
    cli.add_dashboard_arguments(parser)
    out = tmp_path / "page.html"
    assert cli.run_dashboard(parser.parse_args(["--rows", str(rows_file), "--out", str(out)])) == 0
    assert capsys.readouterr().out.strip() == str(out.resolve())
    assert '<span class="count" data-status="Expired">3</span>' in out.read_text()
    assert cli.run_dashboard(parser.parse_args(["--state-dir", str(tmp_path / "none")])) == 1
    assert "run `certlc ingest` first" in capsys.readouterr().err

    parser = argparse.ArgumentParser()
    cli.add_status_arguments(parser)
    assert cli.run_status(parser.parse_args(["--rows", str(rows_file), "--json"])) == 0
    assert json.loads(capsys.readouterr().out)["counts"] == EXPECTED
