"""Adoption (``certlc adopt NAME --ca CA [--profile P]``): an existing Key Vault certificate put under certlc, so certlc
renews it from now on through CA adapter CA with profile P.

Gather (the certificate's current version and its policy, Key Vault's pending operation, what the CA adapter's
profile issues: ``renewal.policy_change.ca_limits``) → decide (``decide``, pure: one chain of named checks, each
returning ``None`` or an ``Adoption`` with a stable ``Reason``) → act (the command: an operator record, the policy,
then the tags). Decisions, and why:

- Refused, nothing changed, for a certificate that does not exist, is disabled (nothing renews it until it is
  enabled: adopting it would hide that), is opted out (``certlc-renew=false`` is an operator's decision, taken
  back by removing the tag, not overruled by another command), has a pending operation in progress (its issuer is
  issuing a version with the old policy; certlc would take its CSR over), when certlc's tags would take it over
  Key Vault's tag limits (no renewal could be merged), or when the CA's profile cannot issue its policy.
  Its key must be one of ``policy_change.KEYS`` (the list every adapter takes); its validity must be what the
  profile issues where the CA says (the local CA, cfssl: ``policy_change.change_refused``'s rule). A CA that
  sets the validity itself (ACME, AD CS) or says nothing of it is not asked, as for every certificate certlc
  already renews through it.
- The profile is ``--profile``, else what the renewal itself would use (tag ``certlc-profile``, the AD CS template
  the certificate names, ``CERTLC_CA_PROFILE``: ``renewal.decide._renewing``'s order); with none, refused: a
  renewal would fail ``no_profile``.
- Already adopted (exit 0, nothing written) when nothing would change: its issuer is ``Unknown`` without an
  ``AutoRenew`` action, and the CA and profile it resolves to (tags, else settings, as the decision resolves them)
  are the ones asked.
- Otherwise a policy whose issuer Key Vault renews itself (``Self``, or an integrated issuer such as DigiCert)
  becomes issuer ``Unknown``, so Key Vault's next create makes a CSR certlc takes to the CA (with ``Self`` it would
  self-sign); the old issuer's parameters (certificate type, transparency) go with it. An ``AutoRenew`` lifetime
  action becomes ``EmailContacts`` with the same trigger: Key Vault renews nothing for ``Unknown``, and the vault's
  contacts still hear. Every other field is kept, built as ``renewal.keyvault.with_key_reuse`` builds it; the key
  of the current version is never touched.
- Tags on the current version, every existing one kept: ``certlc-ca`` = CA, so a later change of ``CERTLC_CA`` does
  not move it to another CA, and ``certlc-profile`` = P when ``--profile`` is given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

from renewal import tags as cert_tags
from renewal.decide import UNKNOWN_ISSUER, Facts, WindowSettings, ca_of, has_auto_renew
from renewal.keyvault import POLICY_FIELDS, PendingOperation
from renewal.policy_change import KEYS, CaLimits, PolicyChange, change_refused, key_label

Outcome = Literal["adopt", "already", "refuse"]
ISSUER_PARAMETERS = ("certificate_type", "certificate_transparency")  # the old issuer's, meaningless for Unknown


class Reason(StrEnum):
    NOT_FOUND = "not_found"
    DISABLED = "disabled"
    OPTED_OUT = "opted_out"
    PENDING_OPERATION = "pending_operation"
    NO_PROFILE = "no_profile"
    ALREADY_ADOPTED = "already_adopted"
    KEY_REFUSED = "key_refused"
    PROFILE_REFUSED = "profile_refused"
    TOO_MANY_TAGS = "too_many_tags"
    CA_UNAVAILABLE = "ca_unavailable"  # the command could not learn what the profile issues (cfssl's info call)
    ADOPTED = "adopted"


@dataclass(frozen=True)
class Change:
    """One field adoption changes, with the value it replaces (``None``: it had none)."""

    field: str  # "issuer", "lifetime_actions", or a tag's name
    old: Any
    new: Any

    def line(self) -> str:
        return f"{self.field} {_shown(self.old)} -> {_shown(self.new)}"


@dataclass(frozen=True)
class Input:
    """Everything the decision needs, gathered by the command."""

    vault: str
    name: str
    ca: str  # the adapter asked for, as ``runtime.workflow.ca_for`` takes it
    profile: str | None  # --profile
    settings: WindowSettings
    certificate: Facts | None
    policy: Any = None  # the certificate's SDK CertificatePolicy
    pending: PendingOperation | None = None
    limits: CaLimits | None = None  # what the resolved profile issues (None when no profile resolves)


@dataclass(frozen=True)
class Adoption:
    outcome: Outcome
    reason: Reason
    message: str
    ca: str = ""
    profile: str = ""
    policy_changes: tuple[Change, ...] = ()
    tag_changes: tuple[Change, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)  # every tag the current version has after adoption

    @property
    def changes(self) -> tuple[Change, ...]:
        return self.policy_changes + self.tag_changes

    @property
    def exit_code(self) -> int:
        return 1 if self.outcome == "refuse" else 0


Check = Callable[[Input], Adoption | None]


def profile_of(given: Input) -> str | None:
    """The profile certlc would renew it with: ``--profile``, else as ``renewal.decide._renewing`` resolves it."""
    cert = given.certificate
    if given.profile:
        return given.profile
    if cert is None:
        return None
    return cert_tags.tag(cert.tags, cert_tags.PROFILE) or cert.template or given.settings.default_profile or None


def certificate_exists(given: Input) -> Adoption | None:
    if given.certificate is None:
        return _refused(Reason.NOT_FOUND, f"certificate {given.name!r} does not exist in vault {given.vault}")
    return None


def certificate_is_enabled(given: Input) -> Adoption | None:
    if not _cert(given).enabled:
        return _refused(
            Reason.DISABLED,
            "it is disabled in Key Vault, so nothing renews it: enable it "
            "(az keyvault certificate set-attributes --enabled true), then adopt it",
        )
    return None


def not_opted_out(given: Input) -> Adoption | None:
    if cert_tags.is_false(cert_tags.tag(_cert(given).tags, cert_tags.RENEW)):
        return _refused(
            Reason.OPTED_OUT,
            f"tag {cert_tags.RENEW}=false opts it out of certlc on purpose: to opt it in, remove that tag "
            f"(or set it to true), then adopt it",
        )
    return None


def no_pending_operation(given: Input) -> Adoption | None:
    pending = given.pending
    if pending is None or pending.status != "inprogress":
        return None
    return _refused(
        Reason.PENDING_OPERATION,
        "Key Vault has a pending operation for it, made with its current issuer: let it finish, or delete it "
        "(az keyvault certificate pending delete), then adopt it",
    )


def profile_resolves(given: Input) -> Adoption | None:
    if profile_of(given) is None:
        return _refused(
            Reason.NO_PROFILE,
            f"no CA profile for it: the certificate names no AD CS template, it has no tag {cert_tags.PROFILE} and "
            f"CERTLC_CA_PROFILE is not set; pass --profile (the profile or template CA {given.ca!r} issues with)",
        )
    return None


def not_already_adopted(given: Input) -> Adoption | None:
    if policy_changes(given.policy) or _resolved_ca(given) != given.ca or _resolved_profile(given) != profile_of(given):
        return None
    return Adoption(
        "already",
        Reason.ALREADY_ADOPTED,
        f"certlc already renews it with CA {given.ca!r}, profile {profile_of(given)!r}: nothing changed",
        ca=given.ca,
        profile=profile_of(given) or "",
        tags=dict(_cert(given).tags),
    )


def key_is_issuable(given: Input) -> Adoption | None:
    key = key_label(given.policy)
    if key in KEYS:
        return None
    return _refused(
        Reason.KEY_REFUSED,
        f"its policy's key {key} is not one certlc renews with ({', '.join(KEYS)}): change the key in its policy, "
        "then adopt it",
    )


def profile_can_issue(given: Input) -> Adoption | None:
    """The CA's profile must be offered, and where the CA says what validity it issues, issue the policy's."""
    limits = given.limits
    if limits is None:
        return None
    months = given.policy.validity_in_months if limits.validity_days is not None else None
    refused = change_refused(PolicyChange(validity_months=months), limits)
    if refused is None:
        return None
    if limits.problem:
        return _refused(Reason.PROFILE_REFUSED, f"{refused}; pass a profile it offers")
    hint = "set its policy's validity to what the profile issues, or pass another --profile"
    return _refused(Reason.PROFILE_REFUSED, f"its policy cannot be renewed as it is: {refused}; {hint}")


CHECKS: tuple[Check, ...] = (
    certificate_exists,
    certificate_is_enabled,
    not_opted_out,
    no_pending_operation,
    profile_resolves,
    not_already_adopted,
    key_is_issuable,
    profile_can_issue,
)


def decide(given: Input) -> Adoption:
    """Refused, already adopted, or what adoption changes (the policy's fields and the tags, with the old values)."""
    for check in CHECKS:
        verdict = check(given)
        if verdict is not None:
            return verdict
    cert, profile = _cert(given), profile_of(given) or ""
    wanted = {cert_tags.CA: given.ca} | ({cert_tags.PROFILE: given.profile} if given.profile else {})
    tag_changes = tuple(
        Change(name, cert_tags.tag(cert.tags, name), value)
        for name, value in wanted.items()
        if cert_tags.tag(cert.tags, name) != value
    )
    tags = dict(cert.tags)
    for change in tag_changes:
        tags = with_tag(tags, change.field, change.new)
    if problem := cert_tags.tags_over_limits(tags):
        return _refused(Reason.TOO_MANY_TAGS, f"it could not be renewed once adopted: {problem}")
    changes = policy_changes(given.policy)
    said = "; ".join(c.line() for c in changes + tag_changes)
    return Adoption(
        "adopt",
        Reason.ADOPTED,
        f"certlc renews it from now on with CA {given.ca!r}, profile {profile!r} ({said})",
        ca=given.ca,
        profile=profile,
        policy_changes=changes,
        tag_changes=tag_changes,
        tags=tags,
    )


def policy_changes(policy: Any) -> tuple[Change, ...]:
    """What the policy needs so certlc, not Key Vault, renews it: issuer ``Unknown``, no ``AutoRenew`` action."""
    found: list[Change] = []
    issuer = (getattr(policy, "issuer_name", None) or "").strip()
    if issuer.lower() != UNKNOWN_ISSUER:
        found.append(Change("issuer", issuer or None, "Unknown"))
    if has_auto_renew(policy):
        old = [action_text(a) for a in policy.lifetime_actions]
        found.append(Change("lifetime_actions", old, [action_text(a) for a in adopted_actions(policy)]))
    return tuple(found)


def adopted_actions(policy: Any) -> list[Any]:
    """The lifetime actions with ``AutoRenew`` made ``EmailContacts`` at the same trigger (one of each trigger)."""
    from azure.keyvault.certificates import CertificatePolicyAction, LifetimeAction

    actions: list[Any] = []
    for action in getattr(policy, "lifetime_actions", None) or ():
        kind = CertificatePolicyAction.email_contacts if _is_auto_renew(action) else action.action
        made = LifetimeAction(kind, lifetime_percentage=action.lifetime_percentage,
                              days_before_expiry=action.days_before_expiry)  # fmt: skip
        if action_text(made) not in {action_text(a) for a in actions}:
            actions.append(made)
    return actions


def adopted_policy(policy: Any) -> Any:
    """A copy of the SDK ``CertificatePolicy`` as adoption leaves it, built from its public fields as
    ``renewal.keyvault.with_key_reuse`` is: issuer ``Unknown`` (without the old issuer's parameters), no
    ``AutoRenew``; its key fields and key reuse as they were."""
    from azure.keyvault.certificates import CertificatePolicy

    kept = {
        f: getattr(policy, f)
        for f in POLICY_FIELDS
        if f not in ISSUER_PARAMETERS and getattr(policy, f, None) is not None
    }
    if has_auto_renew(policy):
        kept["lifetime_actions"] = adopted_actions(policy)
    return CertificatePolicy(issuer_name="Unknown", reuse_key=policy.reuse_key, **kept)


def adopted_facts(facts: Facts, adoption: Adoption) -> Facts:
    """The certificate's facts once adopted, for the one decision (``renewal.decide.plan``) to say when certlc
    renews it."""
    if adoption.outcome != "adopt":
        return facts
    return replace(facts, tags=dict(adoption.tags), policy_issuer="Unknown", auto_renew=False)


def with_tag(tags: Mapping[str, str], name: str, value: str) -> dict[str, str]:
    """``tags`` with ``name`` set to ``value``, replacing the tag whatever case its name was written in."""
    kept = {k: v for k, v in tags.items() if k.strip().lower() != name.lower()}
    return kept | {name: value}


def action_text(action: Any) -> str:
    """``AutoRenew at 80% of lifetime``, ``EmailContacts 30 days before expiry``."""
    kind = getattr(action.action, "value", action.action)
    if action.days_before_expiry is not None:
        return f"{kind} {action.days_before_expiry} days before expiry"
    return f"{kind} at {action.lifetime_percentage}% of lifetime"


def _is_auto_renew(action: Any) -> bool:
    kind = getattr(action, "action", None)
    return str(getattr(kind, "value", kind) or "").lower() == "autorenew"


def _resolved_ca(given: Input) -> str:
    return ca_of(_cert(given).tags, given.settings).strip().lower()


def _resolved_profile(given: Input) -> str | None:
    """The profile a renewal would use today, without ``--profile``."""
    return profile_of(replace(given, profile=None))


def _refused(reason: Reason, message: str) -> Adoption:
    return Adoption("refuse", reason, message)


def _cert(given: Input) -> Facts:
    assert given.certificate is not None  # certificate_exists runs first
    return given.certificate


def _shown(value: Any) -> str:
    if value is None:
        return "(none)"
    return f"[{', '.join(map(str, value))}]" if isinstance(value, list | tuple) else str(value)
