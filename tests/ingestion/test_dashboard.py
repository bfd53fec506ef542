"""The local dashboard: the workbook's view from real rows, checked in real headless Chromium."""

import argparse
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certlc.dashboard import render
from certlc.dashboard.html import HISTORY_LIMIT, render_html
from certlc.dashboard.source import default_rows_file
from certlc.dashboard.terminal import render_json, render_table
from certlc.dashboard.view import build_view, coverage, next_renewal, readable_time, renewed_by
from ingestion.history import STREAM_DEFAULT as HISTORY_STREAM
from ingestion.rows import CertificateDetails, ListedCertificate, build_row
from tests.fixtures.browser import Browser
from tests.fixtures.servers import fail_in_ci_else_skip

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
NEW_COLUMNS = ("RenewedBy", "RenewalPlan", "NextRenewal", "RenewalNote", "Canary")
# (vault, name, days to expiry, who renews it, last outcome) -> 3 expired, 2 expiring soon, 5 healthy in the latest
# snapshot; failed in an expired and a healthy group; nobody renews one expired, one expiring and one healthy;
# old-mail's row is from before the outlook's columns existed.
CERTS = [
    ("kv1", "old-api", -40, "certlc", "failed: denied by the CA"), ("kv1", "old-web", -1, "nobody", ""),
    ("kv2", "old-mail", -300, None, ""),
    ("kv1", "soon-web", 3, "certlc", ""), ("kv2", "soon-vpn", 29, "nobody", ""),
    ("kv1", "web", 200, "keyvault", ""), ("kv1", "api", 90, "certlc", "renewed"), ("kv2", "mail", 365, "opted_out", ""),
    ("kv2", "<script>alert(1)</script>", 31, "certlc", "failed: CA unreachable"), ("kv2", "lonely", 120, "nobody", ""),
]  # fmt: skip
EXPECTED = {"Expired": 3, "ExpiringSoon": 2, "NotExpired": 5}
TILES = {"total": 10, "failed": 2, "uncovered": 3, "renewals-pending": 1}
KV2_TILES = {"total": 5, "failed": 1, "uncovered": 2, "renewals-pending": 0}
PENDING = "soon-web"  # a renewal in flight: its row is the last good version's, marked pending
CANARY = "api"


def plan_of(who, outcome, expires):
    """The outlook's columns as ingestion writes them: (RenewalPlan, NextRenewal, RenewalNote)."""
    if who != "certlc":
        return {"keyvault": "keyvault_auto_renew", "nobody": "uncovered"}.get(who, who), None, who
    if outcome.startswith("failed"):
        return "failed", None, f"the last renewal failed ({outcome})"
    when = expires - timedelta(days=30)
    return ("due" if when <= NOW else "scheduled"), when.isoformat().replace("+00:00", "Z"), "certlc renews it"


def make_rows(now=NOW, certs=CERTS):
    rows = []
    for i, (vault, name, days, who, outcome) in enumerate(certs):
        expires = now + timedelta(days=days, hours=1)
        listed = ListedCertificate(
            vault, name, f"{i:040X}", now - timedelta(days=400), expires, True,
            {"Recipient": "ops@example.com"}, renewal_pending=name == PENDING,
        )  # fmt: skip
        details = CertificateDetails(
            f"v{i}", f"CN={name}.example.com", "CN=Contoso Issuing CA,O=Contoso", "", "Unknown"
        )
        row = build_row(listed, details, now, 30)
        for column in NEW_COLUMNS:
            row.pop(column, None)
        row["LastRenewalOutcome"] = outcome
        if who is not None:
            reason, when, note = plan_of(who, outcome, expires)
            row.update(RenewedBy=who, RenewalPlan=reason, NextRenewal=when, RenewalNote=note)
            row["Canary"] = name == CANARY
        rows.append(row)
    return rows


def all_rows():
    """An older snapshot with different states must not be counted."""
    return make_rows(NOW - timedelta(hours=1), [("kv1", "gone", -5, "nobody", "failed")] * 4) + make_rows()


def event(minutes_ago, vault, name, kind, trigger="event", reason="", detail=""):
    """One renewal history row (stream Custom-CertlcRenewals_CL) as ingestion writes it."""
    return {
        "TimeGenerated": (NOW - timedelta(minutes=minutes_ago)).isoformat().replace("+00:00", "Z"),
        "KeyVault": vault, "CertName": name, "Event": kind, "Trigger": trigger, "CorrelationId": f"c-{name}",
        "Attempt": 1, "OldVersion": "v-old", "NewVersion": "", "Reason": reason, "Detail": detail, "Ca": "cfssl",
        "Profile": "",
    }  # fmt: skip


HISTORY = [  # in no particular order: the page sorts newest first
    event(50, "kv1", "old-api", "submitted"),
    event(90, "kv1", "old-api", "renewal_initiated", reason="due"),
    event(30, "kv1", "old-api", "denied", reason="ca_denied", detail="request rejected by policy"),
    event(20, "kv1", PENDING, "pending", trigger="sweep", reason="ca_pending"),
    event(10, "kv2", "<script>alert(1)</script>", "failed", detail="<b>connection refused</b>"),
    event(5, "kv2", "mail", "skipped", trigger="manual", reason="opted_out"),
]


def test_view_counts_only_the_latest_snapshot_and_filters_by_vault():
    view = build_view(all_rows())
    assert view.snapshot_time == "2025-03-01T12:00:00Z"
    assert view.counts == EXPECTED
    assert [r["CertName"] for r in view.groups["Expired"]] == ["old-mail", "old-api", "old-web"]
    assert (view.total, view.failed, view.uncovered, view.renewals_pending) == tuple(TILES.values())
    kv2 = build_view(all_rows(), "kv2")
    assert kv2.counts == {"Expired": 1, "ExpiringSoon": 1, "NotExpired": 3}
    assert (kv2.total, kv2.failed, kv2.uncovered, kv2.renewals_pending) == tuple(KV2_TILES.values())


def test_what_will_happen_per_row_and_rows_from_before_the_columns():
    rows = {r["CertName"]: r for r in make_rows()}
    snapshot = "2025-03-01T12:00:00Z"
    assert next_renewal(rows[PENDING], snapshot) == "due now"  # its date passed at the snapshot: the sweep acts
    assert next_renewal(rows[CANARY], snapshot) == "2025-04-30"
    assert next_renewal(rows["web"], snapshot) == ""  # Key Vault renews it, certlc has no date
    assert next_renewal(rows["old-mail"], snapshot) == renewed_by(rows["old-mail"]) == "unknown"
    assert [renewed_by(rows[n]) for n in ("web", "mail", "lonely", "api")] == [
        "Key Vault",
        "opted out",
        "nobody",
        "certlc",
    ]
    assert {n: coverage(r) for n, r in rows.items() if coverage(r)} == {
        "old-web": "uncovered_urgent", "soon-vpn": "uncovered_urgent", "lonely": "uncovered",
    }  # fmt: skip
    assert readable_time("2026-12-03T14:05:59.5Z") == "2026-12-03 14:05 UTC"
    assert readable_time("2026-12-03T16:05:00+02:00") == "2026-12-03 14:05 UTC"
    assert readable_time("not a date") == "not a date" and readable_time(None) == ""


def test_page_is_self_contained_and_escaped():
    page = render_html(all_rows(), HISTORY)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>" not in page and "&lt;b&gt;connection refused&lt;/b&gt;" in page
    assert not re.search(r"""(src|href)\s*=|@import|url\(|https?://""", page)
    assert page.count('<section class="view"') == 3  # all vaults, kv1, kv2


def cert_rows(section):
    """(attributes, cells) of each certificate row of one section."""
    rows = re.findall(r'<tr class="(cert[^"]*)"([^>]*)>(.*?)</tr>', section)
    return [(cls, attrs, re.findall(r"<td[^>]*>(.*?)</td>", cells)) for cls, attrs, cells in rows]


def sections(page):
    return dict(re.findall(r'<section class="view" data-vault="([^"]+)"[^>]*>(.*?)</section>', page))


def test_page_failed_red_nobody_marked_tiles_and_readable_times():
    page = render_html(all_rows(), HISTORY)
    everything = sections(page)["*"]
    tiles = dict(re.findall(r'data-tile="([\w-]+)"><span class="value">(\d+)</span>', everything))
    assert {k: int(v) for k, v in tiles.items()} == TILES
    assert re.findall(r'<div class="tile alert" data-tile="([\w-]+)"', everything) == ["failed", "uncovered"]
    rows = cert_rows(everything)
    failed = [(attrs, cells[1]) for cls, attrs, cells in rows if "failed" in cls.split()]
    assert [name for _, name in failed] == ["old-api", "&lt;script&gt;alert(1)&lt;/script&gt;"]
    assert [re.search(r'data-status="(\w+)"', a)[1] for a, _ in failed] == ["Expired", "NotExpired"]
    assert all('data-failed="true"' in a for a, _ in failed) and everything.count('data-failed="true"') == 2
    nobody = {cells[1]: cells[3] for cls, _, cells in rows if "nobody will renew this" in cells[3]}
    assert sorted(nobody) == ["lonely", "old-web", "soon-vpn"]
    assert "urgent" in nobody["old-web"] and "urgent" in nobody["soon-vpn"] and "urgent" not in nobody["lonely"]
    (legacy,) = [cells for _, _, cells in rows if cells[1] == "old-mail"]
    assert ">unknown<" in legacy[3] and ">unknown<" in legacy[4] and legacy[7] == "2024-05-05 13:00 UTC"
    (canary,) = [cells for _, _, cells in rows if cells[1].startswith(f"{CANARY} ")]
    assert 'class="badge canary"' in canary[1] and canary[4] == "2025-04-30" and canary[5] == "renewed"
    assert '<time class="snapshot" datetime="2025-03-01T12:00:00Z">2025-03-01 12:00 UTC</time>' in page


def test_history_one_renewal_per_correlation_id_newest_first_with_its_steps_folded_under_it():
    page = sections(render_html(all_rows(), HISTORY))
    renewals = re.findall(r'<details class="renewal[^"]*" data-vault="(\w+)" data-outcome="(\w+)"', page["*"])
    assert renewals == [("kv2", "skipped"), ("kv2", "failed"), ("kv1", "in_progress"), ("kv1", "failed")]
    (old_api,) = re.findall(r'<details class="renewal failed" data-vault="kv1"(.*?)</details>', page["kv1"])
    summary = re.findall(r"<span>(.*?)</span>", old_api.split("</summary>")[0])
    assert summary == ["2025-03-01 10:30 UTC", "kv1/old-api", "event", "failed", "ca_denied", "1 h", "3"]  # no CA id
    times = re.findall(r'<tr class="event[^"]*"[^>]*><td class="time">([^<]+)</td>', page["*"])
    assert times == [
        "2025-03-01 11:55 UTC",
        "2025-03-01 11:50 UTC",
        "2025-03-01 11:40 UTC",
        "2025-03-01 10:30 UTC",
        "2025-03-01 11:10 UTC",
        "2025-03-01 11:30 UTC",
    ]  # fmt: skip  (renewals newest first, steps in order)
    assert set(re.findall(r'<tr class="event[^"]*" data-vault="(\w+)"', page["kv1"])) == {"kv1"}
    assert len(re.findall(r'<tr class="event', page["kv1"])) == 4
    red = re.findall(r'<tr class="event failed"[^>]*data-event="(\w+)"', page["*"])
    assert red == ["failed", "denied"]
    (denied,) = re.findall(r'data-event="denied"[^>]*>(.*?)</tr>', page["kv1"])
    assert '<td class="long">ca_denied - request rejected by policy</td>' in denied

    only_kv1 = sections(render_html(all_rows(), [e for e in HISTORY if e["KeyVault"] == "kv1"]))
    assert "No renewals recorded for this vault yet." in only_kv1["kv2"] and "<details" not in only_kv1["kv2"]
    nothing = sections(render_html(all_rows()))
    assert all("No renewal history yet." in section for section in nothing.values())

    many = [event(i, "kv1", "web", "merged") | {"CorrelationId": f"c{i}"} for i in range(HISTORY_LIMIT + 5)]
    page = sections(render_html(all_rows(), many))["kv1"]
    assert page.count('<details class="renewal"') == HISTORY_LIMIT
    assert f"newest {HISTORY_LIMIT} of {HISTORY_LIMIT + 5} renewals" in page


def metric_values(section):
    return dict(re.findall(r'data-metric="([\w-]+)"><span class="value">([^<]*)</span>', section))


def test_page_shows_the_renewal_metrics_of_each_vaults_history():
    forced = [
        event(30, "kv1", "api", "operator_action") | {"Action": "renew_force", "OperatorUser": "ops",
                                                      "CorrelationId": "f"},
        event(28, "kv1", "api", "merged") | {"CorrelationId": "f", "OldExpiresOn": "2025-03-21T11:32:00Z"},
    ]  # fmt: skip
    page = sections(render_html(all_rows(), HISTORY + forced))
    assert metric_values(page["*"]) == {
        "success-rate": "33.3 %", "renewed": "1", "failed": "2", "lead-avg": "20 days", "lead-min": "20 days",
        "to-merged-avg": "2 min", "to-merged-max": "2 min", "to-served-avg": "-", "to-served-max": "-",
        "interventions": "1",
    }  # fmt: skip
    assert "Failures by cause: ca_denied 1, failed 1. Manual interventions: renew_force 1." in page["*"]
    assert metric_values(page["kv2"])["success-rate"] == "0 %" and metric_values(page["kv2"])["interventions"] == "0"
    assert 'class="metric alert" data-metric="failed"' in page["kv2"]
    (step,) = re.findall(r'data-event="operator_action">(.*?)</tr>', page["kv1"])
    assert "renew_force (by ops on ?)" in step
    old = [event(60 * 24 * 31, "kv1", "api", "merged") | {"CorrelationId": "old"}]  # before the 30 days
    assert metric_values(sections(render_html(all_rows(), old))["kv1"])["renewed"] == "0"


def test_status_table_and_json():
    table = render_table(all_rows(), colour=True)
    assert (
        "\033[31mExpired (3)" in table and "\033[33mExpiring soon (2)" in table and "\033[32mNot expired (5)" in table
    )
    plain = render_table(all_rows(), colour=False)
    assert "\033[" not in plain and "soon-web" in plain and "gone" not in plain
    assert '"ExpiringSoon": 2' in render_json(all_rows())
    (line,) = [x for x in plain.splitlines() if f" {PENDING} " in x]
    cells = line.split()  # the columns around them belong to the status command
    assert cells[:2] == ["kv1", PENDING] and "2025-03-04 13:00" in line
    assert {"3", "pending", "ops@example.com"} <= set(cells)
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
    marker = '<span class="badge pending">renewal pending</span>'
    assert cells[1] == PENDING and cells[6:] == [marker, "2025-03-04 13:00 UTC", "3"]  # no target: no SERVED column
    assert cells[4] == '<span class="due">due now</span>'
    assert page.count("renewal pending</span>") == 2


@pytest.fixture
def chromium_binary() -> str:
    from localazure import tools

    try:
        return str(tools.ensure_chromium())
    except (tools.ToolMissing, OSError) as error:
        message = f"*** CHROMIUM UNAVAILABLE: {error} -- python -m localazure.tools install chromium ***"
        fail_in_ci_else_skip(message)


# What a person sees: shown elements (a hidden section has no boxes), the tiles' numbers, and the computed colours.
SEEN = """(() => {
  const shown = el => el.getClientRects().length > 0 && el.checkVisibility();  // a closed details' rows too
  const seen = sel => [...document.querySelectorAll(sel)].filter(shown);
  const rgb = c => c.match(/\\d+/g).slice(0, 3).map(Number);
  const tiles = {};
  seen('.tile').forEach(t => { tiles[t.dataset.tile] = Number(t.querySelector('.value').textContent); });
  const certs = seen('tr.cert');
  const table = seen('table.certs')[0], pie = seen('.pie')[0], tileBox = seen('.tiles')[0];
  return {
    vault: document.getElementById('vault').value,
    certs: certs.map(r => [r.dataset.vault, r.cells[1].textContent]),
    hidden: [...document.querySelectorAll('tr.cert, tr.event')].filter(r => !shown(r)).map(r => r.dataset.vault),
    events: seen('tr.event').map(r => [r.dataset.vault, r.dataset.event]),
    renewals: seen('details.renewal').map(d => [d.dataset.vault, d.dataset.outcome]),
    counts: Object.fromEntries(seen('.count').map(c => [c.dataset.status, Number(c.textContent)])),
    tiles,
    red: certs.filter(r => r.dataset.failed === 'true').map(r => rgb(getComputedStyle(r.cells[1]).color)),
    plain: certs.filter(r => r.dataset.failed === 'false').map(r => rgb(getComputedStyle(r.cells[1]).color)),
    nobody: seen('.badge.nobody').map(b => [b.closest('tr').cells[1].textContent, b.textContent,
                                          rgb(getComputedStyle(b).backgroundColor)]),
    widths: [table.getBoundingClientRect().width, document.documentElement.clientWidth],
    pieBesideTiles: pie.getBoundingClientRect().top < tileBox.getBoundingClientRect().bottom,
  };
})()"""


def reddish(colour):
    r, g, b = colour
    return r > 150 and r > 2 * g and r > 2 * b


def test_dashboard_in_headless_chromium_filters_by_vault(chromium_binary, tmp_path):
    page = render(all_rows(), tmp_path / "dashboard.html", HISTORY)
    with Browser(chromium_binary, tmp_path / "chromium", width=1400, height=1100) as browser:
        browser.open(page.as_uri())
        seen = browser.evaluate(SEEN)
        assert seen["vault"] == "*" and len(seen["certs"]) == len(CERTS) and seen["hidden"].count("kv1") > 0
        assert seen["counts"] == EXPECTED and seen["tiles"] == TILES
        assert seen["renewals"] == [["kv2", "skipped"], ["kv2", "failed"], ["kv1", "in_progress"], ["kv1", "failed"]]
        assert seen["events"] == []  # each renewal's steps are folded under it
        browser.evaluate("document.querySelector('details.renewal[data-vault=kv1].failed > summary').focus()")
        browser.press(" ", 32)  # the keyboard on the renewal's summary unfolds its steps
        seen = browser.wait_for(f"(s => s.events.length > 0 && s)({SEEN})")
        assert seen["events"] == [["kv1", "renewal_initiated"], ["kv1", "submitted"], ["kv1", "denied"]]
        assert len(seen["red"]) == 2 and all(map(reddish, seen["red"])) and not any(map(reddish, seen["plain"]))
        table, page_width = seen["widths"]
        assert (
            table >= page_width - 60 and seen["pieBesideTiles"]
        )  # the table uses the width, the pie sits by the tiles

        browser.evaluate("document.getElementById('vault').focus()")
        browser.press("ArrowDown", 40)  # the keyboard on the select, as a person picks: All vaults -> kv1 -> kv2
        browser.press("ArrowDown", 40)
        seen = browser.wait_for(f"(s => s.vault === 'kv2' && s)({SEEN})")
        kv2 = [name for vault, name, *_ in CERTS if vault == "kv2"]
        assert sorted(name for _, name in seen["certs"]) == sorted(kv2) and {v for v, _ in seen["certs"]} == {"kv2"}
        assert set(seen["hidden"]) == {"kv1", "kv2"}  # kv1's rows everywhere, kv2's in the other sections
        assert seen["renewals"] == [["kv2", "skipped"], ["kv2", "failed"]] and seen["events"] == []
        assert seen["counts"] == {"Expired": 1, "ExpiringSoon": 1, "NotExpired": 3} and seen["tiles"] == KV2_TILES
        assert len(seen["red"]) == 1 and reddish(seen["red"][0])
        nobody = {name: (text, colour) for name, text, colour in seen["nobody"]}
        assert sorted(nobody) == ["lonely", "soon-vpn"] and all(
            "nobody will renew this" in t for t, _ in nobody.values()
        )
        assert reddish(nobody["soon-vpn"][1]) and not reddish(nobody["lonely"][1])  # louder once close to expiry

        out = ROOT / "test-output" / "ingestion"
        out.mkdir(parents=True, exist_ok=True)
        shot = out / "dashboard.png"
        shot.unlink(missing_ok=True)
        assert browser.screenshot(shot).stat().st_size > 10_000


def jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def dashboard(*argv):
    """``certlc dashboard --no-ingest ARGV`` in this process: the stored rows as they are (no settings, no stack)."""
    from certlc.dashboard import cli

    parser = argparse.ArgumentParser()
    cli.add_dashboard_arguments(parser)
    return cli.run_dashboard(parser.parse_args(["--no-ingest", *(str(a) for a in argv)]))


def test_cli_dashboard_from_the_local_stacks_files(tmp_path, capsys):
    state = tmp_path / "stack"
    jsonl(default_rows_file(state), all_rows())
    assert dashboard("--state-dir", state) == 0
    page = (state / "dashboard.html").read_text()
    said = (
        "snapshot taken 2025-03-01 12:00 UTC, "  # then its age on this computer's clock, since the stack's never moved
    )
    said, path = capsys.readouterr().out.splitlines()
    assert said.startswith("Snapshot taken 2025-03-01 12:00 UTC, ") and path == str(
        (state / "dashboard.html").resolve()
    )
    assert '<span class="count" data-status="Expired">3</span>' in page and "No renewal history yet." in page

    jsonl(default_rows_file(state, HISTORY_STREAM), HISTORY)
    out = tmp_path / "page.html"
    assert dashboard("--state-dir", state, "--out", out) == 0
    assert out.read_text().count('<tr class="event') == 2 * len(HISTORY)  # all vaults, then each vault's own

    rows_file, history_file = jsonl(tmp_path / "rows.jsonl", all_rows()), jsonl(tmp_path / "h.jsonl", HISTORY[:1])
    assert dashboard("--rows", rows_file, "--history", history_file, "--out", out) == 0
    assert out.read_text().count('<tr class="event') == 2
    history_file.write_text("{not json\n")
    assert dashboard("--rows", rows_file, "--history", history_file, "--out", out) == 1
    assert f"{history_file} is not JSON lines of rows" in capsys.readouterr().err
    assert dashboard("--state-dir", tmp_path / "none") == 1
    assert "run `certlc ingest` first" in capsys.readouterr().err


def test_cli_dashboard_from_a_running_logs_emulator(tmp_path, capsys):
    from localazure.emulators.logs import start

    emulator = start(tmp_path / "emulator")
    try:
        jsonl(emulator.rows_path, all_rows())
        out = tmp_path / "page.html"
        assert dashboard("--logs-url", emulator.endpoint, "--ca-bundle", emulator.ca_bundle, "--out", out) == 0
        assert "No renewal history yet." in out.read_text()  # nothing sent to the history stream yet
        jsonl(emulator.rows_path.with_name(f"{HISTORY_STREAM}.jsonl"), HISTORY)
        assert dashboard("--logs-url", emulator.endpoint, "--ca-bundle", emulator.ca_bundle, "--out", out) == 0
        page = out.read_text()
        assert page.count('<tr class="cert') == 2 * len(CERTS) and page.count('<tr class="event') == 2 * len(HISTORY)
    finally:
        emulator.stop()
    capsys.readouterr()
    assert dashboard("--logs-url", emulator.endpoint, "--ca-bundle", emulator.ca_bundle, "--out", out) == 1
    assert f"cannot read Custom-CertlcStatus_CL rows from {emulator.endpoint}" in capsys.readouterr().err


def test_cli_status_from_a_rows_file(tmp_path, capsys):
    from certlc.cli import main

    rows_file = jsonl(tmp_path / "rows.jsonl", all_rows())
    assert main(["status", "--rows", str(rows_file), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"] == EXPECTED


# What fits at 800 px: the page's own width against the window's, what a person can read (innerText: not a title),
# and the history's and the certificate table's column headers.
NARROW = """(() => {
  const root = document.documentElement;
  const shown = [...document.querySelectorAll('section.view')].find(s => !s.hidden);
  return {
    scroll: [root.scrollWidth, root.clientWidth],
    text: document.body.innerText,
    renewalHeads: [...shown.querySelectorAll('.renewals-head span')].map(s => s.textContent).filter(Boolean),
    certHeads: [...shown.querySelectorAll('table.certs th')].map(th => th.textContent),
    stepHeads: [...shown.querySelectorAll('table.history th')].map(th => th.textContent),
  };
})()"""
LONG_DETAIL = "the CA answered HTTP 503 from https://ca.internal.example.com/api/v1/cfssl/sign?profile=" + "x" * 80


def test_history_at_800_px_fits_shows_each_failed_renewals_fix_and_leaves_out_empty_columns(chromium_binary, tmp_path):
    from renewal.reporting import ACTIONS, DEFAULT_ACTION

    long_name = "a-certificate-with-a-rather-long-name-for-a-narrow-window-" + "z" * 40
    history = [
        *HISTORY,
        event(3, "kv1", long_name, "failed", reason="ca_error", detail=LONG_DETAIL),
    ]
    rows = all_rows()
    rows[-1]["CertName"] = long_name
    page = render(rows, tmp_path / "dashboard.html", history)
    with Browser(chromium_binary, tmp_path / "chromium", width=800, height=900) as browser:
        browser.open(page.as_uri())
        seen = browser.evaluate(NARROW)
        scroll, client = seen["scroll"]
        assert scroll <= client, seen["scroll"]
        # each failed renewal's fix is on the page, not only in a tooltip; so is a failed certificate's note
        for fix in (ACTIONS["ca_denied"], ACTIONS["ca_error"], DEFAULT_ACTION):
            assert fix in seen["text"], fix
        assert "the last renewal failed (failed: denied by the CA)" in seen["text"]
        # no renewal recorded a CA request id, no certificate has targets: those columns are not rendered
        assert "CA request" not in seen["renewalHeads"] and {"Started", "Outcome", "Reason"} <= set(
            seen["renewalHeads"]
        )
        assert "Served" not in seen["certHeads"] and {"Name", "Last outcome"} <= set(seen["certHeads"])
        browser.evaluate("document.querySelectorAll('details.renewal').forEach(d => { d.open = true; })")
        seen = browser.wait_for(f"(s => s.stepHeads.length > 0 && s)({NARROW})")
        assert seen["scroll"][0] <= seen["scroll"][1], seen["scroll"]  # the steps unfolded fit as well
        assert LONG_DETAIL in seen["text"].replace("\n", "")


def test_the_snapshots_age_on_the_clock_it_was_taken_on():
    from certlc.dashboard.view import PageClock, freshness, stack_clock

    wall = NOW + timedelta(hours=3, minutes=5)
    assert freshness("2025-03-01T12:00:00Z", PageClock(wall)).said() == (
        "snapshot taken 2025-03-01 12:00 UTC, 3 h 5 min ago"
    )
    moved = stack_clock(30 * 86400, wall - timedelta(days=30))  # the stack's clock, 30 days ahead of this computer's
    known = freshness("2025-03-01T12:00:00Z", moved)
    assert known.age_seconds == 3 * 3600 + 5 * 60
    assert known.said() == (
        "snapshot taken 2025-03-01 12:00 UTC, 3 h 5 min ago, by the local stack's clock, which was moved forward "
        "30 days"
    )
    # taken on a moved clock, read on this computer's (certlc demo's page): said so, no made-up age
    ahead = freshness("2025-03-01T12:00:00Z", PageClock(NOW - timedelta(days=31)))
    assert ahead.age_seconds is None
    assert ahead.said() == (
        "snapshot taken 2025-03-01 12:00 UTC, 31 days ahead of this computer's clock: the clock it was taken on had "
        "been moved forward"
    )
    assert freshness("", PageClock(NOW)).said() == "no snapshot yet"
    page = render_html(all_rows(), HISTORY, moved)
    assert 'data-age-seconds="11100"' in page and f'data-clock-ahead-seconds="{30 * 86400}"' in page
