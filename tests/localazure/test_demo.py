"""`certlc demo` reports what the pipeline recorded, nothing it works out itself.

A broken sweep, a missing or altered audit line, or a merge Key Vault does not show each make it fail.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from certlc import demo
from tests.cli import run_certlc

pytestmark = pytest.mark.timeout(120)

RENEWED_BY_EVENT = ("web-expired", "shop-expiring")
SWEEP_ONLY = "intranet-yearly"  # inside its window (a third of a year), yet further than Key Vault's 30-day event


@pytest.mark.parametrize("pending_version", ["placeholder", "previous"])
def test_demo_renews_what_it_should_and_exits_zero(tmp_path, azurite, pending_version):
    """In both of the Key Vault emulator's ways of showing a pending renewal (the evidence is split)."""
    run = run_certlc(
        "demo", "--json", "--dir", str(tmp_path / "demo"), "--keyvault-pending-version", pending_version, timeout=110
    )
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads(run.stdout)
    certificates = {c["name"]: c for c in summary["certificates"]}
    outcomes = {name: (c["status"], c["reason"], c["versions"]) for name, c in certificates.items()}
    assert outcomes == {
        "web-expired": ("renewed", "merged", 2),
        "shop-expiring": ("renewed", "merged", 2),
        "api-healthy": ("not examined", "", 1),
        "portal-selfsigned": ("not examined", "", 1),
        "partner-retired": ("failed", "ca_denied", 1),
        SWEEP_ONLY: ("renewed", "merged", 2),
    }
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
    assert Path(summary["dashboard"]).read_text().count("<svg") >= 1


def test_a_sweep_that_does_nothing_fails_the_demo_naming_what_nobody_examined(tmp_path, azurite, monkeypatch, capsys):
    from renewal import handlers

    monkeypatch.setattr(handlers, "on_sweep_timer", lambda **_: None)
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)

    args = parser.parse_args(["--dir", str(tmp_path / "demo")])
    args.output = "table"  # a global option, which certlc.cli.main fills in
    assert demo.run(args) == 1

    out, err = capsys.readouterr()
    row = next(line for line in out.splitlines() if line.startswith(SWEEP_ONLY))
    assert row.split()[1:3] == ["not", "examined"] and "WRONG" in row, out
    assert f"{SWEEP_ONLY}: expected renewed (merged), but it was not examined by the pipeline" in err
    assert err.startswith("demo FAILED:") and err.count(": expected") == 1, err  # the event-driven ones still pass


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory, azurite: Any) -> demo.Evidence:
    """One real run of the demo's scenario: what its pipeline recorded and what Key Vault shows."""
    recorded, _ = demo.play(tmp_path_factory.mktemp("demo"), "placeholder", lambda _: None)
    return recorded


def _verdicts(evidence: demo.Evidence) -> dict[str, str]:
    return {o.name: o.detail for o in demo.assess(evidence)}


def _audit_without(evidence: demo.Evidence, name: str, event: str | None = None) -> demo.Evidence:
    """The same evidence with ``name``'s audit lines (of one event, or all) removed."""
    kept = [r for r in evidence.audit if not (r["name"] == name and event in (None, r["event"]))]
    assert len(kept) < len(evidence.audit), f"the run recorded nothing to remove for {name}"
    return replace(evidence, audit=kept)


def test_every_outcome_of_a_real_run_is_read_from_its_records(evidence):
    assert _verdicts(evidence) == {seed.name: "" for seed in demo.seeds_for("local")}


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
    outcome = next(o for o in demo.assess(replace(evidence, current=served)) if o.name == "shop-expiring")
    assert (outcome.status, outcome.ok) == ("unconfirmed", False)


def test_the_sweep_report_alone_is_evidence_that_the_sweep_examined_a_certificate(evidence):
    """Without its audit lines, what the sweep reported for the retired-template certificate still shows."""
    outcome = next(o for o in demo.assess(_audit_without(evidence, "partner-retired")) if o.name == "partner-retired")
    assert (outcome.status, outcome.reason, outcome.via, outcome.ok) == ("skipped", "failed_before", ["sweep"], False)
