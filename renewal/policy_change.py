"""A change renewal (``certlc renew NAME --policy FILE``): a certificate's SANs, subject, key or validity changed, and
the next version issued with them now.

The change is a small JSON form of certlc's own, checked before anything touches Key Vault::

    {"subject": "CN=shop.example.com", "dns": ["shop.example.com", "www.shop.example.com"],
     "key": "RSA-3072", "validity_months": 3}

Every field is optional; what is given replaces the policy's value, the rest of the policy (issuer included) is
kept. Gather (the certificate's policy, what its CA adapter's profile issues: ``ca_limits``) → decide (what really
changes: ``what_changes``; whether the CA can issue it: ``change_refused``, pure, with the reason) → act (the new
SDK policy: ``changed_policy``; the command updates Key Vault and renews).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields, replace
from typing import Any

from renewal.keyvault import POLICY_FIELDS

# The key types the form takes, as Key Vault's (kty, key_size, curve). Exactly what public ACME CAs issue for (Let's
# Encrypt: RSA 2048-4096, ECDSA P-256 and P-384; RFC 8555 leaves key types to the CA), so no CA is asked for a key it
# cannot take: the list itself is the key rule, for every adapter.
KEYS: dict[str, tuple[str, int | None, str | None]] = {
    "RSA-2048": ("RSA", 2048, None),
    "RSA-3072": ("RSA", 3072, None),
    "RSA-4096": ("RSA", 4096, None),
    "EC-P256": ("EC", None, "P-256"),
    "EC-P384": ("EC", None, "P-384"),
}
DAYS_PER_MONTH = 30.44  # an average month: a 90-day profile is 3 months, a 365-day one 12
MAX_VALIDITY_MONTHS = 1200  # Key Vault's own bound on validity_in_months
KEY_VAULT_FORM = {
    "x509_props", "key_props", "secret_props", "issuer", "lifetime_actions", "attributes", "x509CertificateProperties",
    "keyProperties", "secretProperties", "issuerParameters", "lifetimeActions", "policy",
}  # fmt: skip
FORM = '{"subject": "CN=...", "dns": ["..."], "key": "RSA-2048", "validity_months": 12}'
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


class PolicyFileError(ValueError):
    """The change file cannot be used; the message names the field and what it takes."""


@dataclass(frozen=True)
class PolicyChange:
    """The fields a change gives; None is "keep the policy's"."""

    subject: str | None = None
    dns: tuple[str, ...] | None = None
    key: str | None = None
    validity_months: int | None = None

    def given(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


FIELDS = tuple(f.name for f in fields(PolicyChange))


@dataclass(frozen=True)
class CaLimits:
    """What the CA adapter's profile issues, as far as certlc can know it (gathered by ``ca_limits``)."""

    ca: str
    profile: str
    validity_days: int | None = None  # what the profile issues, where the CA says
    validity_fixed: str = ""  # why this CA takes no validity from certlc at all (ACME, AD CS)
    problem: str = ""  # why the profile cannot issue anything (not offered)


def change_from_json(text: str) -> PolicyChange:
    """Parse and check a change file; ``PolicyFileError`` names the field at fault."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise PolicyFileError(f"the policy file is not JSON ({exc}); it takes {FORM}") from None
    if not isinstance(raw, dict):
        raise PolicyFileError(f"the policy file must be a JSON object: {FORM}")
    if KEY_VAULT_FORM.intersection(raw):
        raise PolicyFileError(
            "this is Key Vault's policy JSON; certlc takes its own small form, the fields to change: "
            f"{FORM} (docs/renewal.md#change-renewals)"
        )
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise PolicyFileError(f"unknown field {unknown[0]!r} in the policy file: it takes {', '.join(FIELDS)}")
    if not raw:
        raise PolicyFileError(f"the policy file changes nothing: give at least one of {', '.join(FIELDS)}")
    return PolicyChange(
        subject=_subject(raw["subject"]) if "subject" in raw else None,
        dns=_dns(raw["dns"]) if "dns" in raw else None,
        key=_key(raw["key"]) if "key" in raw else None,
        validity_months=_months(raw["validity_months"]) if "validity_months" in raw else None,
    )


def _subject(value: Any) -> str:
    from cryptography import x509

    if not isinstance(value, str) or not value.strip():
        raise PolicyFileError('"subject" must be a distinguished name string, such as "CN=shop.example.com"')
    try:
        name = x509.Name.from_rfc4514_string(value.strip())
    except ValueError as exc:
        raise PolicyFileError(f'"subject" {value!r} is not a distinguished name ({exc})') from None
    if not name.rdns:
        raise PolicyFileError('"subject" is empty: give at least a CN, such as "CN=shop.example.com"')
    return value.strip()


def _dns(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyFileError('"dns" must be a list of DNS names, such as ["shop.example.com"]')
    if not value:
        raise PolicyFileError('"dns" is empty: a certificate needs at least one DNS name (leave "dns" out to keep)')
    names: list[str] = []
    for given in value:
        name = given.strip().lower().rstrip(".")
        if not is_dns_name(name):
            raise PolicyFileError(f'"dns" has {given!r}, which is not a DNS name')
        if name not in names:
            names.append(name)
    return tuple(names)


def is_dns_name(name: str) -> bool:
    """A host name (RFC 1123 labels, 253 characters at most), or ``*.`` and one: a wildcard covers one label."""
    labels = name.removeprefix("*.").split(".")
    wildcard_alone = name.startswith("*.") and len(labels) < 2
    return 0 < len(name) <= 253 and not wildcard_alone and all(_LABEL.fullmatch(label) for label in labels)


def _key(value: Any) -> str:
    if not isinstance(value, str) or value.strip().upper() not in KEYS:
        raise PolicyFileError(f'"key" {value!r} is not one certlc renews with: use one of {", ".join(KEYS)}')
    return value.strip().upper()


def _months(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_VALIDITY_MONTHS:
        raise PolicyFileError(f'"validity_months" {value!r} must be a whole number of months, 1 to 1200')
    return value


def policy_values(policy: Any) -> dict[str, Any]:
    """The policy's values in the change's form (a key outside ``KEYS`` shows as Key Vault names it)."""
    return {
        "subject": policy.subject,
        "dns": tuple(n.lower() for n in policy.san_dns_names or ()),
        "key": key_label(policy),
        "validity_months": policy.validity_in_months,
    }


def key_label(policy: Any) -> str:
    kty = _value(policy.key_type).upper().removesuffix("-HSM") or "RSA"  # Key Vault's default key type is RSA
    if kty == "EC":
        return f"EC-{_value(policy.key_curve_name).replace('-', '') or 'P256'}"
    return f"{kty}-{policy.key_size or 2048}"


def what_changes(policy: Any, change: PolicyChange) -> PolicyChange:
    """Only what differs from the policy: a field given with the policy's own value changes nothing (DNS names
    compare as a set, without regard to case or order)."""
    current = policy_values(policy)
    kept: dict[str, Any] = {}
    for name, new in change.given().items():
        old = current[name]
        same = set(old) == set(new) if name == "dns" else old == new
        kept[name] = None if same else new
    return replace(change, **kept)


def old_values(policy: Any, change: PolicyChange) -> dict[str, Any]:
    """The policy's values of the fields ``change`` gives: what an operator record keeps to undo it."""
    current = policy_values(policy)
    return {name: current[name] for name in change.given()}


def describe(old: dict[str, Any], change: PolicyChange) -> str:
    """One line: ``dns [a] -> [a, b]; key RSA-2048 -> RSA-3072``."""

    def shown(value: Any) -> str:
        return f"[{', '.join(value)}]" if isinstance(value, tuple | list) else str(value)

    return "; ".join(f"{name} {shown(old.get(name))} -> {shown(new)}" for name, new in change.given().items())


def changed_policy(policy: Any, change: PolicyChange) -> Any:
    """A copy of the SDK ``CertificatePolicy`` with the change's fields replaced, built from its public fields as
    ``renewal.keyvault.with_key_reuse`` is; its issuer and key reuse are the policy's, never the file's. A new key
    type keeps Key Vault's HSM protection when the policy had it."""
    from azure.keyvault.certificates import CertificatePolicy

    kept = {f: getattr(policy, f) for f in POLICY_FIELDS if getattr(policy, f, None) is not None}
    if change.subject is not None:
        kept["subject"] = change.subject
    if change.dns is not None:
        kept["san_dns_names"] = list(change.dns)
    if change.validity_months is not None:
        kept["validity_in_months"] = change.validity_months
    if change.key is not None:
        kty, size, curve = KEYS[change.key]
        hsm = "-HSM" if _value(policy.key_type).upper().endswith("-HSM") else ""
        kept["key_type"] = kty + hsm
        for name, value in (("key_size", size), ("key_curve_name", curve)):
            kept.pop(name, None)
            if value is not None:
                kept[name] = value
    return CertificatePolicy(issuer_name=policy.issuer_name, reuse_key=policy.reuse_key, **kept)


def ca_limits(ca_name: str, ca: Any, profile: str) -> CaLimits:
    """Gather what the adapter's profile issues: the local CA's ``Profile``, cfssl's ``/api/v1/cfssl/info`` for the
    profile (its expiry; a ``CaError`` when cfssl cannot be asked), and for ACME and AD CS the fact that the CA,
    not the request, sets the validity."""
    kind = getattr(ca, "name", ca_name)
    if kind == "local":
        spec = ca.profiles.get(profile)
        if spec is None:
            offered = ", ".join(sorted(ca.profiles))
            return CaLimits(ca_name, profile, problem=f"the local CA offers no profile {profile!r} ({offered})")
        return CaLimits(ca_name, profile, validity_days=spec.validity_days)
    if kind == "cfssl":
        info = ca._profile_info(profile)  # the adapter's cached info call (a public accessor would be better)
        return CaLimits(ca_name, profile, validity_days=_go_duration_days(str(info.get("expiry") or "")))
    if kind == "acme":
        return CaLimits(ca_name, profile, validity_fixed=ACME_VALIDITY)
    if kind == "adcs":
        return CaLimits(ca_name, profile, validity_fixed=ADCS_VALIDITY.format(template=profile))
    return CaLimits(ca_name, profile)


ACME_VALIDITY = (
    "an ACME CA sets the validity itself: RFC 8555 (7.4) lets an order ask for notBefore/notAfter, but CAs need not "
    "honour them and public ones (Let's Encrypt) refuse orders that do, so certlc sends none"
)
ADCS_VALIDITY = (
    "AD CS issues the validity period of template {template!r} (set on the template by the CA's administrator); "
    "web enrollment takes no validity from the request"
)


def change_refused(change: PolicyChange, limits: CaLimits) -> str | None:
    """Why the CA adapter's profile cannot issue ``change`` (what really changes: ``what_changes``), or None.

    Rules, each small: a profile the CA does not offer issues nothing; a CA that sets the validity itself (ACME,
    RFC 8555; AD CS, the template) is never asked for another; a profile with a known validity (the local CA's
    ``validity_days``, cfssl's ``expiry``) issues exactly that, so a policy asking for more, or for less, would
    promise what the certificate does not have; where the adapter says nothing of its validity, certlc cannot tell
    and does not guess. Key types need no rule here: ``KEYS`` holds only what every adapter takes."""
    where = f"CA {limits.ca!r}, profile {limits.profile!r}"
    if limits.problem:
        return f"{where}: {limits.problem}"
    months = change.validity_months
    if months is None:
        return None
    if limits.validity_fixed:
        return f"{where} cannot issue validity_months {months}: {limits.validity_fixed}; leave validity_months out"
    if limits.validity_days is None:
        return f"{where} does not say what validity it issues, so certlc cannot promise {months} months"
    issued = max(1, round(limits.validity_days / DAYS_PER_MONTH))
    if months != issued:
        beyond = "beyond" if months > issued else "short of"
        return (
            f"{where} issues {limits.validity_days} days (about {issued} months): validity_months {months} is "
            f"{beyond} what it issues; use {issued}, leave it out, or renew with another profile (tag certlc-profile)"
        )
    return None


def key_change_refused(policy: Any, change: PolicyChange) -> str | None:
    """A new key type or size cannot take effect on a policy that reuses its key: Key Vault makes the next version
    with the old key, and the renewal fails when the CSR does not match the policy (``csr_policy_mismatch``)."""
    if change.key is None or not getattr(policy, "reuse_key", False):
        return None
    return (
        f"its policy reuses the key (reuse_key), so key {change.key} cannot take effect: turn key reuse off in "
        "its policy first, or leave key out"
    )


def under_way(pending: Any) -> str | None:
    """Why a change must wait: Key Vault's pending operation in progress was made with the current policy, and the
    renewal that takes it over would find its CSR no longer matches the changed one (``csr_policy_mismatch``)."""
    if pending is None or getattr(pending, "status", "") != "inprogress":
        return None
    return (
        "Key Vault has a pending operation for it, made with the current policy: let that renewal finish "
        "(`certlc renew NAME`, `certlc status NAME`), then change the policy"
    )


def _go_duration_days(text: str) -> int | None:
    """cfssl's expiry, a Go duration (``8760h``, ``2160h0m0s``), in whole days; None when there is none."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text.strip())
    if not text.strip() or parts is None:
        return None
    hours, minutes, seconds = (int(p or 0) for p in parts.groups())
    return round((hours * 3600 + minutes * 60 + seconds) / 86400)


def _value(enum_or_str: Any) -> str:
    """SDK enums print as ``KeyType.rsa``; their value is the wire string."""
    return str(getattr(enum_or_str, "value", enum_or_str) or "")
