"""`certlc demo --ca acme|cfssl|adcs`: the same certificates through pebble, cfssl serve and the local /certsrv
(with slapd for template OIDs), each outcome read from what the run recorded, and served the same way whatever the
CA (the SERVED column, the left-behind endpoint's alert, the gateway moved). key-exposed is renewed with
--compromise through each CA and its old certificate revoked there; revoked-at-ca, revoked by its CA behind certlc's
back, is given only to AD CS here (and the local CA, test_demo.py): pebble and cfssl publish nothing certlc can read.

A CA whose tool cannot be installed here skips the test loudly, or fails it in CI.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from certlc.demo.assessment import Evidence, assess
from certlc.demo.ca_servers import waiting_requests
from certlc.demo.scenario import play
from certlc.demo.seeds import V2_TEMPLATE_OID, seeds_for
from localazure import tools
from tests.cli import run_certlc
from tests.fixtures.servers import serve_or_skip
from tests.localazure.test_demo import (
    EXPOSED,
    REVOKED_AT_CA,
    assert_alerts_ask_for_attention,
    assert_old_keys_retired,
    assert_served_as_the_issue_asks,
    crl_lists,
)

pytestmark = pytest.mark.timeout(120)

SAME_FOR_EVERY_CA = {
    "web-expired": ("renewed", "merged", 2),
    "shop-expiring": ("renewed", "merged", 2),
    "api-healthy": ("not examined", "", 1),
    "portal-selfsigned": ("not examined", "", 1),
    "partner-retired": ("failed", "ca_denied", 1),
    "intranet-yearly": ("renewed", "merged", 2),
    EXPOSED: ("renewed", "merged", 3),  # seeded, issued by the CA (--force), renewed with --compromise
}
ADCS_EXTRAS = {
    "legacy-v2-template": ("renewed", "merged", 2),
    "vpn-approval": ("renewed", "merged", 2),
    REVOKED_AT_CA: ("renewed", "merged", 3),  # the CA's CRL lists it: the sweep renews it
}
TOOLS = {"acme": tools.PEBBLE, "cfssl": tools.CFSSL, "adcs": tools.SLAPD}
ISSUED_LINE = {  # what the CA server logs for each certificate it issues
    "acme": ("pebble.log", "Issued certificate serial"),
    "cfssl": ("cfssl.log", "signed certificate with serial number"),
}


def _needs(ca: str) -> None:
    """The CA's tool installed (or the test skipped loudly, failed in CI)."""
    tool = TOOLS[ca]
    serve_or_skip(tool.name, tool.ensure, lambda: None)


def _demo(ca: str, directory: Path) -> dict[str, Any]:
    run = run_certlc("demo", "--ca", ca, "-o", "json", "--dir", str(directory), timeout=110)
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(run.stdout)


@pytest.mark.parametrize("ca", ["acme", "cfssl"])
def test_the_same_certificates_end_the_same_way_through_another_ca(tmp_path, azurite, ca):
    _needs(ca)
    summary = _demo(ca, tmp_path / "demo")

    assert (summary["ok"], summary["ca"], summary["approved"]) == (True, ca, [])
    certificates = {c["name"]: c for c in summary["certificates"]}
    assert {name: (c["status"], c["reason"], c["versions"]) for name, c in certificates.items()} == SAME_FOR_EVERY_CA
    assert certificates["intranet-yearly"]["via"] == ["sweep"]
    assert_served_as_the_issue_asks(certificates)
    assert_alerts_ask_for_attention(certificates)
    # the CA publishes nothing certlc can read of a revocation made behind its back: that certificate is left out
    assert REVOKED_AT_CA not in certificates and REVOKED_AT_CA in summary["left_out"], summary["left_out"]
    assert "behind its back" in summary["left_out"][REVOKED_AT_CA]
    serial = assert_old_keys_retired(certificates, {EXPOSED: ["revoked"]})[EXPOSED]
    server = tmp_path / "demo" / "ca-server"
    log, issued = ISSUED_LINE[ca]  # the CA's own server issued the three renewals, key-exposed's two, nothing else
    assert (server / log).read_text().count(issued) == 5
    if ca == "cfssl":  # cfssl's own certificate database: the old serial revoked, reason 1 (keyCompromise)
        with sqlite3.connect(server / "certdb.sqlite") as db:
            rows = db.execute("SELECT status, reason FROM certificates WHERE serial_number = ?", (str(serial),))
            assert rows.fetchall() == [("revoked", 1)]
    else:  # pebble's own log: one revokeCert (its management interface answered Revoked, reason 1)
        assert (server / log).read_text().count("POST /revoke-cert") == 1
        assert certificates[EXPOSED]["retirement"]["ca_said"].endswith("Revoked (reason 1)")


def test_adcs_renews_by_template_oid_waits_for_approval_and_shows_the_cas_words(tmp_path, azurite):
    _needs("adcs")
    summary = _demo("adcs", tmp_path / "demo")

    certificates = {c["name"]: c for c in summary["certificates"]}
    outcomes = {name: (c["status"], c["reason"], c["versions"]) for name, c in certificates.items()}
    assert outcomes == SAME_FOR_EVERY_CA | ADCS_EXTRAS
    assert_served_as_the_issue_asks(certificates)
    assert_alerts_ask_for_attention(certificates)
    # the OID-only certificate was asked for by its OID and renewed: the directory gave /certsrv the name
    assert certificates["legacy-v2-template"]["profile"] == V2_TEMPLATE_OID
    slapd_log = (tmp_path / "demo" / "ca-server" / "ldap" / "slapd.log").read_text()
    assert re.search(rf"SRCH base=.*\(msPKI-Cert-Template-OID={re.escape(V2_TEMPLATE_OID)}\)", slapd_log)
    # the approval: pending with the CA's request id and words, approved by the demo, merged on a later poll
    approval = certificates["vpn-approval"]
    assert approval["waited"] and summary["approved"] == [approval["ca_request_id"]]
    assert "wait for an administrator" in approval["ca_message"]
    # the denial, in the CA's words
    denied = certificates["partner-retired"]
    assert denied["ca_request_id"].isdigit() and "0x80094800" in denied["ca_message"]
    # AD CS cannot revoke over web enrollment: the first notice names certutil, the demo runs it as the CA's operator,
    # the sweep sees the serial on the CA's CRL and the second notice says revoked; revoked-at-ca is seen there too
    serials = assert_old_keys_retired(certificates, {EXPOSED: ["awaiting", "revoked"], REVOKED_AT_CA: ["revoked"]})
    assert "sweep" in certificates[EXPOSED]["via"]
    ca_folder = tmp_path / "demo" / "ca-server" / "certsrv" / "ca"  # the emulated CA's own CRL
    assert crl_lists(ca_folder, serials) == dict.fromkeys(serials, "keyCompromise")


def test_a_missing_tool_is_one_line(tmp_path, monkeypatch, capsys):
    from certlc.cli import main as certlc

    def missing() -> Path:
        raise tools.ToolMissing("Debian package 'pebble' is needed but apt-get is not available")

    monkeypatch.setattr(tools, "ensure_pebble", missing)
    assert certlc(["demo", "--ca", "acme", "--dir", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--ca acme" in err and "apt-get" in err, err


# --- the demo's checks of what AD CS must show, on one real run ------------------------------------------------


@pytest.fixture(scope="module")
def adcs_evidence(tmp_path_factory: pytest.TempPathFactory, azurite: Any) -> Evidence:
    _needs("adcs")
    recorded, _ = play(tmp_path_factory.mktemp("demo-adcs"), "placeholder", lambda _: None, "adcs")
    return recorded


def _verdicts(evidence: Evidence) -> dict[str, str]:
    return {o.name: o.detail for o in assess(evidence)}


def test_every_adcs_outcome_of_a_real_run_is_read_from_its_records(adcs_evidence):
    assert _verdicts(adcs_evidence) == {seed.name: "" for seed in seeds_for("adcs")}
    assert len(seeds_for("adcs")) == len(seeds_for("local")) + 2


def test_an_approval_that_never_waited_fails(adcs_evidence):
    audit = [r for r in adcs_evidence.audit if not (r["name"] == "vpn-approval" and r["event"] == "pending")]
    wrong = _verdicts(replace(adcs_evidence, audit=audit))["vpn-approval"]
    assert wrong.startswith("expected the CA to leave its request pending for approval first"), wrong


def test_a_waiting_request_shows_its_submission_page_not_a_later_poll(adcs_evidence):
    """A slow run polls the CA before the approval: that poll's "Taken Under Submission" does not replace the
    submission's words, which say who must approve."""
    first = next(r for r in adcs_evidence.audit if r["name"] == "vpn-approval" and r["event"] == "pending")
    at = adcs_evidence.audit.index(first) + 1
    audit = [*adcs_evidence.audit[:at], {**first, "ca_message": "Taken Under Submission"}, *adcs_evidence.audit[at:]]
    shown = next(o for o in assess(replace(adcs_evidence, audit=audit)) if o.name == "vpn-approval")
    assert "wait for an administrator" in shown.ca_message and shown.ok


def test_a_denial_without_the_cas_words_fails(adcs_evidence):
    audit = [
        {k: v for k, v in r.items() if k != "ca_message"} if r["name"] == "partner-retired" else r
        for r in adcs_evidence.audit
    ]
    wrong = _verdicts(replace(adcs_evidence, audit=audit))["partner-retired"]
    assert wrong == "the CA's request id and message did not reach the audit trail"


def test_waiting_requests_are_those_whose_latest_record_is_pending():
    audit = [
        {"vault": "kv1", "name": "a", "event": "pending", "ca_request_id": "4"},
        {"vault": "kv1", "name": "b", "event": "pending", "ca_request_id": "5"},
        {"vault": "kv1", "name": "b", "event": "merged"},
        {"vault": "kv1", "name": "c", "event": "submitted"},
    ]
    assert waiting_requests(audit) == {"a": "4"}
