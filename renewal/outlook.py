"""What will happen to a certificate: who renews it, when certlc will, and whether nobody will.

The status command, the dashboard, the workbook and the coverage alert all answer "what happens next" from
this one chain, in the shape of ``renewal.decide``: gathered facts in one ``Facts``, a chain of named checks
that each return ``None`` (carry on) or an ``Outlook`` with a stable reason. The dates come from the same
threshold the renewal decision uses, so the date shown is the date the sweep acts.

Coverage, the renewal guides' first habit ("one missed certificate causes the outage"): a certificate is
*uncovered* when certlc does not manage it, Key Vault does not renew it itself (an ``AutoRenew`` lifetime
action with an integrated issuer) and nobody opted it out on purpose (``certlc-renew=false``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from renewal import tags as cert_tags
from renewal.canary import CanarySettings, canary_every
from renewal.decide import WindowSettings, renewal_due_on
from renewal.keyvault import CertificateSnapshot

if TYPE_CHECKING:
    from renewal.ca.acme_ari import RenewalWindow

RenewedBy = Literal["certlc", "keyvault", "opted_out", "disabled", "nobody"]
SELF_ISSUED = "self"
UNKNOWN_ISSUER = "unknown"


@dataclass(frozen=True)
class Facts:
    """What the listing and the policy say about a certificate's current (last good) version."""

    name: str
    enabled: bool
    not_before: datetime | None
    expires_on: datetime | None
    tags: Mapping[str, str] = field(default_factory=dict)
    policy_issuer: str = ""  # the policy's issuer name: "Unknown" for CAs Key Vault does not integrate with
    auto_renew: bool = False  # the policy has an AutoRenew lifetime action
    canary_every: timedelta | None = None  # a canary is renewed this often even when not due
    renewal_window: RenewalWindow | None = None  # the ACME CA's suggested window (RFC 9773), when known


@dataclass(frozen=True)
class Outlook:
    renewed_by: RenewedBy
    reason: str  # stable code for the dashboard, the workbook and alerts
    message: str  # one line an operator can act on
    next_renewal: datetime | None = None  # when certlc renews it (in the past: due now, the next sweep acts)

    @property
    def managed(self) -> bool:
        return self.renewed_by == "certlc"

    @property
    def uncovered(self) -> bool:
        """Nobody renews it and nobody decided that: the certificate the coverage count and alert list."""
        return self.renewed_by == "nobody"


Check = Callable[[Facts, datetime, WindowSettings], "Outlook | None"]


def disabled(facts: Facts, now: datetime, settings: WindowSettings) -> Outlook | None:
    if not facts.enabled:
        return Outlook("disabled", "disabled", "disabled in Key Vault: nothing renews it until it is enabled")
    return None


def opted_out(facts: Facts, now: datetime, settings: WindowSettings) -> Outlook | None:
    if cert_tags.is_false(cert_tags.tag(facts.tags, cert_tags.RENEW)):
        return Outlook("opted_out", "opted_out", f"tag {cert_tags.RENEW}=false: certlc leaves it alone on purpose")
    return None


def renewed_by_certlc(facts: Facts, now: datetime, settings: WindowSettings) -> Outlook | None:
    if not cert_tags.is_managed(facts.policy_issuer, facts.tags):
        return None
    outcome = cert_tags.tag(facts.tags, cert_tags.LAST_OUTCOME) or ""
    if outcome.startswith("failed"):
        return Outlook("certlc", "failed", f"the last renewal failed ({outcome}); fix it, then `certlc failed retry`")
    if facts.expires_on is None:
        return Outlook("certlc", "no_expiry", "no expiry date: nothing to renew")
    when = renewal_due_on(facts.not_before, facts.expires_on, facts.tags, settings, facts.renewal_window)
    reason = "due" if when <= now else "scheduled"
    if facts.renewal_window is not None and when == facts.renewal_window.renew_at:
        reason = "ari_due" if when <= now else "ari_scheduled"
    if facts.canary_every is not None and facts.not_before is not None and facts.not_before + facts.canary_every < when:
        when = facts.not_before + facts.canary_every
        reason = "canary_due" if when <= now else "canary"
    what = "renews the canary" if reason.startswith("canary") else "renews it"
    if reason.startswith("ari"):
        what += " early, in the window its ACME CA suggests (ARI)"
    if when <= now:
        return Outlook("certlc", reason, f"due now: the next sweep {what}", when)
    return Outlook("certlc", reason, f"certlc {what} on {when:%Y-%m-%d} UTC", when)


def renewed_by_key_vault(facts: Facts, now: datetime, settings: WindowSettings) -> Outlook | None:
    issuer = facts.policy_issuer.strip().lower()
    if facts.auto_renew and issuer not in ("", UNKNOWN_ISSUER):
        who = "a self-signed policy" if issuer == SELF_ISSUED else f"issuer {facts.policy_issuer.strip()!r}"
        return Outlook("keyvault", "keyvault_auto_renew", f"Key Vault renews it itself ({who}, AutoRenew)")
    return None


def nobody(facts: Facts, now: datetime, settings: WindowSettings) -> Outlook:
    issuer = facts.policy_issuer.strip() or "none"
    return Outlook(
        "nobody",
        "uncovered",
        f"nobody renews it: issuer {issuer!r} without an AutoRenew lifetime action, not managed by certlc; "
        f"add an AutoRenew action, tag {cert_tags.MANAGED}=true, or tag {cert_tags.RENEW}=false if that is on purpose",
    )


CHECKS: tuple[Check, ...] = (disabled, opted_out, renewed_by_certlc, renewed_by_key_vault)


def outlook(facts: Facts, now: datetime, settings: WindowSettings) -> Outlook:
    for check in CHECKS:
        found = check(facts, now, settings)
        if found is not None:
            return found
    return nobody(facts, now, settings)


def facts_of(cert: CertificateSnapshot, canary: CanarySettings, renewal_window: RenewalWindow | None = None) -> Facts:
    """The facts of a certificate read whole (``KeyVault.current``): what ``certlc status NAME`` shows, with the
    ACME CA's suggested window when the caller gathered it (``renewal.ca.acme_ari.renewal_window``)."""
    return Facts(
        name=cert.name,
        enabled=cert.enabled,
        not_before=cert.not_before,
        expires_on=cert.expires_on,
        tags=dict(cert.tags),
        policy_issuer=cert.issuer_name or "",
        auto_renew=has_auto_renew(cert.policy),
        canary_every=canary_every(canary, cert.vault, cert.name, cert.tags),
        renewal_window=renewal_window,
    )


def has_auto_renew(policy: object | None) -> bool:
    """Whether an SDK ``CertificatePolicy`` has an ``AutoRenew`` lifetime action (compared by value, so the
    enum and the wire string both work)."""
    for action in getattr(policy, "lifetime_actions", None) or ():
        kind = getattr(action, "action", None)
        if str(getattr(kind, "value", kind) or "").lower() == "autorenew":
            return True
    return False
