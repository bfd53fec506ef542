"""The safety net: find due certificates that nothing is renewing and queue them; tell people what nobody renews.

Event Grid only fires for versions created after the subscription existed and a delivery
can be lost, so the sweep lists every allow-listed vault and decides on its own. Retries
need no re-driving here: each is a queue message with a visibility delay, so the queue
re-drives it when its back-off has elapsed. A pending operation that no live renewal owns
(its owner died, an interrupted ``certlc renew``, one started by hand) is an orphan: the sweep
queues a renewal that takes it over, reusing its CSR, whether or not the certificate is due.

Gather → decide → act: per certificate the sweep gathers the certificate, and where a renewal may be under
way the renewal's record (``renewal.ledger``, read without the lock) and the pending operation; the one
decision (``renewal.decide``) says what happens, and :func:`sweep_action` turns it into the sweep's act.
Key Vault cost: the list pages, plus a GET for certificates inside their renewal window or the notice window
(``CERTLC_WARN_DAYS``), canaries (``renewal.canary``) whose scheduled renewal has come, and certificates with
an unfinished renewal record (one listing of the lock container per vault); a pending check only where the
listing shows a pending create or a record is unfinished.

For a certificate renewed through ACME (``ca_for`` given), the sweep also asks the CA's renewalInfo (RFC 9773,
``renewal.ca.acme_ari``) and the decision uses its suggested window: a CA that asks for an early renewal gets one.
The listing cannot say what the CA suggests, so an ACME certificate is read once per process and again whenever
its window may have come (the answer is kept until the CA's Retry-After).

A canary is renewed on its schedule even when it is not due, with the trigger ``canary`` and pinned to the
version the sweep saw: a broken CA path or alert channel shows weeks before a real expiry, and a
redelivered message finds that version replaced and stops as superseded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from renewal import tags as cert_tags
from renewal.ca.acme_ari import may_be_due, renewal_window
from renewal.canary import CanarySettings, canary_every
from renewal.decide import Input, Reason, Verdict, WindowSettings, ca_of, decide, facts_of
from renewal.decide import renewal_threshold as threshold
from renewal.keyvault import CertificateSnapshot, CertificateSummary, KeyVault, KeyVaultError, is_placeholder
from renewal.ledger import Ledger
from renewal.messages import RenewalRequest
from renewal.vaults import Vault

if TYPE_CHECKING:
    from renewal.revocation import RevocationStatus
    from renewal.revocation.watch import RevocationWatch

log = logging.getLogger("certlc.sweep")

Action = Literal["enqueue", "take_over", "in_flight", "leave"]


@dataclass(frozen=True)
class SweepDecision:
    """What the sweep does with one certificate, why, and whether someone is told today."""

    action: Action
    reason: str
    warn: bool = False


def sweep_action(verdict: Verdict, warned_today: bool) -> SweepDecision:
    """The sweep's reading of the one decision: queue what certlc renews (a ``fail`` verdict too: the workflow
    then fails it with its alert, as its Event Grid event would have), queue a takeover for an orphan, leave what
    is in flight or not certlc's to renew; tell whoever the verdict says, once a day (the ``certlc-warned`` tag)."""
    if verdict.outcome in ("renew", "fail"):
        action: Action = "take_over" if verdict.reason == Reason.ORPHANED_PENDING_OPERATION else "enqueue"
    elif verdict.outcome == "wait":
        action = "in_flight"
    else:
        action = "leave"
    return SweepDecision(action, str(verdict.reason), warn=verdict.tell != "nobody" and not warned_today)


def warned_today(cert: CertificateSnapshot, now: datetime) -> bool:
    """One notice per UTC day, remembered in a tag so every sweep instance agrees."""
    return cert_tags.tag(cert.tags, cert_tags.WARNED) == now.strftime("%Y-%m-%d")


@dataclass
class SweepReport:
    enqueued: list[str] = field(default_factory=list)
    taken_over: list[str] = field(default_factory=list)
    in_flight: list[str] = field(default_factory=list)
    warned: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)  # its CA revoked it: queued for a renewal with a new key
    skipped: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    # each vault's listing as the sweep read it: the target check that follows finds its certificates there
    listed: dict[str, list[CertificateSummary]] = field(default_factory=dict, repr=False)


def canary_is_due(
    vault: str, cert: CertificateSummary | CertificateSnapshot, now: datetime, canary: CanarySettings
) -> bool:
    """A canary's scheduled renewal has come (``not_before + every``), whether or not the certificate is due."""
    every = canary_every(canary, vault, cert.name, cert.tags)
    return every is not None and cert.not_before is not None and cert.not_before + every <= now


def sweep_trigger(vault: str, cert: CertificateSnapshot, now: datetime, canary: CanarySettings) -> str:
    """What the sweep's request says started it: ``canary`` skips the due check for the version it names."""
    return "canary" if canary_is_due(vault, cert, now, canary) else "sweep"


def worth_a_look(
    vault: str, summary: CertificateSummary, now: datetime, settings: WindowSettings, canary: CanarySettings
) -> bool:
    """Cheap pre-filter on listing data; the one decision runs on the GET that follows.

    A listing that shows a pending create's placeholder says nothing about the certificate's dates, so it is
    always looked at: it may be a renewal in flight, or an orphan to take over. Otherwise: inside the renewal
    window, inside the notice window (someone may have to be told), a canary whose scheduled renewal has come, or a
    compromise renewal that merged and did not finish (``renewal.compromise``), whatever the dates. The listing's
    tags say when certlc renews nothing: an opted-out certificate matters only inside the notice window, and one
    nobody renews (opted out, or failed for good) that was told today has nothing more to happen today.
    """
    if is_placeholder(summary) or cert_tags.tag(summary.tags, cert_tags.COMPROMISED):
        return True
    if not summary.enabled or summary.expires_on is None:
        return False
    opted_out = cert_tags.is_false(cert_tags.tag(summary.tags, cert_tags.RENEW))
    failed = (cert_tags.tag(summary.tags, cert_tags.LAST_OUTCOME) or "").startswith("failed")
    if (opted_out or failed) and cert_tags.tag(summary.tags, cert_tags.WARNED) == now.strftime("%Y-%m-%d"):
        return canary_is_due(vault, summary, now, canary)
    left = summary.expires_on - now
    renewal = threshold(summary.not_before, summary.expires_on, summary.tags, settings)
    window = settings.warn_within if opted_out else max(renewal, settings.warn_within)
    return left <= window or canary_is_due(vault, summary, now, canary)


def sweep(
    vaults: dict[str, Vault],
    keyvault_for: Callable[[Vault], KeyVault],
    enqueue: Callable[[RenewalRequest], None],
    warn: Callable[..., None],
    settings: WindowSettings,
    now: datetime,
    ledger: Ledger,
    canary: CanarySettings,
    ca_for: Callable[[str], Any] | None = None,
    revocation: RevocationWatch | None = None,
) -> SweepReport:
    """``ca_for`` (the workflow's CA adapters) lets the sweep ask an ACME CA's renewalInfo; without it, no ARI.
    ``revocation`` checks what the CAs say of each managed certificate (``renewal.revocation.watch``)."""
    report = SweepReport()
    if revocation is not None:
        revocation.start_sweep()
    for vault in vaults.values():
        kv = keyvault_for(vault)
        try:
            unfinished = ledger.unfinished(vault.name)
            listed = report.listed[vault.name] = list(kv.list())
            candidates = [
                s
                for s in listed
                if s.name.lower() in unfinished
                or worth_a_look(vault.name, s, now, settings, canary)
                or (ca_for is not None and may_be_due(vault.name, s, ca_of(s.tags, settings), ca_for, now))
            ]
            only_revocation: set[str] = set()  # read for the revocation check alone: nothing to report otherwise
            if revocation is not None:
                others = [s for s in listed if s not in candidates]
                only_revocation = set(revocation.to_read(vault.name, others, lambda tags: ca_of(tags, settings)))
                candidates += [s for s in others if s.name in only_revocation]
        except Exception as exc:  # Key Vault or the lock store: this vault waits for the next sweep
            report.errors[vault.name] = str(exc) if isinstance(exc, KeyVaultError) else f"{type(exc).__name__}: {exc}"
            continue
        for summary in candidates:
            key = f"{vault.name}/{summary.name}"
            try:
                unfinished_record = summary.name.lower() in unfinished
                _sweep_one(
                    kv,
                    vault,
                    summary,
                    unfinished_record,
                    enqueue,
                    warn,
                    settings,
                    now,
                    ledger,
                    canary,
                    ca_for,
                    report,
                    key,
                    revocation,
                    summary.name in only_revocation,
                )
            except KeyVaultError as exc:
                report.errors[key] = str(exc)
            except Exception as exc:  # the lock store down: this one waits for the next sweep, the others go on
                report.errors[key] = f"{type(exc).__name__}: {exc}"
    return report


def _sweep_one(
    kv: KeyVault,
    vault: Vault,
    summary: CertificateSummary,
    unfinished_record: bool,
    enqueue: Callable[[RenewalRequest], None],
    warn: Callable[..., None],
    settings: WindowSettings,
    now: datetime,
    ledger: Ledger,
    canary: CanarySettings,
    ca_for: Callable[[str], Any] | None,
    report: SweepReport,
    key: str,
    revocation: RevocationWatch | None = None,
    only_revocation: bool = False,
) -> None:
    cert = kv.current(summary.name)
    if cert is None:
        return
    said = revocation.status(cert, ca_of(cert.tags, settings)) if revocation is not None else None
    window = renewal_window(cert, ca_of(cert.tags, settings), ca_for, now) if ca_for is not None else None
    trigger = sweep_trigger(vault.name, cert, now, canary)
    request = RenewalRequest(vault=vault.name, name=summary.name, trigger=trigger, version=cert.version)
    record = ledger.peek(vault.name, summary.name) if unfinished_record else None
    suspect = is_placeholder(summary) or (record is not None and record.version == cert.version)
    pending = kv.get_pending(summary.name) if suspect else None
    facts = facts_of(cert, canary)
    verdict = decide(
        Input(request, {vault.name.lower(): vault}, facts, now, settings, window, record, pending, revocation=said)
    )
    if verdict.reason == Reason.REVOKED and said is not None:
        request = replace(request, trigger="revoked")
        _note_revoked(kv, cert, said, now)
        report.revoked.append(key)
    decision = sweep_action(verdict, warned_today(cert, now))
    if decision.action in ("enqueue", "take_over"):
        enqueue(request)
        (report.enqueued if decision.action == "enqueue" else report.taken_over).append(key)
    elif decision.action == "in_flight":
        report.in_flight.append(key)
    elif not only_revocation:
        report.skipped[key] = decision.reason
    if decision.warn:
        days = max(0, (cert.expires_on - now).days) if cert.expires_on else 0
        warn(cert, days, escalate=verdict.tell == "escalate", why=verdict.message)
        kv.update_tags(cert.name, cert.version, {**cert.tags, cert_tags.WARNED: now.strftime("%Y-%m-%d")})
        report.warned.append(key)


def _note_revoked(kv: KeyVault, cert: CertificateSnapshot, said: RevocationStatus, now: datetime) -> None:
    """The version says what its CA said (``certlc-revocation``), so the renewal that replaces it asks the CA
    nothing and ``certlc status`` shows it."""
    if cert_tags.tag(cert.tags, cert_tags.REVOCATION):
        return
    day = (said.revoked_at or now).strftime("%Y-%m-%d")
    value = f"revoked {said.reason or 'unspecified'} {day}"
    kept = {k: v for k, v in cert.tags.items() if k.strip().lower() != cert_tags.WARNED}
    kv.update_tags(cert.name, cert.version, kept | {cert_tags.REVOCATION: value})
