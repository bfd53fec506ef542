"""The safety net: find due certificates that nothing is renewing and queue them; warn daily.

Event Grid only fires for versions created after the subscription existed and a delivery
can be lost, so the sweep lists every allow-listed vault and decides on its own. Retries
need no re-driving here: each is a queue message with a visibility delay, so the queue
re-drives it when its back-off has elapsed.
Key Vault cost: the list pages, plus a GET and a pending check only for certificates
inside their renewal window.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from renewal import tags as T
from renewal.decide import Input, WindowSettings, decide, is_within_escalation, renewal_threshold
from renewal.keyvault import CertificateSnapshot, CertificateSummary, KeyVault, KeyVaultError
from renewal.messages import RenewalRequest
from renewal.vaults import Vault

log = logging.getLogger("certlc.sweep")


@dataclass
class SweepReport:
    enqueued: list[str] = field(default_factory=list)
    in_flight: list[str] = field(default_factory=list)
    warned: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def inside_window(summary: CertificateSummary, now: datetime, settings: WindowSettings) -> bool:
    """Cheap pre-filter on listing data; the full decision chain runs on the GET that follows."""
    if not summary.enabled or summary.expires_on is None:
        return False
    probe = CertificateSnapshot(
        "",
        summary.name,
        summary.version or "",
        True,
        summary.not_before,
        summary.expires_on,
        None,
        summary.tags,
        None,
        None,
    )
    return summary.expires_on - now <= renewal_threshold(probe, settings)


def sweep(
    vaults: dict[str, Vault],
    keyvault_for: Callable[[Vault], KeyVault],
    enqueue: Callable[[RenewalRequest], None],
    warn: Callable[..., None],
    settings: WindowSettings,
    now: datetime,
) -> SweepReport:
    report = SweepReport()
    for vault in vaults.values():
        kv = keyvault_for(vault)
        try:
            candidates = [s for s in kv.list() if inside_window(s, now, settings)]
        except KeyVaultError as exc:
            report.errors[vault.name] = str(exc)
            continue
        for summary in candidates:
            key = f"{vault.name}/{summary.name}"
            try:
                _sweep_one(kv, vault, summary, enqueue, warn, settings, now, report, key)
            except KeyVaultError as exc:
                report.errors[key] = str(exc)
    return report


def _sweep_one(
    kv: KeyVault,
    vault: Vault,
    summary: CertificateSummary,
    enqueue: Callable[[RenewalRequest], None],
    warn: Callable[..., None],
    settings: WindowSettings,
    now: datetime,
    report: SweepReport,
    key: str,
) -> None:
    cert = kv.get(summary.name)
    request = RenewalRequest(
        vault=vault.name, name=summary.name, reason="sweep", version=cert.version if cert else None
    )
    verdict = decide(Input(request, {vault.name.lower(): vault}, cert, now, settings))
    if verdict.outcome == "skip":
        report.skipped[key] = verdict.reason
        if verdict.reason != "failed_before":
            return
    else:
        pending = kv.get_pending(summary.name)
        if pending is not None and pending.status == "inprogress":
            report.in_flight.append(key)
        else:
            enqueue(request)
            report.enqueued.append(key)
    assert cert is not None
    if _warning_due(cert, now, settings):
        days = max(0, (cert.expires_on - now).days) if cert.expires_on else 0
        warn(cert, days, escalate=is_within_escalation(cert, now, settings))
        kv.update_tags(cert.name, cert.version, {**cert.tags, T.WARNED: now.strftime("%Y-%m-%d")})
        report.warned.append(key)


def _warning_due(cert: CertificateSnapshot, now: datetime, settings: WindowSettings) -> bool:
    """Inside the last 30 days, once per UTC day, remembered in a tag so every sweep instance agrees."""
    close = cert.expires_on is not None and cert.expires_on - now <= settings.renew_before
    return close and T.tag(cert.tags, T.WARNED) != now.strftime("%Y-%m-%d")
