"""The renewal decision chain: small pure functions, each answering one question with a reason.

Modelled on cert-manager's policies: all state in one ``Input`` (request, certificate,
clock, settings), a chain of named checks that each return ``None`` (carry on) or a
``Verdict`` explaining why the chain stops. ``decide`` runs the chain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from renewal import tags as cert_tags
from renewal.keyvault import CertificateSnapshot
from renewal.messages import RenewalRequest
from renewal.vaults import Vault, is_valid_object_name
from renewal.x509info import adcs_template, load_certificate

if TYPE_CHECKING:
    from renewal.ca.acme_ari import RenewalWindow

Outcome = Literal["renew", "skip", "reject", "fail"]


@dataclass(frozen=True)
class WindowSettings:
    """When a certificate is due, and which CA/profile to use when no tag says otherwise."""

    lifetime_fraction: float = 1 / 3
    renew_before: timedelta = timedelta(days=30)
    escalate_within: timedelta = timedelta(days=7)
    default_ca: str = "local"
    default_profile: str | None = None


@dataclass(frozen=True)
class Input:
    request: RenewalRequest
    allowed_vaults: Mapping[str, Vault]
    certificate: CertificateSnapshot | None
    now: datetime
    settings: WindowSettings
    renewal_window: RenewalWindow | None = None  # the ACME CA's suggested window (RFC 9773), None when unknown


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str  # stable code for audit, alerts and the dashboard
    message: str  # what happened and, for failures, what to do
    ca: str | None = None
    profile: str | None = None
    renewal_window: RenewalWindow | None = None  # a renewal by ACME names what it replaces, and ARI's explanation


Check = Callable[[Input], Verdict | None]


def vault_is_allowed(given: Input) -> Verdict | None:
    if given.request.vault.lower() not in given.allowed_vaults:
        return Verdict(
            "reject",
            "vault_not_allowed",
            f"vault {given.request.vault!r} is not in CERTLC_VAULTS; add it there if certlc should manage it",
        )
    return None


def name_is_valid(given: Input) -> Verdict | None:
    if not is_valid_object_name(given.request.name):
        return Verdict(
            "reject",
            "invalid_name",
            f"{given.request.name!r} is not a valid Key Vault certificate name (1-127 of 0-9, a-z, A-Z, -)",
        )
    return None


def certificate_exists(given: Input) -> Verdict | None:
    if given.certificate is None:
        return Verdict(
            "skip", "not_found", f"certificate {given.request.name!r} does not exist in {given.request.vault!r}"
        )
    return None


def certificate_is_enabled(given: Input) -> Verdict | None:
    if given.certificate and not given.certificate.enabled:
        return Verdict("skip", "disabled", f"the current version of {given.request.name!r} is disabled")
    return None


def certificate_is_managed(given: Input) -> Verdict | None:
    cert = given.certificate
    assert cert is not None
    if cert_tags.is_false(cert_tags.tag(cert.tags, cert_tags.RENEW)):
        return Verdict("skip", "opted_out", f"tag {cert_tags.RENEW}=false opts {cert.name!r} out of renewal")
    if cert_tags.is_managed(cert.issuer_name, cert.tags):
        return None
    # Who renews it instead, in the words `certlc status` uses: Key Vault (an AutoRenew action), or nobody.
    from renewal.canary import CanarySettings
    from renewal.outlook import facts_of, nobody, renewed_by_key_vault

    facts = facts_of(cert, CanarySettings())
    who = renewed_by_key_vault(facts, given.now, given.settings) or nobody(facts, given.now, given.settings)
    return Verdict("skip", "not_managed", f"certlc does not manage {cert.name!r}: {who.message}")


def event_is_current(given: Input) -> Verdict | None:
    cert = given.certificate
    assert cert is not None
    version = given.request.version
    if version and version.strip().lower() != cert.version.lower():
        return Verdict(
            "skip",
            "superseded",
            f"the request is about version {version}, already replaced by {cert.version}",
        )
    return None


AUTOMATIC_TRIGGERS = frozenset({"sweep", "canary", "near_expiry", "expired"})


def not_failed_before(given: Input) -> Verdict | None:
    """A permanently failed version is left alone until an operator re-drives it (``certlc failed retry`` sends
    a manual request): another event, a redelivery or the sweep would only ask the CA again and alert again."""
    cert = given.certificate
    assert cert is not None
    outcome = cert_tags.tag(cert.tags, cert_tags.LAST_OUTCOME) or ""
    if given.request.trigger in AUTOMATIC_TRIGGERS and not given.request.force and outcome.startswith("failed"):
        return Verdict(
            "skip",
            "failed_before",
            f"renewing {cert.name!r} failed permanently ({outcome}); fix it, then `certlc failed retry`",
        )
    return None


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


def due_by_ari_only(given: Input) -> bool:
    """Due now only because the CA's renewal window says so: the renewal is early, and people are told why."""
    cert, window = given.certificate, given.renewal_window
    if cert is None or cert.expires_on is None or window is None or window.renew_at > given.now:
        return False
    return cert.expires_on - given.now > renewal_threshold(cert.not_before, cert.expires_on, cert.tags, given.settings)


def certificate_is_due(given: Input) -> Verdict | None:
    """Forced and compromise renewals are always due; a canary is due on its schedule (the sweep's), but only for
    the version it names: ``event_is_current`` has already stopped a request for a replaced one. Otherwise due from
    the normal window's start, or from the ACME CA's ARI moment when that comes first."""
    cert = given.certificate
    assert cert is not None
    if given.request.force or given.request.trigger == "compromise":
        return None
    if given.request.trigger == "canary" and given.request.version:
        return None
    if cert.expires_on is None:
        return Verdict("skip", "no_expiry", f"{cert.name!r} has no expiry date")
    due_on = renewal_due_on(cert.not_before, cert.expires_on, cert.tags, given.settings, given.renewal_window)
    if due_on > given.now:
        return Verdict("skip", "not_due", f"{cert.name!r} is not due before {due_on:%Y-%m-%d} UTC")
    return None


def tags_fit_key_vault(given: Input) -> Verdict | None:
    """A version that could not be merged must not be started: its pending operation would be left behind."""
    cert = given.certificate
    assert cert is not None
    problem = cert_tags.tags_over_limits(cert.tags)
    if problem:
        return Verdict("fail", "too_many_tags", f"{cert.name!r} cannot be renewed as it is: {problem}")
    return None


def resolve_profile(given: Input) -> Verdict:
    cert = given.certificate
    assert cert is not None
    ca = ca_of(cert.tags, given.settings)
    profile = (
        given.request.ca_profile
        or cert_tags.tag(cert.tags, cert_tags.PROFILE)
        or _template_of(cert)
        or given.settings.default_profile
    )
    if not profile:
        return Verdict(
            "fail", "no_profile", f"no CA profile for {cert.name!r}: set tag {cert_tags.PROFILE} or CERTLC_CA_PROFILE"
        )
    reason, why = (
        ("ari_window", " early, inside the CA's renewal window (ARI)") if due_by_ari_only(given) else ("due", "")
    )
    return Verdict(
        "renew",
        reason,
        f"{cert.name!r} is due{why}; CA {ca!r}, profile {profile!r}",
        ca=ca,
        profile=profile,
        renewal_window=given.renewal_window,
    )


def _template_of(cert: CertificateSnapshot) -> str | None:
    if not cert.cer:
        return None
    try:
        return adcs_template(load_certificate(cert.cer))
    except ValueError:
        return None


REQUEST_CHECKS: tuple[Check, ...] = (vault_is_allowed, name_is_valid)
CERTIFICATE_CHECKS: tuple[Check, ...] = (
    certificate_exists,
    certificate_is_enabled,
    certificate_is_managed,
    event_is_current,
    not_failed_before,
    certificate_is_due,
    tags_fit_key_vault,
)


def check_request(given: Input) -> Verdict | None:
    """The checks that need no Key Vault call: they run before anything is gathered."""
    return _first(REQUEST_CHECKS, given)


def decide(given: Input) -> Verdict:
    return _first(REQUEST_CHECKS + CERTIFICATE_CHECKS, given) or resolve_profile(given)


def is_within_escalation(cert: CertificateSnapshot, now: datetime, settings: WindowSettings) -> bool:
    return cert.expires_on is not None and cert.expires_on - now <= settings.escalate_within


def _first(checks: tuple[Check, ...], given: Input) -> Verdict | None:
    for check in checks:
        verdict = check(given)
        if verdict is not None:
            return verdict
    return None
