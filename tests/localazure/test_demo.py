"""`certlc demo` reports what the pipeline recorded, nothing it works out itself.

A broken sweep, a missing or altered audit line, a merge Key Vault does not show, a SERVED column the snapshot does
not say, a missing `serving` alert, a gateway reference not moved, or an old key not retired (the same key, the old
version still enabled or not tagged revoked, the CA not listing it, no compromise notice) each make it fail.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from certlc import demo
from certlc.demo.assessment import Evidence, assess
from certlc.demo.printing import LEGEND, print_summary
from certlc.demo.scenario import play
from certlc.demo.seeds import seeds_for
from tests.cli import run_certlc

pytestmark = pytest.mark.timeout(120)

RENEWED_BY_EVENT = ("web-expired", "shop-expiring")
SWEEP_ONLY = "intranet-yearly"  # inside its window (a third of a year), yet further than Key Vault's 30-day event
EXPOSED, REVOKED_AT_CA = "key-exposed", "revoked-at-ca"  # renewed with --compromise; revoked behind certlc's back
ASKS_ATTENTION = ("partner-retired", "shop-expiring", EXPOSED, REVOKED_AT_CA)
LEFT_BEHIND_SERVED = re.compile(r"1/2: cart\.example\.com:\d+@127\.0\.0\.1 serves the old version")


def assert_alerts_ask_for_attention(certificates: dict[str, Any]) -> None:
    """The alerts column counts what asks for attention, not the renewed notices every renewal sends: the refused
    one's failure, the left-behind endpoint's serving alert and the compromise notices (a warning at least), nothing
    for a renewal that went well."""
    alerts = {name: c["alerts"] for name, c in certificates.items()}
    assert all(alerts[name] >= 1 for name in ASKS_ATTENTION if name in alerts), alerts
    quiet = {name: n for name, n in alerts.items() if name not in ASKS_ATTENTION}
    assert set(quiet.values()) == {0}, alerts


def assert_old_keys_retired(certificates: dict[str, Any], notices: dict[str, list[str]]) -> dict[str, int]:
    """Each certificate renewed to retire its old key (``notices``: what its compromise notices said, in order) was
    renewed with a new key by the trigger the demo meant (revoked: by the sweep), its old version disabled in Key
    Vault and tagged revoked keyCompromise, and the CA says so. Certificate → the old serial, for reading the CA."""
    serials = {}
    for name, said in notices.items():
        shown, trigger = certificates[name], "compromise" if name == EXPOSED else "revoked"
        retirement = shown["retirement"]
        assert shown["ok"] and retirement["trigger"] == trigger and trigger in shown["via"], shown
        assert trigger != "revoked" or "sweep" in shown["via"], shown
        assert retirement["new_key"] and not retirement["old_enabled"], retirement
        assert retirement["old_revocation"].startswith("revoked keyCompromise "), retirement
        assert retirement["at_ca"] and f"serial {retirement['serial']}" in retirement["ca_said"], retirement
        assert shown["retired"].endswith(f"compromise notices received: {', '.join(said)}"), shown["retired"]
        serials[name] = int(retirement["serial"], 16)
    return serials


def crl_lists(folder: Path, serials: dict[str, int]) -> dict[str, str | None]:
    """What a local CA's own CRL file (checked with its certificate) says of each serial: its reason, or None."""
    crl = x509.load_der_x509_crl((folder / "crl.der").read_bytes())
    ca = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
    assert crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    listed = {name: crl.get_revoked_certificate_by_serial_number(serial) for name, serial in serials.items()}
    return {
        name: entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.value if entry else None
        for name, entry in listed.items()
    }


def assert_served_as_the_issue_asks(certificates: dict[str, Any]) -> None:
    """SERVED, read from the snapshot: the certificate certlc sync keeps in step on one of its two nginx names is
    left behind on the other, which alerts; the gateway pinned to the replaced version was moved and serves the new
    one; certificates nothing serves show no SERVED."""
    synced, pinned = certificates["shop-expiring"], certificates["web-expired"]
    assert LEFT_BEHIND_SERVED.fullmatch(synced["served"]), synced
    assert [a for a in synced["serving_alerts"] if a.startswith("cart.example.com:")], synced
    assert not [a for a in synced["serving_alerts"] if a.startswith("shop.example.com:")], synced
    assert pinned["served"] == "1/1" and len(pinned["moved"]) == 1 and pinned["moved"][0].startswith("appgw-web/"), (
        pinned
    )
    others = {name: c["served"] for name, c in certificates.items() if name not in ("shop-expiring", "web-expired")}
    assert set(others.values()) == {""}, others


@pytest.mark.parametrize("pending_version", ["placeholder", "previous"])
def test_demo_renews_what_it_should_and_exits_zero(tmp_path, azurite, pending_version):
    """In both of the Key Vault emulator's ways of showing a pending renewal (the evidence is split). The first is
    given a relative --dir, yet names its dashboard by its absolute path; the second runs from another folder with its
    state folder named by CERTLC_DEMO_DIR alone: nothing lands where it runs."""
    state, elsewhere = tmp_path / "demo", tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = {
        "placeholder": {"cwd": tmp_path, "args": ["--dir", "demo"], "env": {}},
        "previous": {"cwd": elsewhere, "args": [], "env": {"CERTLC_DEMO_DIR": str(state)}},
    }[pending_version]
    run = run_certlc(
        "demo", "--json", *where["args"], "--keyvault-pending-version", pending_version,
        timeout=110, cwd=where["cwd"], env=where["env"],
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "failed" not in run.stderr, run.stderr  # e.g. a history upload at exit, after the stack stopped
    assert list(elsewhere.iterdir()) == []
    summary = json.loads(run.stdout)
    dashboard = Path(summary["dashboard"])
    assert dashboard.is_absolute() and dashboard == state / "dashboard.html", summary["dashboard"]
    certificates = {c["name"]: c for c in summary["certificates"]}
    outcomes = {name: (c["status"], c["reason"], c["versions"]) for name, c in certificates.items()}
    assert outcomes == {
        "web-expired": ("renewed", "merged", 2),
        "shop-expiring": ("renewed", "merged", 2),
        "api-healthy": ("not examined", "", 1),
        "portal-selfsigned": ("not examined", "", 1),
        "partner-retired": ("failed", "ca_denied", 1),
        SWEEP_ONLY: ("renewed", "merged", 2),
        EXPOSED: ("renewed", "merged", 3),  # seeded, issued by the local CA (--force), renewed with a new key
        REVOKED_AT_CA: ("renewed", "merged", 3),
    }
    assert summary["left_out"] == {}
    serials = assert_old_keys_retired(certificates, {EXPOSED: ["revoked"], REVOKED_AT_CA: ["revoked"]})
    # the local CA's own CRL lists both old serials, reason keyCompromise
    assert crl_lists(state / "ca", serials) == dict.fromkeys(serials, "keyCompromise")
    assert certificates[SWEEP_ONLY]["via"] == ["sweep"]
    for name in RENEWED_BY_EVENT:
        assert certificates[name]["via"] and "sweep" not in certificates[name]["via"], certificates[name]
    assert certificates["api-healthy"]["via"] == certificates["portal-selfsigned"]["via"] == []
    # what happens next is the snapshot's outlook, shown for reading
    assert (certificates["api-healthy"]["renewed_by"], certificates["portal-selfsigned"]["renewed_by"]) == (
        "certlc",
        "keyvault",
    )
    assert certificates["api-healthy"]["next_renewal"].endswith("Z")
    assert_served_as_the_issue_asks(certificates)
    assert_alerts_ask_for_attention(certificates)
    page = dashboard.read_text()
    assert page.count("<svg") >= 1
    assert "which was moved forward 15 days" in page  # the demo moved the stack's clock; the page says so
    assert (state / "demo.log").stat().st_size > 0


def test_a_sweep_that_does_nothing_fails_the_demo_naming_what_nobody_examined(tmp_path, azurite, monkeypatch, capsys):
    """The sweep examines nothing; the target check after it still runs, as it does after every sweep."""
    from renewal import sweep
    from renewal.sweep import SweepReport

    monkeypatch.setattr(sweep, "sweep", lambda *_, **__: SweepReport())
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)

    args = parser.parse_args(["--dir", str(tmp_path / "demo")])
    args.output = "table"  # a global option, which certlc.cli.main fills in
    assert demo.run(args) == 1

    out, err = capsys.readouterr()
    row = next(line for line in out.splitlines() if line.startswith(SWEEP_ONLY))
    assert row.split()[1:3] == ["not", "examined"] and "WRONG" in row, out
    assert f"{SWEEP_ONLY}: expected renewed (merged), but it was not examined by the pipeline" in err
    # the certificate its CA revoked is replaced by the sweep alone: only its --force renewal was recorded
    assert f"{REVOKED_AT_CA}: expected a renewal by the sweep, with trigger revoked; examined by manual" in err
    assert err.startswith("demo FAILED:") and err.count(": expected") == 2, err  # the event-driven ones still pass
    # the table's SERVED column, and where they are served, as the target check after the sweep saw it
    lines = out.splitlines()
    column = next(line for line in lines if line.startswith("certificate ")).index("served")
    rows = {line.split()[0]: line for line in lines if line.startswith(("shop-expiring ", "web-expired "))}
    assert LEFT_BEHIND_SERVED.match(rows["shop-expiring"][column:]), out
    assert rows["web-expired"][column:].startswith("1/1 "), out
    assert re.search(r"^  shop-expiring: serving alert: cart\.example\.com:\d+@127\.0\.0\.1: not_served$", out, re.M)
    assert re.search(r"^  web-expired: moved appgw-web/www: \w+ -> \w+$", out, re.M), out
    assert re.search(r"^  check +ok when .+, else WRONG", out, re.M), out  # the legend under the table


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo")


@pytest.fixture(scope="module")
def evidence(run_dir: Path, azurite: Any) -> Evidence:
    """One real run of the demo's scenario: what its pipeline recorded and what Key Vault shows."""
    recorded, _ = play(run_dir, "placeholder", lambda _: None)
    return recorded


def test_the_table_explains_the_columns_its_headings_do_not(evidence, capsys):
    """A legend under the table: what check, alerts (attention only) and SERVED mean, among others."""
    outcomes = assess(evidence)
    print_summary(outcomes, 1.0, Path("dashboard.html"))

    lines = capsys.readouterr().out.splitlines()
    top = next(i for i, line in enumerate(lines) if line.startswith("certificate "))
    header, rows = lines[top], lines[top + 1 : top + 1 + len(outcomes)]
    legend = lines[top + 2 + len(outcomes) : top + 2 + len(outcomes) + len(LEGEND)]
    assert lines[top + 1 + len(outcomes)] == "" and all(line.startswith("  ") for line in legend), lines
    explained = {line.split("  ")[1].strip(): line for line in legend}
    assert {"check", "alerts", "served", "versions", "examined by"} <= explained.keys(), legend
    assert all(column in header for name in explained for column in name.split(", ")), (header, legend)
    assert "ok when" in explained["check"] and "WRONG" in explained["check"]
    assert "attention" in explained["alerts"] and "not the renewed notices" in explained["alerts"]
    column = header.index("alerts")  # right-aligned under its heading: a renewal that went well asks nothing
    intranet = next(row for row in rows if row.startswith(SWEEP_ONLY))
    assert intranet[column : column + len("alerts")].strip() == "0", (header, intranet)


def _verdicts(evidence: Evidence) -> dict[str, str]:
    return {o.name: o.detail for o in assess(evidence)}


def _audit_without(evidence: Evidence, name: str, event: str | None = None) -> Evidence:
    """The same evidence with ``name``'s audit lines (of one event, or all) removed."""
    kept = [r for r in evidence.audit if not (r["name"] == name and event in (None, r["event"]))]
    assert len(kept) < len(evidence.audit), f"the run recorded nothing to remove for {name}"
    return replace(evidence, audit=kept)


def test_every_outcome_of_a_real_run_is_read_from_its_records(evidence):
    assert _verdicts(evidence) == {seed.name: "" for seed in seeds_for("local")}


@pytest.mark.parametrize("name", [*RENEWED_BY_EVENT, SWEEP_ONLY])
def test_a_renewal_whose_merge_is_not_in_the_audit_trail_fails(evidence, name):
    wrong = _verdicts(_audit_without(evidence, name, "merged"))[name]
    assert wrong.startswith("expected renewed (merged), the pipeline recorded"), wrong


def test_a_certificate_with_no_record_at_all_is_not_examined(evidence):
    verdicts = _verdicts(_audit_without(evidence, "shop-expiring"))
    assert verdicts["shop-expiring"] == "expected renewed (merged), but it was not examined by the pipeline"
    assert [name for name, wrong in verdicts.items() if wrong] == ["shop-expiring"]


def test_a_failure_recorded_for_another_reason_fails(evidence):
    altered = [
        {**r, "reason": "ca_unavailable"} if r["name"] == "partner-retired" and r["event"] == "failed" else r
        for r in evidence.audit
    ]
    wrong = _verdicts(replace(evidence, audit=altered))["partner-retired"]
    said = next(r["detail"] for r in altered if r["name"] == "partner-retired" and r["event"] == "failed")
    assert said and wrong == f"expected failed (ca_denied), the pipeline recorded failed (ca_unavailable): {said}"


def test_a_merge_key_vault_does_not_serve_is_not_a_renewal(evidence):
    served = {**evidence.current, "shop-expiring": "0" * 32}  # not the version the audit trail says it merged
    outcome = next(o for o in assess(replace(evidence, current=served)) if o.name == "shop-expiring")
    assert (outcome.status, outcome.ok) == ("unconfirmed", False)


def test_the_sweep_report_alone_is_evidence_that_the_sweep_examined_a_certificate(evidence):
    """Without its audit lines, what the sweep reported for the retired-template certificate still shows."""
    outcome = next(o for o in assess(_audit_without(evidence, "partner-retired")) if o.name == "partner-retired")
    assert (outcome.status, outcome.reason, outcome.via, outcome.ok) == ("skipped", "failed_before", ["sweep"], False)


def test_a_served_column_the_snapshot_does_not_say_fails(evidence):
    rows = [{**r, "Served": "2/2"} if r.get("CertName") == "shop-expiring" else r for r in evidence.rows]
    wrong = _verdicts(replace(evidence, rows=rows))["shop-expiring"]
    assert wrong.startswith("expected SERVED '1/2: cart.example.com:") and wrong.endswith("the snapshot says '2/2'")


def test_an_endpoint_left_behind_without_its_serving_alert_fails(evidence):
    alerts = [a for a in evidence.alerts if not (a.get("kind") == "serving" and a.get("name") == "shop-expiring")]
    assert len(alerts) < len(evidence.alerts), "the run sent no serving alert to remove"
    wrong = _verdicts(replace(evidence, alerts=alerts))["shop-expiring"]
    assert wrong == "cart.example.com still serves the replaced version, yet no serving alert names it"


def test_a_gateway_reference_not_moved_fails(evidence):
    moved = _audit_without(evidence, "web-expired", "rollout_updated")
    assert _verdicts(moved)["web-expired"].startswith("no rollout_updated record")
    stale = evidence.references["web-expired"].rsplit("/", 1)[0] + "/" + "0" * 32
    wrong = _verdicts(replace(evidence, references={"web-expired": stale}))["web-expired"]
    assert wrong.startswith(f"the gateway names {stale}, not the version Key Vault serves")


def test_certlc_sync_kept_one_name_in_step_and_its_records_are_no_renewal(evidence):
    """The real certlc sync ran: it installed the renewed version on shop.example.com and verified it there, and the
    target check's and sync's records do not count as examining the certificate for renewal."""
    verified = [
        (r["server_name"], r["new_version"])
        for r in evidence.audit
        if r["name"] == "shop-expiring" and r.get("trigger") == "sync" and r["event"] == "verified"
    ]
    assert verified[-1] == ("shop.example.com", evidence.current["shop-expiring"]), verified
    assert {name for name, _ in verified} == {"shop.example.com", "cart.example.com"}  # both installed once
    outcomes = {o.name: o for o in assess(evidence)}
    assert "sync" not in outcomes["shop-expiring"].via and "sweep" not in outcomes["web-expired"].via


def test_the_old_keys_are_retired_as_key_vault_the_ca_and_the_audit_trail_show(evidence, run_dir):
    """key-exposed was renewed by the operator's `certlc renew --compromise`, revoked-at-ca by the sweep once the
    local CA's CRL listed it (certlc never asked the CA): both serve a new version with a new key, and the local
    CA's own CRL file lists both old serials for keyCompromise."""
    retired = evidence.retired
    assert {name: r.trigger for name, r in retired.items()} == {EXPOSED: "compromise", REVOKED_AT_CA: "revoked"}
    assert all(r.new_version == evidence.current[name] and r.new_key for name, r in retired.items()), retired
    serials = {name: int(r.serial, 16) for name, r in retired.items()}
    assert crl_lists(run_dir / "ca", serials) == dict.fromkeys(serials, "keyCompromise")
    events = {name: [(r["event"], r.get("trigger")) for r in evidence.audit if r["name"] == name] for name in retired}
    assert ("operator_action", "compromise") in events[EXPOSED] and ("revoked", "compromise") in events[EXPOSED]
    assert ("renewal_initiated", "revoked") in events[REVOKED_AT_CA]
    assert not [e for e, _ in events[REVOKED_AT_CA] if e == "revoked"]  # its CA had revoked it: not asked again
    assert f"kv1/{REVOKED_AT_CA}" in evidence.sweep.revoked


def _retired(evidence: Evidence, name: str, **changes: Any) -> Evidence:
    return replace(evidence, retired={**evidence.retired, name: replace(evidence.retired[name], **changes)})


@pytest.mark.parametrize("name", [EXPOSED, REVOKED_AT_CA])
@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"new_key": False}, "kept the old key"),
        ({"old_enabled": True}, "is still enabled in Key Vault"),
        ({"old_revocation": ""}, "certlc-revocation tag is 'missing', not revoked"),
        ({"at_ca": False, "ca_said": "its CRL does not list it"}, "the CA does not say the old certificate is revoked"),
    ],
)
def test_an_old_key_not_retired_fails(evidence, name, changes, says):
    wrong = _verdicts(_retired(evidence, name, **changes))
    assert says in wrong[name] and [n for n, w in wrong.items() if w] == [name], wrong


@pytest.mark.parametrize("name", [EXPOSED, REVOKED_AT_CA])
def test_a_retirement_without_its_notice_or_its_last_step_fails(evidence, name):
    alerts = [a for a in evidence.alerts if not (a.get("name") == name and a.get("kind") == "compromise")]
    assert len(alerts) < len(evidence.alerts), f"the run sent no compromise notice for {name}"
    assert _verdicts(replace(evidence, alerts=alerts))[name] == (
        "expected compromise notices saying revoked; received none"
    )
    unfinished = _verdicts(_audit_without(evidence, name, "compromise_finished"))[name]
    assert unfinished == "no compromise_finished record: the renewal's steps are not all done"
    gone = {n: r for n, r in evidence.retired.items() if n != name}
    wrong = _verdicts(replace(evidence, retired=gone))[name]
    assert wrong.startswith("no merged record of a renewal with trigger"), wrong


def test_a_revoked_certificate_renewed_for_another_reason_fails(evidence):
    """The same records with trigger sweep, as for a certificate merely due: not the replacement of a revoked one."""
    audit = [
        {**r, "trigger": "sweep"} if r["name"] == REVOKED_AT_CA and r.get("trigger") == "revoked" else r
        for r in evidence.audit
    ]
    wrong = _verdicts(replace(evidence, audit=audit))[REVOKED_AT_CA]
    assert wrong == "expected a renewal by the sweep, with trigger revoked; examined by manual, sweep", wrong
