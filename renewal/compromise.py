"""What a compromise renewal does once its new version is merged: the old certificate revoked at its CA (reason
keyCompromise), the old version disabled in Key Vault, and the policy's key reuse put back where the renewal turned
it off to get a new key.

A certificate its CA revoked behind certlc's back (trigger ``revoked``) is renewed the same way, without asking the
CA again. The state lives in Key Vault, so nothing is left half done whoever dies when: the new version carries
``certlc-compromised: <old version>[ restore-key-reuse][ revoked-by-ca]`` from its merge until every step is done,
and the old version carries ``certlc-revocation: <revoked|awaiting|refused> keyCompromise <UTC day>`` once its CA
was asked, so nobody asks twice. A redelivery, a retry or the sweep (``renewal.decide``'s ``compromise_unfinished``)
that finds the first tag finishes the steps. ``next_step`` decides the next one from what Key Vault shows; the
workflow acts on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from renewal import tags as cert_tags
from renewal.ca.base import AwaitingPerson, RevocationResult, Revoked

REASON = "keyCompromise"
RESTORE_KEY_REUSE = "restore-key-reuse"
REVOKED_BY_CA = "revoked-by-ca"  # the CA revoked the old certificate itself: nothing to ask it
Step = Literal["revoke", "disable", "restore_key_reuse", "retry_revocation", "confirm_revocation", "finish"]
RevocationState = Literal["revoked", "awaiting", "refused"]
ReplacedAction = Literal["retire_old", "renew_current", "nothing"]


@dataclass(frozen=True)
class Unfinished:
    """A merged compromise renewal whose steps are not all done, as the new version's tag says."""

    old_version: str
    restore_key_reuse: bool
    revoked_by_ca: bool = False


@dataclass(frozen=True)
class OldVersion:
    """What the steps need to know about the replaced version: whether it still holds a certificate, is enabled,
    and what its CA did (``certlc-revocation``)."""

    version: str
    enabled: bool
    has_certificate: bool
    revocation: str | None


@dataclass(frozen=True)
class NextStep:
    step: Step
    reason: str


def compromised_tag(old_version: str, restore_key_reuse: bool, revoked_by_ca: bool = False) -> str:
    flags = [RESTORE_KEY_REUSE] * restore_key_reuse + [REVOKED_BY_CA] * revoked_by_ca
    return " ".join([old_version, *flags])


def unfinished_of(tags: Mapping[str, str]) -> Unfinished | None:
    """The unfinished steps a version's ``certlc-compromised`` tag names, or None."""
    value = cert_tags.tag(tags, cert_tags.COMPROMISED)
    if not value:
        return None
    version, *flags = value.split()
    return Unfinished(version.lower(), RESTORE_KEY_REUSE in flags, REVOKED_BY_CA in flags)


def revocation_tag(result: RevocationResult | None, today: datetime) -> str:
    """The old version's ``certlc-revocation``: revoked, awaiting a person, or refused by the CA (None)."""
    state: RevocationState = (
        "revoked" if isinstance(result, Revoked) else "awaiting" if isinstance(result, AwaitingPerson) else "refused"
    )
    return f"{state} {REASON} {today:%Y-%m-%d}"


def revocation_state(tags: Mapping[str, str]) -> RevocationState | None:
    value = (cert_tags.tag(tags, cert_tags.REVOCATION) or "").split(" ", 1)[0]
    return value if value in ("revoked", "awaiting", "refused") else None  # type: ignore[return-value]


def next_step(unfinished: Unfinished, old: OldVersion | None, key_reuse_now: bool, revoke_failed: bool) -> NextStep:
    """The next step, in the order the old key stops being trusted: revoked at the CA, then disabled in Key Vault,
    then the policy put back. A CA that could not be reached (``revoke_failed`` in this pass) does not hold up the
    disable; the revocation is tried again afterwards. A version that is gone (purged) can be neither revoked nor
    disabled by certlc."""
    asked = old is not None and (old.revocation is not None or unfinished.revoked_by_ca)
    if old is not None and old.has_certificate and not asked and not revoke_failed:
        return NextStep("revoke", "not yet asked of its CA")
    if old is not None and old.enabled:
        return NextStep("disable", "the old version is still enabled")
    if unfinished.restore_key_reuse and not key_reuse_now:
        return NextStep("restore_key_reuse", "the policy's key reuse was turned off for this renewal")
    if old is not None and old.has_certificate and not asked:
        return NextStep("retry_revocation", "its CA could not be reached; the revocation is tried again")
    if old is not None and (old.revocation or "").startswith("awaiting"):
        return NextStep("confirm_revocation", "a person must revoke it; done once the CA's CRL or OCSP says so")
    if old is None:
        return NextStep("finish", "the old version is gone from the vault: nothing left to revoke or disable")
    return NextStep("finish", f"old version {old.version}: {old.revocation or 'revoked by its CA'}, disabled")


def replaced_compromise(old: OldVersion | None, current_keeps_key: bool) -> tuple[ReplacedAction, str]:
    """A compromise of a version someone replaced before its renewal ran (an expiry renewal got there first): a
    replacement with a new key leaves only the compromised version to revoke and disable; one that kept the key (key
    reuse) carries the exposure on and is renewed itself."""
    if old is None or not old.has_certificate:
        return "nothing", "the compromised version is no longer in the vault"
    if not current_keeps_key:
        return "retire_old", "already replaced with a new key: only the compromised version is left to retire"
    return "renew_current", "its replacement kept the compromised key: renewed with a new one"
