"""The safety net: find due certificates that nothing is renewing and queue them; warn where nobody renews.

Event Grid only fires for versions created after the subscription existed and a delivery
can be lost, so the sweep lists every allow-listed vault and decides on its own. Retries
need no re-driving here: each is a queue message with a visibility delay, so the queue
re-drives it when its back-off has elapsed. A pending operation that no live renewal owns
(its owner died, or it was started by hand) is an orphan: the sweep queues a renewal that
takes it over, reusing its CSR.

Gather → decide → act: per certificate the sweep gathers the certificate, the renewal's
record (``renewal.ledger``, read without the lock) and the pending operation, and
:func:`sweep_action` decides, with a reason, in the shape of ``renewal.decide``.
Key Vault cost: the list pages, plus a GET and a pending check only for certificates
inside their renewal window, and for canaries (``renewal.canary``) whose scheduled renewal has come.

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
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from renewal import tags as cert_tags
from renewal.ca.acme_ari import may_be_due, renewal_window
from renewal.canary import CanarySettings, canary_every
from renewal.decide import Input, Verdict, WindowSettings, ca_of, decide, is_within_escalation, renewal_threshold
from renewal.keyvault import (
    CertificateSnapshot,
    CertificateSummary,
    KeyVault,
    KeyVaultError,
    PendingOperation,
    is_placeholder,
)
from renewal.ledger import RenewalRecord
from renewal.messages import RenewalRequest
from renewal.vaults import Vault

log = logging.getLogger("certlc.sweep")

Action = Literal["enqueue", "take_over", "in_flight", "leave"]


@dataclass(frozen=True)
class SweepDecision:
    """What the sweep does with one certificate, why, and whether someone must be told it is expiring."""

    action: Action
    reason: str
    warn: bool = False


@dataclass(frozen=True)
class SweepInput:
    cert: CertificateSnapshot
    verdict: Verdict
    record: RenewalRecord | None  # the renewal's record, if any (read without the lock)
    pending: PendingOperation | None
    now: datetime
    settings: WindowSettings

    @property
    def live_record(self) -> RenewalRecord | None:
        record = self.record
        return record if record and record.version == self.cert.version and record.is_live(self.now) else None

    @property
    def in_progress(self) -> bool:
        return self.pending is not None and self.pending.status == "inprogress"


def _warning_due(given: SweepInput) -> bool:
    """Inside the last 30 days, once per UTC day, remembered in a tag so every sweep instance agrees."""
    cert = given.cert
    close = cert.expires_on is not None and cert.expires_on - given.now <= given.settings.renew_before
    return close and cert_tags.tag(cert.tags, cert_tags.WARNED) != given.now.strftime("%Y-%m-%d")


def nobody_will_renew(given: SweepInput) -> SweepDecision | None:
    """Skipped for good (a permanent failure nobody has re-driven): warn daily, queue nothing."""
    if given.verdict.outcome == "skip" and given.verdict.reason == "failed_before":
        return SweepDecision("leave", "failed_before", warn=_warning_due(given))
    return None


def not_ours_to_renew(given: SweepInput) -> SweepDecision | None:
    """Skipped (not due, opted out, not certlc's...): nothing to queue. A ``fail`` verdict (no CA profile, too many
    tags) is not left here: queued like a due one, it ends as the workflow's permanent failure with its alert, as
    its Event Grid event would have; left, a certificate whose event was lost expired with nobody told."""
    if given.verdict.outcome == "skip":
        return SweepDecision("leave", given.verdict.reason)
    return None


def renewal_in_flight(given: SweepInput) -> SweepDecision | None:
    """A live renewal owns it; it stays quiet unless it is close enough to expiry to need a person."""
    if given.live_record is not None:
        stuck = is_within_escalation(given.cert, given.now, given.settings) and _warning_due(given)
        return SweepDecision("in_flight", f"renewal {given.live_record.owner} is {given.live_record.state}", warn=stuck)
    return None


def orphaned_pending_operation(given: SweepInput) -> SweepDecision | None:
    """A pending operation no live renewal owns: queue a renewal that takes it over (its CSR is reused)."""
    if given.in_progress:
        return SweepDecision("take_over", "orphaned_pending_operation")
    return None


def due_and_nobody_on_it(given: SweepInput) -> SweepDecision:
    return SweepDecision("enqueue", given.verdict.reason)


SWEEP_CHECKS = (nobody_will_renew, not_ours_to_renew, renewal_in_flight, orphaned_pending_operation)


def sweep_action(given: SweepInput) -> SweepDecision:
    """The first check that decides, else queue a renewal."""
    for check in SWEEP_CHECKS:
        decision = check(given)
        if decision is not None:
            return decision
    return due_and_nobody_on_it(given)


@dataclass
class SweepReport:
    enqueued: list[str] = field(default_factory=list)
    taken_over: list[str] = field(default_factory=list)
    in_flight: list[str] = field(default_factory=list)
    warned: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def canary_is_due(
    vault: str, cert: CertificateSummary | CertificateSnapshot, now: datetime, canary: CanarySettings
) -> bool:
    """A canary's scheduled renewal has come (``not_before + every``, the canary's next renewal in
    ``renewal.outlook``), whether or not the certificate is due."""
    every = canary_every(canary, vault, cert.name, cert.tags)
    return every is not None and cert.not_before is not None and cert.not_before + every <= now


def sweep_trigger(vault: str, cert: CertificateSnapshot, now: datetime, canary: CanarySettings) -> str:
    """What the sweep's request says started it: ``canary`` skips the due check for the version it names."""
    return "canary" if canary_is_due(vault, cert, now, canary) else "sweep"


def inside_window(
    vault: str, summary: CertificateSummary, now: datetime, settings: WindowSettings, canary: CanarySettings
) -> bool:
    """Cheap pre-filter on listing data; the full decision chain runs on the GET that follows.

    A listing that shows a pending create's placeholder says nothing about the certificate's dates, so it is
    always looked at: it may be a renewal in flight, or an orphan to take over. A canary whose scheduled
    renewal has come is looked at too.
    """
    if is_placeholder(summary):
        return True
    if not summary.enabled or summary.expires_on is None:
        return False
    threshold = renewal_threshold(summary.not_before, summary.expires_on, summary.tags, settings)
    return summary.expires_on - now <= threshold or canary_is_due(vault, summary, now, canary)


def sweep(
    vaults: dict[str, Vault],
    keyvault_for: Callable[[Vault], KeyVault],
    enqueue: Callable[[RenewalRequest], None],
    warn: Callable[..., None],
    settings: WindowSettings,
    now: datetime,
    peek: Callable[[str, str], RenewalRecord | None],
    canary: CanarySettings,
    ca_for: Callable[[str], Any] | None = None,
) -> SweepReport:
    """``ca_for`` (the workflow's CA adapters) lets the sweep ask an ACME CA's renewalInfo; without it, no ARI."""
    report = SweepReport()
    for vault in vaults.values():
        kv = keyvault_for(vault)
        try:
            candidates = [
                s
                for s in kv.list()
                if inside_window(vault.name, s, now, settings, canary)
                or (ca_for is not None and may_be_due(vault.name, s, ca_of(s.tags, settings), ca_for, now))
            ]
        except KeyVaultError as exc:
            report.errors[vault.name] = str(exc)
            continue
        for summary in candidates:
            key = f"{vault.name}/{summary.name}"
            try:
                _sweep_one(kv, vault, summary, enqueue, warn, settings, now, peek, canary, ca_for, report, key)
            except KeyVaultError as exc:
                report.errors[key] = str(exc)
            except Exception as exc:  # the lock store down: this one waits for the next sweep, the others go on
                report.errors[key] = f"{type(exc).__name__}: {exc}"
    return report


def _sweep_one(
    kv: KeyVault,
    vault: Vault,
    summary: CertificateSummary,
    enqueue: Callable[[RenewalRequest], None],
    warn: Callable[..., None],
    settings: WindowSettings,
    now: datetime,
    peek: Callable[[str, str], RenewalRecord | None],
    canary: CanarySettings,
    ca_for: Callable[[str], Any] | None,
    report: SweepReport,
    key: str,
) -> None:
    cert = kv.current(summary.name)
    if cert is None:
        return
    window = renewal_window(cert, ca_of(cert.tags, settings), ca_for, now) if ca_for is not None else None
    trigger = sweep_trigger(vault.name, cert, now, canary)
    request = RenewalRequest(vault=vault.name, name=summary.name, trigger=trigger, version=cert.version)
    verdict = decide(Input(request, {vault.name.lower(): vault}, cert, now, settings, window))
    renewing = verdict.outcome == "renew"
    decision = sweep_action(
        SweepInput(
            cert,
            verdict,
            peek(vault.name, summary.name) if renewing else None,
            kv.get_pending(summary.name) if renewing else None,
            now,
            settings,
        )
    )
    if decision.action in ("enqueue", "take_over"):
        enqueue(request)
        (report.enqueued if decision.action == "enqueue" else report.taken_over).append(key)
    elif decision.action == "in_flight":
        report.in_flight.append(key)
    else:
        report.skipped[key] = decision.reason
    if decision.warn:
        days = max(0, (cert.expires_on - now).days) if cert.expires_on else 0
        warn(cert, days, escalate=is_within_escalation(cert, now, settings))
        kv.update_tags(cert.name, cert.version, {**cert.tags, cert_tags.WARNED: now.strftime("%Y-%m-%d")})
        report.warned.append(key)
