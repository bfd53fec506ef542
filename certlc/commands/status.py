"""``certlc status NAME``: everything certlc knows about one certificate, as ``cmctl status certificate`` does.

Gather (one Key Vault client: the certificate with its policy, its pending operation, its versions; the audit
file when ``CERTLC_AUDIT_FILE`` names one) → decide with the renewal path's own chains (``renewal.outlook`` for
who renews it and when, ``renewal.decide.resolve_profile`` for the CA adapter and profile) → print.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from renewal import tags as cert_tags
from renewal.clock import iso_utc
from renewal.decide import Input, ca_of, facts_of, plan, renewal_threshold, resolve_profile
from renewal.keyvault import CertificateSnapshot, KeyVault, PendingOperation
from renewal.messages import RenewalRequest
from renewal.settings import Settings
from renewal.x509info import load_certificate

if TYPE_CHECKING:
    from renewal.ca.acme_ari import RenewalWindow
    from renewal.revocation import RevocationStatus


def run(args: argparse.Namespace) -> int:
    """Exit 0 when shown; 1 when the certificate does not exist or a service does not answer; 2 for a vault not
    in ``CERTLC_VAULTS`` (or none named when it lists several)."""
    from certlc.cli import NotFound, UserError
    from certlc.commands.common import checked_runtime, chosen_vault

    if args.rows:
        raise UserError("--rows lists stored status rows; certlc status NAME reads the certificate from its vault")
    runtime = checked_runtime(args.env, dry_run=True)  # read-only: no lock, nothing written
    vault = chosen_vault(runtime.settings.vaults, args.vault)
    now = runtime.clock()
    window = partial(ari_window, settings=runtime.settings, ca_for=runtime.workflow.ca_for, now=now)
    audit_file = runtime.env.get("CERTLC_AUDIT_FILE", "").strip()
    asked = partial(revocation_of, watch=runtime.workflow.revocation, settings=runtime.settings)
    gathered = gather(runtime.keyvault(vault), args.name, audit_file, window, asked)
    if gathered is None:
        raise NotFound(f"certificate {args.name!r} does not exist in vault {vault.name!r}")
    status = replace(
        decide_status(gathered, runtime.settings, now), targets=last_target_check(runtime.env, vault.name, args.name)
    )
    print(as_json(status) if args.output == "json" else as_text(status))
    return 0


@dataclass(frozen=True)
class VersionEntry:
    version: str
    created: datetime | None
    expires: datetime | None
    enabled: bool
    last_outcome: str | None
    correlation: str | None
    revocation: str | None = None  # what certlc asked or saw of its CA (certlc-revocation)


@dataclass(frozen=True)
class CertificateStatus:
    vault: str
    name: str
    version: str
    enabled: bool
    not_before: datetime | None
    expires: datetime | None
    policy_issuer: str
    issuer: str  # the certificate's issuer DN
    ca: str  # the CA adapter certlc would use
    profile: str | None
    profile_problem: str | None  # why certlc has no profile for it
    renewed_by: str
    plan: str  # the one decision's reason (renewal.decide.Reason)
    note: str
    next_renewal: datetime | None
    renew_within_days: int  # the renewal window: renewed when at most this many days remain
    canary: bool
    pending: str | None  # the status of Key Vault's pending operation (inprogress, completed...), or None
    pending_error: str | None
    ca_request: CaRequest | None  # the CA request the renewal waits for, in the CA's words (from the audit)
    last_outcome: str | None
    revocation: Revocation | None = None  # what its CA's OCSP responder or CRL says now
    versions: list[VersionEntry] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)  # what the sweep's last target check saw


@dataclass(frozen=True)
class Revocation:
    state: str  # good, revoked or unknown
    source: str  # where the answer came from: "OCSP http://…", "CRL http://…", or why none was asked
    reason: str | None
    revoked_at: datetime | None
    detail: str


@dataclass(frozen=True)
class CaRequest:
    ca: str
    request_id: str
    message: str
    approver: str


@dataclass(frozen=True)
class Gathered:
    cert: CertificateSnapshot
    pending: PendingOperation | None
    versions: list[VersionEntry]
    audit: list[dict[str, Any]]
    renewal_window: RenewalWindow | None = None  # the ACME CA's suggested window (ARI), when it offers one
    revocation: RevocationStatus | None = None  # what its CA says, when certlc checks revocation


def gather(
    kv: KeyVault,
    name: str,
    audit_file: str | None,
    window_of: Callable[[CertificateSnapshot], RenewalWindow | None] = lambda cert: None,
    revocation_of: Callable[[CertificateSnapshot], RevocationStatus | None] = lambda cert: None,
) -> Gathered | None:
    """Everything read for one certificate, or None when it does not exist."""
    cert = kv.current(name)
    if cert is None:
        return None
    history = versions_of(kv, name, cert.version)
    audit = audit_events(audit_file, kv.vault.name, name)
    return Gathered(cert, kv.get_pending(name), history, audit, window_of(cert), revocation_of(cert))


def revocation_of(cert: CertificateSnapshot, *, watch: Any, settings: Settings) -> RevocationStatus | None:
    """What the certificate's CA says of its current version now (``CERTLC_REVOCATION_CHECK``), as the sweep asks."""
    if watch is None or cert.cer is None:
        return None
    return watch.check(cert.cer, ca_of(cert.tags, settings.window))


def ari_window(
    cert: CertificateSnapshot, *, settings: Settings, ca_for: Callable[[str], Any], now: datetime
) -> RenewalWindow | None:
    """The CA's suggested window when the certificate is renewed through an ACME CA with ARI (one GET)."""
    from renewal.ca.acme_ari import renewal_window

    return renewal_window(cert, ca_of(cert.tags, settings.window), ca_for, now)


def versions_of(kv: KeyVault, name: str, current: str) -> list[VersionEntry]:
    """The certificate's versions, newest first (``current`` first among those created in the same second), with
    the tags certlc writes on the versions it merges."""
    listing = kv.versions(name)
    entries = [
        VersionEntry(
            version=p.version,
            created=p.created_on,
            expires=p.expires_on,
            enabled=bool(p.enabled),
            last_outcome=cert_tags.tag(p.tags or {}, cert_tags.LAST_OUTCOME),
            correlation=cert_tags.tag(p.tags or {}, cert_tags.CORRELATION),
            revocation=cert_tags.tag(p.tags or {}, cert_tags.REVOCATION),
        )
        for p in listing
    ]
    return sorted(entries, key=lambda e: (e.created is not None, e.created or 0, e.version == current), reverse=True)


def audit_events(path: str | None, vault: str, name: str) -> list[dict[str, Any]]:
    """The audit file's records for this certificate, oldest first; a line that is not JSON is passed over."""
    if not path:
        return []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    found = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if (
            str(record.get("vault", "")).lower() == vault.lower()
            and str(record.get("name", "")).lower() == name.lower()
        ):
            found.append(record)
    return found


def decide_status(gathered: Gathered, settings: Settings, now: datetime) -> CertificateStatus:
    """Who renews it, when, with which CA and profile: the chains the renewal path itself runs."""
    cert = gathered.cert
    window = settings.window
    facts = facts_of(cert, settings.canary)
    seen = plan(facts, now, window, gathered.renewal_window, revocation=gathered.revocation)
    said = gathered.revocation
    request = RenewalRequest(vault=cert.vault, name=cert.name, trigger="manual")
    chosen = resolve_profile(Input(request, settings.vaults, facts, now, window))
    return CertificateStatus(
        vault=cert.vault,
        name=cert.name,
        version=cert.version,
        enabled=cert.enabled,
        not_before=cert.not_before,
        expires=cert.expires_on,
        policy_issuer=cert.issuer_name or "",
        issuer=issuer_dn(cert.cer),
        ca=chosen.ca or cert_tags.tag(cert.tags, cert_tags.CA) or window.default_ca,
        profile=chosen.profile,
        profile_problem=None if chosen.profile else chosen.message,
        renewed_by=seen.renewed_by,
        plan=str(seen.reason),
        note=seen.message,
        next_renewal=seen.next_renewal,
        renew_within_days=renewal_threshold(cert.not_before, cert.expires_on, cert.tags, window).days,
        canary=facts.canary_every is not None,
        pending=gathered.pending.status if gathered.pending else None,
        pending_error=gathered.pending.error if gathered.pending else None,
        ca_request=waiting_ca_request(gathered.audit),
        last_outcome=cert_tags.tag(cert.tags, cert_tags.LAST_OUTCOME),
        revocation=Revocation(said.state, said.source, said.reason, said.revoked_at, said.detail) if said else None,
        versions=gathered.versions,
        audit=gathered.audit,
    )


_CA_WAIT_ENDS = {"issued", "denied", "merged", "failed", "rejected", "withdrawn"}


def waiting_ca_request(audit: Iterable[Mapping[str, Any]]) -> CaRequest | None:
    """The CA request the last renewal left pending, as the CA described it; None once it was decided. A poll's
    answer ("Taken Under Submission") keeps the approver the submission's answer named."""
    waiting: CaRequest | None = None
    for record in audit:
        if record.get("event") in _CA_WAIT_ENDS:
            waiting = None
        elif record.get("event") == "pending" and record.get("ca_request_id"):
            request_id = str(record["ca_request_id"])
            earlier = waiting.approver if waiting and waiting.request_id == request_id else ""
            waiting = CaRequest(
                str(record.get("ca", "")),
                request_id,
                str(record.get("ca_message", "")),
                record.get("approver") or earlier,
            )
    return waiting


def issuer_dn(cer: bytes | None) -> str:
    if not cer:
        return ""
    try:
        return load_certificate(cer).issuer.rfc4514_string()
    except ValueError:
        return "(unreadable certificate)"


def as_json(status: CertificateStatus) -> str:
    return json.dumps(asdict(status), indent=2, default=_iso)


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _day(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


RENEWED_BY = {
    "certlc": "certlc",
    "keyvault": "Key Vault (AutoRenew)",
    "opted_out": "nobody: opted out",
    "disabled": "nobody: disabled",
    "nobody": "NOBODY",
}


def as_text(status: CertificateStatus) -> str:
    s = status
    certlc_renews = s.renewed_by == "certlc"
    profile = s.profile or f"none: {s.profile_problem}"
    lines = [
        f"Certificate:     {s.vault}/{s.name}",
        f"Version:         {s.version}{'' if s.enabled else ' (disabled)'}",
        f"Valid:           {_day(s.not_before)} to {_day(s.expires)} UTC",
        f"Issuer:          {s.issuer or '-'} (policy issuer {s.policy_issuer or 'none'!r})",
        f"Renewed by:      {RENEWED_BY.get(s.renewed_by, s.renewed_by)} ({s.plan}): {s.note}",
        f"CA adapter:      {s.ca}{'' if certlc_renews else ' (if certlc renewed it)'}",
        f"Profile:         {profile}",
        f"Renewal window:  the last {s.renew_within_days} days before expiry",
        f"Next renewal:    {_day(s.next_renewal) + ' UTC' if certlc_renews and s.next_renewal else '-'}",
        f"Canary:          {'yes' if s.canary else 'no'}",
        f"Pending:         {_pending(s)}",
        f"Revocation:      {_revocation(s.revocation)}",
        f"Last outcome:    {s.last_outcome or '-'}",
        "Versions:",
    ]
    lines += [f"  {line}" for line in _table(_version_rows(s.versions))]
    if s.targets:
        lines.append("Targets (the sweep's last check; `certlc targets NAME` probes now):")
        lines += [f"  {line}" for line in _table(_target_rows(s.targets))]
    if s.audit:
        lines.append("Audit:")
        lines += [f"  {line}" for line in _table(_audit_rows(s.audit))]
    return "\n".join(lines)


def last_target_check(env: Mapping[str, str], vault: str, name: str) -> list[dict[str, Any]]:
    """Every target of the certificate as the sweep's last check left it; none when storage cannot say."""
    from renewal.ledger import lock_container
    from renewal.targets.store import TargetStore

    try:
        store = TargetStore(lock_container(env, retry_total=0, connection_timeout=5, read_timeout=10))
        return [seen.to_dict() for seen in store.load_all(vault).seen.get(name.lower(), [])]
    except Exception:  # the rest of the status stands without it
        return []


def _target_rows(targets: Iterable[Mapping[str, Any]]) -> list[list[str]]:
    rows = [["TARGET", "KIND", "PICKUP", "SERVED", "SINCE", "NOTE"]]
    for t in targets:
        rows.append([t["name"], t["kind"], t["pickup"], t["served"], (t.get("since") or "-")[:16], t["message"]])
    return rows


def _revocation(said: Revocation | None) -> str:
    if said is None:
        return "not checked (CERTLC_REVOCATION_CHECK=off)"
    if said.state == "revoked":
        when = f" on {_day(said.revoked_at)} UTC" if said.revoked_at else ""
        return f"REVOKED{when} ({said.reason or 'no reason given'}), says {said.source}"
    if said.state == "good":
        return f"good, says {said.source}"
    return f"unknown ({said.source}): {said.detail}"


def _pending(s: CertificateStatus) -> str:
    """Key Vault keeps the last operation after it ends: only one in progress is a renewal waiting."""
    if s.pending is None:
        return "none"
    if s.pending != "inprogress":
        return f"none (the last operation {s.pending}{': ' + s.pending_error if s.pending_error else ''})"
    waiting = "in progress: a new version waits for its certificate (Key Vault's pending operation)"
    request = s.ca_request
    if request is None:
        return waiting
    says = f': "{request.message}"' if request.message else ""
    approver = f" (to be approved by {request.approver})" if request.approver else ""
    return f"{waiting}; {request.ca or 'CA'} request {request.request_id}{says}{approver}"


def _version_rows(versions: Iterable[VersionEntry]) -> list[list[str]]:
    rows = [["VERSION", "CREATED", "EXPIRES", "ENABLED", "LAST OUTCOME", "CORRELATION", "REVOCATION"]]
    for v in versions:
        enabled = "yes" if v.enabled else "no"
        outcome, correlation = v.last_outcome or "", v.correlation or ""
        rows.append([v.version, _day(v.created), _day(v.expires), enabled, outcome, correlation, v.revocation or ""])
    return rows


AUDIT_DETAIL = ("trigger", "reason", "ca", "profile", "old_version", "new_version", "detail")


def _audit_rows(records: Iterable[Mapping[str, Any]]) -> list[list[str]]:
    rows = [["TIME", "EVENT", "ATTEMPT", "CORRELATION", "DETAIL"]]
    for r in records:
        detail = " ".join(f"{k}={r[k]}" for k in AUDIT_DETAIL if r.get(k))
        cells = (r.get("ts"), r.get("event"), r.get("attempt"), r.get("correlation_id"))
        rows.append([*("" if c is None else str(c) for c in cells), detail])
    return rows


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
