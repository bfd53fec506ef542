"""The compromise steps' decisions (``renewal.compromise``), as a table: what comes next after the merge, from what
Key Vault shows, and what a compromise of an already replaced version does."""

from __future__ import annotations

import pytest

from renewal.compromise import OldVersion, Unfinished, compromised_tag, next_step, replaced_compromise, unfinished_of

PLAIN = Unfinished("v1", restore_key_reuse=False)
RESTORE = Unfinished("v1", restore_key_reuse=True)
BY_CA = Unfinished("v1", restore_key_reuse=False, revoked_by_ca=True)


def old(enabled: bool = True, revocation: str | None = None, has_certificate: bool = True) -> OldVersion:
    return OldVersion("v1", enabled, has_certificate, revocation)


@pytest.mark.parametrize(
    ("unfinished", "version", "key_reuse_now", "revoke_failed", "step"),
    [
        (PLAIN, old(), False, False, "revoke"),  # first the CA, so the old key stops being trusted
        (PLAIN, old(revocation="revoked keyCompromise 2026-12-07"), False, False, "disable"),
        (PLAIN, old(), False, True, "disable"),  # the CA out of reach does not hold up the disable
        (PLAIN, old(enabled=False), False, True, "retry_revocation"),  # then the revocation is tried again
        (RESTORE, old(enabled=False, revocation="revoked keyCompromise 2026-12-07"), False, False, "restore_key_reuse"),
        (RESTORE, old(enabled=False, revocation="revoked keyCompromise 2026-12-07"), True, False, "finish"),
        (PLAIN, old(enabled=False, revocation="refused keyCompromise 2026-12-07"), False, False, "finish"),
        (PLAIN, old(enabled=False, revocation="awaiting keyCompromise 2026-12-07"), False, False, "confirm_revocation"),
        (BY_CA, old(), False, False, "disable"),  # its CA revoked it: nothing to ask
        (BY_CA, old(enabled=False), False, False, "finish"),
        (PLAIN, None, False, False, "finish"),  # purged: nothing certlc can revoke or disable
        (PLAIN, old(has_certificate=False), False, False, "disable"),
    ],
)
def test_the_next_step_follows_what_key_vault_shows(unfinished, version, key_reuse_now, revoke_failed, step) -> None:
    assert next_step(unfinished, version, key_reuse_now, revoke_failed).step == step


@pytest.mark.parametrize(
    ("version", "keeps_key", "action"),
    [
        (old(), False, "retire_old"),  # replaced with a new key: only the old one to revoke and disable
        (old(), True, "renew_current"),  # the replacement kept the exposed key
        (None, False, "nothing"),
        (old(has_certificate=False), False, "nothing"),
    ],
)
def test_a_compromise_of_a_replaced_version(version, keeps_key, action) -> None:
    assert replaced_compromise(version, keeps_key)[0] == action


def test_the_tag_says_the_old_version_and_what_is_left() -> None:
    assert unfinished_of({"certlc-compromised": compromised_tag("ABC", True, True)}) == Unfinished("abc", True, True)
    assert unfinished_of({"Certlc-Compromised": " v9 "}) == Unfinished("v9", False, False)
    assert unfinished_of({}) is None
