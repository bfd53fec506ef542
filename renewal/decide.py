"""The one decision: what happens to a certificate now, who does it, and who is told.

Modelled on cert-manager's policies: everything gathered in one ``Input`` (the request, the certificate's
``Facts``, the renewal's record and Key Vault's pending operation when the caller read them, the CA's renewal
window, settings, clock), and one chain of named checks, each returning ``None`` (carry on) or a ``Verdict``
with a stable ``Reason``. Every caller interprets the same verdict: the workflow acts on it, the sweep queues
or warns by it, and ``certlc status``, ``renew --dry-run``, the snapshot rows, the dashboard and the workbook
show it (``plan``), so they cannot disagree about a certificate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from renewal import tags as cert_tags
from renewal.canary import CanarySettings, canary_every
from renewal.messages import NEW_KEY_TRIGGERS, RenewalRequest
from renewal.vaults import Vault, is_valid_object_name
from renewal.x509info import adcs_template, load_certificate

if TYPE_CHECKING:
    from renewal.ca.acme_ari import RenewalWindow
    from renewal.keyvault import CertificateSnapshot, PendingOperation
    from renewal.ledger import RenewalRecord
    from renewal.revocation import RevocationStatus

Outcome = Literal["renew", "skip", "wait", "reject", "fail"]
RenewedBy = Literal["certlc", "keyvault", "opted_out", "disabled", "nobody"]
Tell = Literal["nobody", "owners", "escalate"]  # the sweep's daily notice: none, to the owners, or urgent
UNKNOWN_ISSUER = "unknown"
SELF_ISSUED = "self"


class Reason(StrEnum):
    """Every reason the chain gives: audit records, alerts, the snapshot's RenewalPlan and the workbook use it."""

    VAULT_NOT_ALLOWED = "vault_not_allowed"
    INVALID_NAME = "invalid_name"
    NOT_FOUND = "not_found"
    DISABLED = "disabled"
    OPTED_OUT = "opted_out"
    KEYVAULT_AUTO_RENEW = "keyvault_auto_renew"
    UNCOVERED = "uncovered"
    SUPERSEDED = "superseded"
    FAILED_BEFORE = "failed_before"
    NO_EXPIRY = "no_expiry"
    IN_FLIGHT = "in_flight"
    ORPHANED_PENDING_OPERATION = "orphaned_pending_operation"
    RESUMED = "resumed"
    SCHEDULED = "scheduled"
    ARI_SCHEDULED = "ari_scheduled"
    CANARY_SCHEDULED = "canary"
    TOO_MANY_TAGS = "too_many_tags"
    NO_PROFILE = "no_profile"
    DUE = "due"
    ARI_DUE = "ari_due"
    CANARY_DUE = "canary_due"
    FORCED = "forced"  # certlc renew --force, before it is due
    COMPROMISE = "compromise"  # certlc renew --compromise: now, whatever its dates
    COMPROMISE_UNFINISHED = "compromise_unfinished"  # merged with a new key; the old one not yet revoked and disabled
    REVOKED = "revoked"  # its CA revoked it (its OCSP responder or CRL says so): renewed now with a new key


@dataclass(frozen=True)
class WindowSettings:
    """When a certificate is due, when people hear about one nobody renews, and the default CA/profile."""

    lifetime_fraction: float = 1 / 3
    renew_before: timedelta = timedelta(days=30)
    escalate_within: timedelta = timedelta(days=7)
    default_ca: str = "local"
    default_profile: str | None = None
    warn_within: timedelta = timedelta(days=30)  # CERTLC_WARN_DAYS: daily notices for what nobody renews


@dataclass(frozen=True)
class Facts:
    """What the decision needs about a certificate's current (last good) version: from one GET
    (``facts_of``) or from a listing and cached details (``ingestion.rows``), so both decide alike."""

    vault: str
    name: str
    version: str
    enabled: bool
    not_before: datetime | None
    expires_on: datetime | None
    tags: Mapping[str, str] = field(default_factory=dict)
    policy_issuer: str = ""  # "Unknown" for CAs Key Vault does not integrate with
    auto_renew: bool = False  # the policy has an AutoRenew lifetime action
    canary_every: timedelta | None = None  # a canary is renewed this often even when not due
    template: str | None = None  # the AD CS template the certificate names, a profile of last resort


def facts_of(cert: CertificateSnapshot, canary: CanarySettings | None = None) -> Facts:
    """The facts of a certificate read whole (``KeyVault.current``)."""
    return Facts(
        vault=cert.vault,
        name=cert.name,
        version=cert.version,
        enabled=cert.enabled,
        not_before=cert.not_before,
        expires_on=cert.expires_on,
        tags=dict(cert.tags),
        policy_issuer=cert.issuer_name or "",
        auto_renew=has_auto_renew(cert.policy),
        canary_every=canary_every(canary or CanarySettings(), cert.vault, cert.name, cert.tags),
        template=template_of(cert.cer),
    )


@dataclass(frozen=True)
class Input:
    request: RenewalRequest
    allowed_vaults: Mapping[str, Vault]
    certificate: Facts | None
    now: datetime
    settings: WindowSettings
    renewal_window: RenewalWindow | None = None  # the ACME CA's suggested window (RFC 9773), None when unknown
    record: RenewalRecord | None = None  # the renewal's record, when the caller read it
    pending: PendingOperation | None = None  # Key Vault's pending operation, when the caller read it
    holds_lock: bool = False  # the workflow reads the record under the lock: a "working" record's owner is gone
    revocation: RevocationStatus | None = None  # what its CA says of the current version, when the caller asked


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: Reason
    message: str  # what happens and, for failures, what to do
    renewed_by: RenewedBy = "certlc"
    next_renewal: datetime | None = None  # when certlc renews it (in the past: due now)
    tell: Tell = "nobody"  # whom the sweep tells today; a renewal's own outcome is told by the workflow
    ca: str | None = None
    profile: str | None = None
    renewal_window: RenewalWindow | None = None  # a renewal by ACME names what it replaces, and ARI's explanation

    @property
    def uncovered(self) -> bool:
        """Nobody renews it and nobody decided that: what the coverage count and alert list."""
        return self.renewed_by == "nobody"


Check = Callable[[Input], Verdict | None]


def vault_is_allowed(given: Input) -> Verdict | None:
    if given.request.vault.lower() not in given.allowed_vaults:
        return Verdict(
            "reject",
            Reason.VAULT_NOT_ALLOWED,
            f"vault {given.request.vault!r} is not in CERTLC_VAULTS; add it there if certlc should manage it",
            renewed_by="nobody",
        )
    return None


def name_is_valid(given: Input) -> Verdict | None:
    if not is_valid_object_name(given.request.name):
        return Verdict(
            "reject",
            Reason.INVALID_NAME,
            f"{given.request.name!r} is not a valid Key Vault certificate name (1-127 of 0-9, a-z, A-Z, -)",
            renewed_by="nobody",
        )
    return None


def certificate_exists(given: Input) -> Verdict | None:
    if given.certificate is None:
        return Verdict(
            "skip",
            Reason.NOT_FOUND,
            f"certificate {given.request.name!r} does not exist in {given.request.vault!r}",
            renewed_by="nobody",
        )
    return None


def certificate_is_enabled(given: Input) -> Verdict | None:
    if not _cert(given).enabled:
        return Verdict(
            "skip",
            Reason.DISABLED,
            "disabled in Key Vault: nothing renews it until it is enabled",
            renewed_by="disabled",
        )
    return None


def not_opted_out(given: Input) -> Verdict | None:
    if cert_tags.is_false(cert_tags.tag(_cert(given).tags, cert_tags.RENEW)):
        return Verdict(
            "skip",
            Reason.OPTED_OUT,
            f"tag {cert_tags.RENEW}=false: certlc leaves it alone on purpose",
            renewed_by="opted_out",
            tell=_notice(given),
        )
    return None


def renewed_by_certlc(given: Input) -> Verdict | None:
    """Otherwise Key Vault renews it itself (an AutoRenew action with an issuer it integrates with), or nobody."""
    cert = _cert(given)
    if cert_tags.is_managed(cert.policy_issuer, cert.tags):
        return None
    issuer = cert.policy_issuer.strip()
    if cert.auto_renew and issuer.lower() not in ("", UNKNOWN_ISSUER):
        who = "a self-signed policy" if issuer.lower() == SELF_ISSUED else f"issuer {issuer!r}"
        return Verdict(
            "skip", Reason.KEYVAULT_AUTO_RENEW, f"Key Vault renews it itself ({who}, AutoRenew)", renewed_by="keyvault"
        )
    return Verdict(
        "skip",
        Reason.UNCOVERED,
        f"nobody renews it: issuer {issuer or 'none'!r} without an AutoRenew lifetime action, not managed by certlc; "
        f"add an AutoRenew action, tag {cert_tags.MANAGED}=true, or tag {cert_tags.RENEW}=false if that is on purpose",
        renewed_by="nobody",
        tell=_notice(given),
    )


def event_is_current(given: Input) -> Verdict | None:
    cert = _cert(given)
    version = given.request.version
    if version and version.strip().lower() != cert.version.lower():
        return Verdict(
            "skip", Reason.SUPERSEDED, f"the request is about version {version}, already replaced by {cert.version}"
        )
    return None


AUTOMATIC_TRIGGERS = frozenset({"sweep", "canary", "near_expiry", "expired"})


def not_failed_before(given: Input) -> Verdict | None:
    """A permanently failed version is left alone until an operator re-drives it (``certlc failed retry`` sends
    a manual request): another event or the sweep would only ask the CA again and alert again. Its owners hear
    about it daily as it nears expiry."""
    cert = _cert(given)
    outcome = cert_tags.tag(cert.tags, cert_tags.LAST_OUTCOME) or ""
    if given.request.trigger in AUTOMATIC_TRIGGERS and not given.request.force and outcome.startswith("failed"):
        return Verdict(
            "skip",
            Reason.FAILED_BEFORE,
            f"the last renewal failed permanently ({outcome}); fix it, then `certlc failed retry`",
            tell=_notice(given),
        )
    return None


def renewal_in_flight(given: Input) -> Verdict | None:
    """Another renewal owns this version. Under the lock (the workflow) only a record its owner let go of on purpose
    and is not late for counts; without it (the sweep, the status) any record not late does. Close to expiry, a
    renewal still in flight is a case for a person."""
    record, cert = given.record, _cert(given)
    if record is None or record.version != cert.version or record.owner == given.request.correlation_id:
        return None
    live = record.owner_will_return(given.now) if given.holds_lock else record.is_live(given.now)
    if not live:
        return None
    stuck = _expires_within(given, given.settings.escalate_within)
    return Verdict(
        "wait",
        Reason.IN_FLIGHT,
        f"renewal {record.owner} is in flight ({record.state}, next step at {record.next_action_at:%Y-%m-%d %H:%M}Z); "
        "it will finish this one",
        tell="escalate" if stuck else "nobody",
    )


def compromise_unfinished(given: Input) -> Verdict | None:
    """A compromise renewal merged its new key but did not finish (``renewal.compromise``): whoever comes next revokes
    and disables the old version instead of renewing again, whatever the trigger."""
    cert = _cert(given)
    value = cert_tags.tag(cert.tags, cert_tags.COMPROMISED)
    if not value:
        return None
    old = value.split(" ", 1)[0]
    return Verdict(
        "renew",
        Reason.COMPROMISE_UNFINISHED,
        f"renewed with a new key; its compromised version {old} is not yet revoked and disabled: certlc finishes that",
        ca=ca_of(cert.tags, given.settings),
    )


def not_revoked(given: Input) -> Verdict | None:
    """A certificate its CA revoked is renewed now with a new key (trigger ``revoked``), whatever its dates: clients
    that check revocation already refuse it. Only what the CA's own OCSP responder or CRL said counts."""
    status = given.revocation
    if status is None or status.state != "revoked":
        return None
    when = f" on {status.revoked_at:%Y-%m-%d}" if status.revoked_at else ""
    why = f"its CA revoked it{when} ({status.reason or 'no reason given'}; {status.source})"
    return _renewing(given, Reason.REVOKED, why)


def pending_operation_under_way(given: Input) -> Verdict | None:
    """A pending operation in progress goes on, due or not: this renewal's own from an earlier attempt (the request
    names it, as ``renewal.pending`` reads it), or one no live renewal owns (an interrupted ``certlc renew``, a dead
    instance, one made by hand), taken over with its CSR, so nothing shows "renewal pending" for weeks."""
    pending = given.pending
    if pending is None or pending.status != "inprogress":
        return None
    if pending.request_id is not None and pending.request_id == given.request.kv_request_id:
        return _renewing(given, Reason.RESUMED, "its pending operation from an earlier attempt goes on")
    return _renewing(given, Reason.ORPHANED_PENDING_OPERATION, "a pending operation nobody owns is taken over")


def certificate_is_due(given: Input) -> Verdict | None:
    """Forced and compromise renewals are always due; a canary request for the version it names is due (its
    schedule was the sweep's). Otherwise due from the earliest of the normal window's start, the ACME CA's ARI
    moment and a canary's schedule."""
    if given.request.force or given.request.trigger in NEW_KEY_TRIGGERS:
        return None
    if given.request.trigger == "canary" and given.request.version:
        return None
    if _cert(given).expires_on is None:
        return Verdict("skip", Reason.NO_EXPIRY, "no expiry date: nothing to renew")
    when, reason = next_renewal(given)
    if when <= given.now:
        return None
    what = {
        Reason.SCHEDULED: "renews it",
        Reason.ARI_SCHEDULED: "renews it early, in the window its ACME CA suggests (ARI)",
        Reason.CANARY_SCHEDULED: "renews the canary",
    }[reason]
    return Verdict("skip", reason, f"certlc {what} on {when:%Y-%m-%d} UTC", next_renewal=when)


def tags_fit_key_vault(given: Input) -> Verdict | None:
    """A version that could not be merged must not be started: its pending operation would be left behind."""
    problem = cert_tags.tags_over_limits(_cert(given).tags)
    if problem:
        return Verdict("fail", Reason.TOO_MANY_TAGS, f"it cannot be renewed as it is: {problem}")
    return None


def resolve_profile(given: Input) -> Verdict:
    if given.request.trigger == "compromise":
        return _renewing(given, Reason.COMPROMISE, "its key may be exposed: renewed now, whatever its dates")
    if given.request.trigger == "revoked":
        return _renewing(given, Reason.REVOKED, "its CA revoked it: renewed now with a new key, whatever its dates")
    when, reason = next_renewal(given) if _cert(given).expires_on is not None else (None, Reason.SCHEDULED)
    if given.request.force and when is not None and when > given.now:
        return _renewing(given, Reason.FORCED, f"forced (not due before {when:%Y-%m-%d} UTC)")
    due = {
        Reason.SCHEDULED: Reason.DUE,
        Reason.ARI_SCHEDULED: Reason.ARI_DUE,
        Reason.CANARY_SCHEDULED: Reason.CANARY_DUE,
    }
    why = {
        Reason.DUE: "due now",
        Reason.ARI_DUE: "due now, early, inside the CA's renewal window (ARI)",
        Reason.CANARY_DUE: "due now, the canary's scheduled renewal",
    }
    return _renewing(given, due[reason], why[due[reason]])


def _renewing(given: Input, reason: Reason, why: str) -> Verdict:
    cert = _cert(given)
    ca = ca_of(cert.tags, given.settings)
    profile = (
        given.request.ca_profile
        or cert_tags.tag(cert.tags, cert_tags.PROFILE)
        or cert.template
        or given.settings.default_profile
    )
    if not profile:
        return Verdict(
            "fail",
            Reason.NO_PROFILE,
            f"no CA profile for {cert.name!r}: set tag {cert_tags.PROFILE} or CERTLC_CA_PROFILE",
            ca=ca,
        )
    when = next_renewal(given)[0] if cert.expires_on is not None else None
    return Verdict(
        "renew",
        reason,
        f"{why}: certlc renews it with CA {ca!r}, profile {profile!r}",
        next_renewal=when,
        ca=ca,
        profile=profile,
        renewal_window=given.renewal_window,
    )


REQUEST_CHECKS: tuple[Check, ...] = (vault_is_allowed, name_is_valid)
CERTIFICATE_CHECKS: tuple[Check, ...] = (
    certificate_exists,
    certificate_is_enabled,
    not_opted_out,
    renewed_by_certlc,
    event_is_current,
    not_failed_before,
    renewal_in_flight,
    compromise_unfinished,
    not_revoked,
    pending_operation_under_way,
    certificate_is_due,
    tags_fit_key_vault,
)


def check_request(given: Input) -> Verdict | None:
    """The checks that need no Key Vault call: they run before anything is gathered."""
    return _first(REQUEST_CHECKS, given)


def decide(given: Input) -> Verdict:
    return _first(REQUEST_CHECKS + CERTIFICATE_CHECKS, given) or resolve_profile(given)


def plan(
    facts: Facts,
    now: datetime,
    settings: WindowSettings,
    renewal_window: RenewalWindow | None = None,
    record: RenewalRecord | None = None,
    pending: PendingOperation | None = None,
    revocation: RevocationStatus | None = None,
) -> Verdict:
    """What the sweep decides for this certificate now: the answer ``certlc status``, the snapshot rows, the
    dashboard and the workbook show (the vault is one the caller listed, so allowed)."""
    request = RenewalRequest(vault=facts.vault, name=facts.name, trigger="sweep", version=facts.version or None)
    allowed = {facts.vault.lower(): Vault(facts.vault, "")}
    return decide(Input(request, allowed, facts, now, settings, renewal_window, record, pending, revocation=revocation))


def renewal_threshold(
    not_before: datetime | None, expires_on: datetime | None, tags: Mapping[str, str], settings: WindowSettings
) -> timedelta:
    """How long before expiry a certificate becomes due: a tag, else the larger of 1/3 lifetime and 30 days."""
    override = cert_tags.tag(tags, cert_tags.RENEW_BEFORE_DAYS)
    if override and override.isdigit():
        return timedelta(days=int(override))
    by_lifetime = timedelta(0)
    if not_before and expires_on:
        by_lifetime = (expires_on - not_before) * settings.lifetime_fraction
    return max(by_lifetime, settings.renew_before)


def ca_of(tags: Mapping[str, str], settings: WindowSettings) -> str:
    """The CA adapter that renews a certificate: tag ``certlc-ca``, else ``CERTLC_CA``."""
    return cert_tags.tag(tags, cert_tags.CA) or settings.default_ca


def renewal_due_on(
    not_before: datetime | None,
    expires_on: datetime,
    tags: Mapping[str, str],
    settings: WindowSettings,
    window: RenewalWindow | None,
) -> datetime:
    """When a certificate becomes due: the normal window's start, or the CA's ARI moment if that comes first (ARI
    only brings a renewal forward, e.g. ahead of a mass revocation; a later suggestion leaves the normal window)."""
    due_on = expires_on - renewal_threshold(not_before, expires_on, tags, settings)
    return min(due_on, window.renew_at) if window is not None else due_on


def next_renewal(given: Input) -> tuple[datetime, Reason]:
    """When certlc renews it next and why then: the normal window, the ACME CA's ARI moment, or a canary's
    schedule, whichever comes first."""
    cert, window = _cert(given), given.renewal_window
    assert cert.expires_on is not None
    when = renewal_due_on(cert.not_before, cert.expires_on, cert.tags, given.settings, window)
    reason = Reason.ARI_SCHEDULED if window is not None and when == window.renew_at else Reason.SCHEDULED
    if cert.canary_every is not None and cert.not_before is not None and cert.not_before + cert.canary_every < when:
        return cert.not_before + cert.canary_every, Reason.CANARY_SCHEDULED
    return when, reason


def is_within_escalation(cert: CertificateSnapshot | Facts, now: datetime, settings: WindowSettings) -> bool:
    return cert.expires_on is not None and cert.expires_on - now <= settings.escalate_within


def has_auto_renew(policy: object | None) -> bool:
    """Whether an SDK ``CertificatePolicy`` has an ``AutoRenew`` lifetime action (compared by value, so the
    enum and the wire string both work)."""
    for action in getattr(policy, "lifetime_actions", None) or ():
        kind = getattr(action, "action", None)
        if str(getattr(kind, "value", kind) or "").lower() == "autorenew":
            return True
    return False


def template_of(cer: bytes | None) -> str | None:
    """The AD CS template a certificate names (its renewal uses the same one when no profile is set)."""
    if not cer:
        return None
    try:
        return adcs_template(load_certificate(cer))
    except ValueError:
        return None


def _notice(given: Input) -> Tell:
    """A certificate nobody will renew: its owners are told daily from ``warn_within``, urgently from
    ``escalate_within`` (the seeds' daily notice, until a newer version exists)."""
    if _expires_within(given, given.settings.escalate_within):
        return "escalate"
    return "owners" if _expires_within(given, given.settings.warn_within) else "nobody"


def _expires_within(given: Input, span: timedelta) -> bool:
    expires = _cert(given).expires_on
    return expires is not None and expires - given.now <= span


def _cert(given: Input) -> Facts:
    assert given.certificate is not None  # certificate_exists runs first
    return given.certificate


def _first(checks: tuple[Check, ...], given: Input) -> Verdict | None:
    for check in checks:
        verdict = check(given)
        if verdict is not None:
            return verdict
    return None
