"""Each certificate's outcome, read from what the run left (the audit trail, the sweep's report, Key Vault's
versions, the status snapshot, the alerts received, the gateway's reference) and checked against ``EXPECTED``.

Apart from the scenario so that the tests can alter one piece of a real run's evidence and see the check fail; the
demo works nothing out itself: a certificate nothing recorded is "not examined by the pipeline".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from certlc.demo.seeds import EXPECTED, FAILED, NOT_EXAMINED, RENEWED, VAULT, Expect, seeds_for

if TYPE_CHECKING:
    from renewal.sweep import SweepReport

ATTENTION = "warning"  # the lowest severity an alert asks for attention with: "info" (renewed) tells of a success


@dataclass(frozen=True)
class Retirement:
    """What Key Vault and the CA show, once the run is over, of the version a renewal with a new key replaced (the
    ``merged`` record of trigger compromise or revoked names both versions)."""

    trigger: str
    old_version: str
    new_version: str
    new_key: bool  # the new version's public key is not the old one's
    old_enabled: bool
    old_revocation: str  # the old version's certlc-revocation tag
    serial: str  # the old certificate's serial, hex
    at_ca: bool  # the CA says it is revoked
    ca_said: str  # where and what the CA said


@dataclass(frozen=True)
class Evidence:
    """What the pipeline recorded and Key Vault shows once the run is over, gathered once; outcomes are read here."""

    ca: str  # the CA the stack renewed with
    audit: list[dict[str, Any]]  # the audit trail's records, in order
    sweep: SweepReport  # what the sweep reported it did
    versions: dict[str, list[str]]  # certificate → its issued versions (those with a thumbprint)
    current: dict[str, str]  # certificate → the version Key Vault serves
    alerts: list[dict[str, Any]]  # what the notification webhook received
    rows: list[dict[str, Any]]  # the status snapshot's rows
    approved: list[str] = field(default_factory=list)  # CA request ids the demo approved as a CA manager
    nginx_port: int = 0  # where the demo's nginx listened
    references: dict[str, str] = field(default_factory=dict)  # certificate → the keyVaultSecretId its gateway names
    retired: dict[str, Retirement] = field(default_factory=dict)  # certificate → its old key's retirement
    left_out: dict[str, str] = field(default_factory=dict)  # certificate → why this CA was not given it


@dataclass(frozen=True)
class Observed:
    status: str  # renewed | failed | skipped | in_progress | queued | in_flight | error | unconfirmed | not examined
    reason: str
    via: tuple[str, ...]  # what examined it: the triggers of its renewals, and "sweep" when the sweep reported it
    profile: str = ""  # the profile or template the pipeline asked the CA for
    waited: bool = False  # the CA left its request pending at least once
    ca_request_id: str = ""  # what the CA said of its request, in its own words (pending or denied)
    ca_message: str = ""
    detail: str = ""  # what the last failed or skipped record said, for a run that went wrong


@dataclass
class Outcome:
    name: str
    expected: str | None
    status: str
    reason: str
    via: list[str]
    versions: int
    alerts: int  # alerts received about it that ask for attention (warning or error): not the renewed notices
    renewed_by: str  # the snapshot's outlook, for reading: checked against nothing
    next_renewal: str
    outlook: str
    ok: bool
    detail: str = ""
    profile: str = ""
    waited: bool = False
    ca_request_id: str = ""
    ca_message: str = ""
    served: str = ""  # the snapshot's SERVED column: its targets, as the last target check saw them
    serving_alerts: list[str] = field(default_factory=list)  # "target: problem" of each `serving` alert received
    moved: list[str] = field(default_factory=list)  # "target: old -> new version" of each reference certlc moved
    retired: str = ""  # what Key Vault, the CA and the notices show of its old key's retirement
    retirement: dict[str, Any] = field(default_factory=dict)  # the same, as read (``Retirement``)


def read_audit(path: Path) -> list[dict[str, Any]]:
    """The audit trail's records, in order (none before the first one is written)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def gather(
    ca: str,
    client: Any,
    audit_file: Path,
    report: SweepReport,
    alerts: list[Any],
    rows: list[dict[str, Any]],
    approved: list[str],
    ca_says: Callable[[int], tuple[bool, str]] | None = None,
) -> Evidence:
    """Read once what the run left: the audit trail, Key Vault's versions, the alerts received, and (``ca_says``)
    what the CA says of each old key a renewal retired."""
    names = [seed.name for seed in seeds_for(ca)]
    versions = {
        name: [v.version for v in client.list_properties_of_certificate_versions(name) if v.x509_thumbprint]
        for name in names
    }
    current = {name: client.get_certificate(name).properties.version for name in names}
    alerted = [a for a in alerts if isinstance(a, dict)]
    audit = read_audit(audit_file)
    retired = {
        name: retirement(client, record, ca_says)
        for name in names
        if (record := _key_retiring_merge(audit, name)) is not None
    }
    return Evidence(ca, audit, report, versions, current, alerted, rows, approved, retired=retired)


RETIRING = ("compromise", "revoked")  # the triggers of renewals that retire the old key


def _key_retiring_merge(audit: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    """The last ``merged`` record of a renewal that retires ``name``'s old key, or None."""
    merges = [
        r
        for r in audit
        if r.get("vault") == VAULT and r.get("name") == name and r.get("event") == "merged"
        if r.get("trigger") in RETIRING and r.get("old_version") and r.get("new_version")
    ]
    return merges[-1] if merges else None


def retirement(client: Any, merged: dict[str, Any], ca_says: Callable[[int], tuple[bool, str]] | None) -> Retirement:
    """Both versions as Key Vault holds them now, and what the CA says of the old serial."""
    from cryptography import x509

    from renewal import tags as cert_tags
    from renewal.x509info import public_key_der

    name = merged["name"]
    old = client.get_certificate_version(name, merged["old_version"])
    new = client.get_certificate_version(name, merged["new_version"])
    old_leaf, new_leaf = (x509.load_der_x509_certificate(bytes(v.cer)) for v in (old, new))
    at_ca, said = ca_says(old_leaf.serial_number) if ca_says else (False, "the CA was not asked")
    return Retirement(
        trigger=str(merged["trigger"]),
        old_version=old.properties.version,
        new_version=new.properties.version,
        new_key=public_key_der(new_leaf.public_key()) != public_key_der(old_leaf.public_key()),
        old_enabled=bool(old.properties.enabled),
        old_revocation=cert_tags.tag(old.properties.tags, cert_tags.REVOCATION) or "",
        serial=f"{old_leaf.serial_number:x}",
        at_ca=at_ca,
        ca_said=said,
    )


def asks_attention(alert: dict[str, Any]) -> bool:
    """Whether an alert asks someone to act (a failure, an endpoint left behind, an expiry nobody renews...), as a
    channel set to ``@warning`` would pass it; one with a severity certlc does not send counts too."""
    from renewal.notify.routing import SEVERITIES, severity_at_least

    severity = alert.get("severity")
    return severity not in SEVERITIES or severity_at_least(str(severity), ATTENTION)


def assess(evidence: Evidence) -> list[Outcome]:
    """Each seeded certificate's recorded outcome against what the demo expects of it with this CA."""
    outcomes = []
    for seed in seeds_for(evidence.ca):
        expect = EXPECTED[seed.name][evidence.ca]
        seen = observed(seed.name, evidence)
        versions = len(evidence.versions.get(seed.name, []))
        alerts = [a for a in evidence.alerts if a.get("name") == seed.name]
        row = _snapshot_row(evidence.rows, seed.name)
        served = str(row.get("Served") or "")
        serving = [f"{a.get('target')}: {a.get('problem')}" for a in alerts if a.get("kind") == "serving"]
        moved = [
            f"{r.get('target')}: {r.get('old_version')} -> {r.get('new_version')}"
            for r in evidence.audit
            if r.get("event") == "rollout_updated" and r.get("vault") == VAULT and r.get("name") == seed.name
        ]
        retired = evidence.retired.get(seed.name)
        as_expected = (seen.status, seen.reason) == (expect.status, expect.reason)
        wrong = (
            (retirement_problem(expect, seen, retired, alerts, evidence.audit, seed.name) if as_expected else "")
            or problem(expect, seen, versions, alerts)
            or serving_problem(
                expect, served, serving, moved, evidence.references.get(seed.name, ""), evidence, seed.name
            )
        )  # a renewal that did not retire the old key is named so before its count of versions
        outcomes.append(
            Outcome(
                seed.name,
                expect.status,
                seen.status,
                seen.reason,
                list(seen.via),
                versions,
                sum(asks_attention(a) for a in alerts),
                row.get("RenewedBy") or "",
                row.get("NextRenewal") or "",
                row.get("RenewalNote") or "",
                not wrong,
                wrong,
                seen.profile,
                seen.waited,
                seen.ca_request_id,
                seen.ca_message,
                served,
                serving,
                moved,
                describe_retirement(retired, alerts),
                asdict(retired) if retired else {},
            )
        )
    return outcomes


def observed(name: str, evidence: Evidence) -> Observed:
    """What the pipeline recorded for ``name``'s renewal: the audit trail first (a merge counts once Key Vault serves
    the merged version), else the sweep's report, else nothing examined it. What the target check and certlc sync
    recorded about where it is served is no part of its renewal."""
    records = [r for r in evidence.audit if r.get("vault") == VAULT and r.get("name") == name and not _about_serving(r)]
    key = f"{VAULT}/{name}"
    swept = _sweep_entry(evidence.sweep, key)
    triggers = [r["trigger"] for r in records if r.get("trigger")] + (["sweep"] if swept else [])
    via = tuple(dict.fromkeys(triggers))
    said = _cas_words(records)
    words = {
        "profile": next((r.get("profile") or "" for r in reversed(records) if r["event"] == "submitted"), ""),
        "waited": any(r["event"] == "pending" for r in records),
        "ca_request_id": str(said.get("ca_request_id") or ""),
        "ca_message": str(said.get("ca_message") or ""),
    }
    merged = [r for r in records if r["event"] == "merged"]
    if merged:
        version = merged[-1].get("new_version")
        if version != evidence.current.get(name):
            reason = f"merged {version}, Key Vault serves {evidence.current.get(name)}"
            return Observed("unconfirmed", reason, via, **words)
        return Observed(RENEWED, "merged", via, **words)
    for events, status in ((("failed", "rejected"), FAILED), (("skipped",), "skipped")):
        last = next((r for r in reversed(records) if r["event"] in events), None)
        if last is not None:
            return Observed(status, last.get("reason") or "", via, **words, detail=str(last.get("detail") or ""))
    if records:
        return Observed("in_progress", records[-1]["event"], via, **words)
    if swept:
        return Observed(*swept, via, **words)
    return Observed(NOT_EXAMINED, "", via, **words)


def _about_serving(record: dict[str, Any]) -> bool:
    """A record of certlc sync, or of the target check: a reference moved, a version retired, a `serving` alert."""
    return (
        record.get("trigger") == "sync"
        or record.get("event") in ("rollout_updated", "retired", "served")
        or (record.get("event") == "notified" and record.get("kind") == "serving")
    )


def _cas_words(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The record whose words show what the CA said: its last answer that was not "still pending", else its first
    "pending" (the submission's page, naming who must approve; later polls only say "Taken Under Submission")."""
    spoke = [r for r in records if r.get("ca_request_id") or r.get("ca_message")]
    final = [r for r in spoke if r["event"] != "pending" and r.get("ca_message")]
    return final[-1] if final else (spoke[0] if spoke else {})


def _sweep_entry(report: SweepReport, key: str) -> tuple[str, str] | None:
    """What the sweep reported doing with one certificate, or None when its report does not name it."""
    if key in report.errors:
        return "error", report.errors[key]
    if key in report.skipped:
        return "skipped", report.skipped[key]
    for names, status, reason in (
        (report.enqueued, "queued", "sweep"),
        (report.taken_over, "queued", "orphaned_pending_operation"),
        (report.in_flight, "in_flight", ""),
    ):
        if key in names:
            return status, reason
    return None


def problem(expect: Expect, seen: Observed, versions: int, alerts: list[dict[str, Any]]) -> str:
    """Why a certificate did not end as the demo expects, or "" when it did."""
    if expect.status is None:
        return "" if versions == 1 else f"nothing was to renew it, yet Key Vault shows {versions} versions"
    expected = f"{expect.status} ({expect.reason})"
    if seen.status == NOT_EXAMINED:
        return f"expected {expected}, but it was not examined by the pipeline"
    if (seen.status, seen.reason) != (expect.status, expect.reason):
        because = f": {seen.detail}" if seen.detail else ""
        return f"expected {expected}, the pipeline recorded {seen.status} ({seen.reason}){because}"
    wanted = expect.versions or (2 if expect.status == RENEWED else 1)
    if versions != wanted:
        return f"expected {wanted} version(s) in Key Vault, found {versions}"
    if expect.status == FAILED and not any(a.get("kind") == "renewal_failed" for a in alerts):
        return "no renewal_failed alert was sent"
    if expect.waits and not seen.waited:
        return "expected the CA to leave its request pending for approval first, but no pending was recorded"
    if expect.ca_words and not (seen.ca_request_id and seen.ca_message):
        return "the CA's request id and message did not reach the audit trail"
    return ""


def serving_problem(
    expect: Expect,
    served: str,
    serving: list[str],
    moved: list[str],
    reference: str,
    evidence: Evidence,
    name: str,
) -> str:
    """Why where a certificate is served is not what the demo expects (the snapshot's SERVED column, the `serving`
    alerts received, the gateway's reference and its rollout record), or "" when it is."""
    wanted = expect.served.format(port=evidence.nginx_port)
    if served != wanted:
        return f"expected SERVED {wanted or '(no target)'!r}, the snapshot says {served or '(no target)'!r}"
    if expect.left_behind and not any(alert.startswith(f"{expect.left_behind}:") for alert in serving):
        return f"{expect.left_behind} still serves the replaced version, yet no serving alert names it"
    if expect.moved:
        current = evidence.current.get(name, "")
        if not moved:
            return "no rollout_updated record: the gateway's reference to the replaced version was not moved"
        if not reference.rstrip("/").endswith(f"/{current}"):
            return f"the gateway names {reference or 'nothing'}, not the version Key Vault serves ({current})"
    return ""


def compromise_notices(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in alerts if a.get("kind") == "compromise"]


def retirement_problem(
    expect: Expect,
    seen: Observed,
    retired: Retirement | None,
    alerts: list[dict[str, Any]],
    audit: list[dict[str, Any]],
    name: str,
) -> str:
    """Why the old key of a certificate renewed to retire it is not retired as the demo expects (a new key, the old
    version disabled, tagged revoked and revoked at its CA, its compromise notices, the renewal finished), or ""."""
    if not expect.retires:
        return ""
    trigger = expect.retires
    if trigger not in seen.via or (trigger == "revoked" and "sweep" not in seen.via):
        wanted = "the sweep, with trigger revoked" if trigger == "revoked" else "trigger compromise"
        return f"expected a renewal by {wanted}; examined by {', '.join(seen.via) or 'nothing'}"
    if retired is None or retired.trigger != trigger:
        return f"no merged record of a renewal with trigger {trigger} names the version it replaced"
    if not retired.new_key:
        return f"the new version {retired.new_version} kept the old key"
    if retired.old_enabled:
        return f"the old version {retired.old_version} is still enabled in Key Vault"
    if not retired.old_revocation.startswith("revoked keyCompromise"):
        return f"the old version's certlc-revocation tag is {retired.old_revocation or 'missing'!r}, not revoked"
    if not retired.at_ca:
        return f"the CA does not say the old certificate is revoked: {retired.ca_said}"
    said = tuple(str(n.get("revocation")) for n in compromise_notices(alerts))
    if said != expect.notices:
        return f"expected compromise notices saying {', '.join(expect.notices)}; received {', '.join(said) or 'none'}"
    finished = [r for r in audit if r.get("name") == name and r.get("event") == "compromise_finished"]
    if not finished:
        return "no compromise_finished record: the renewal's steps are not all done"
    return ""


def describe_retirement(retired: Retirement | None, alerts: list[dict[str, Any]]) -> str:
    """One line, for the table's reader, of what Key Vault, the CA and the notices show of the old key."""
    if retired is None:
        return ""
    key = "a new key" if retired.new_key else "THE SAME KEY"
    state = "disabled" if not retired.old_enabled else "STILL ENABLED"
    said = [str(n.get("revocation")) for n in compromise_notices(alerts)]
    return (
        f"trigger {retired.trigger}: {key}; old version {retired.old_version} {state}, "
        f"tagged {retired.old_revocation or '(no certlc-revocation)'!r}; the CA: {retired.ca_said}; "
        f"compromise notices received: {', '.join(said) or 'none'}"
    )


def _snapshot_row(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The newest status row of ``name`` (empty when the snapshot has none)."""
    mine = [r for r in rows if r.get("KeyVault") == VAULT and r.get("CertName") == name]
    return max(mine, key=lambda r: r.get("TimeGenerated") or "", default={})
