"""Per-certificate tags: what operators set on a certificate to steer certlc.

Tag names are matched case-insensitively (Key Vault keeps the case they were written in).

| tag | meaning |
|---|---|
| ``Recipient`` | e-mail addresses for notifications, ``,`` or ``;`` separated (certlc-compatible) |
| ``certlc-renew`` | ``false`` opts the certificate out of renewal |
| ``certlc-managed`` | ``true`` opts in a certificate whose issuer is not ``Unknown`` |
| ``certlc-ca`` | the CA adapter to use instead of ``CERTLC_CA`` |
| ``certlc-profile`` | the CA profile/template, overriding the one read from the certificate |
| ``certlc-renew-before-days`` | renew when at most this many days remain (overrides the default window) |
| ``certlc-canary`` | ``true`` renews it on a schedule even when not due (``renewal.canary``) |
| ``certlc-notify`` | channel names (``,``/``;``): only those chat and paging channels hear of it (``renewal.notify``) |
| ``certlc-endpoints`` | ``host[:port][@connect],...``: where it is served (``renewal.targets.declared``) |

certlc writes ``certlc-last-outcome`` (``renewed``/``failed: <reason>``, with a UTC date) and
``certlc-correlation`` (the renewal that produced a version) on the versions it merges, and
``certlc-warned`` (the UTC day of the last expiry warning) on versions close to expiry. A compromise renewal
(``renewal.compromise``) writes ``certlc-compromised`` on the new version until the old one is revoked and disabled,
and ``certlc-revocation`` (what the CA did, a reason and a UTC date) on the old version.
"""

from __future__ import annotations

from collections.abc import Mapping

RECIPIENT = "Recipient"
RENEW = "certlc-renew"
MANAGED = "certlc-managed"
CA = "certlc-ca"
PROFILE = "certlc-profile"
RENEW_BEFORE_DAYS = "certlc-renew-before-days"
CANARY = "certlc-canary"
NOTIFY = "certlc-notify"
ENDPOINTS = "certlc-endpoints"
LAST_OUTCOME = "certlc-last-outcome"
CORRELATION = "certlc-correlation"
WARNED = "certlc-warned"
WRITTEN_BY_CERTLC = frozenset({LAST_OUTCOME, CORRELATION, WARNED})
COMPROMISED = "certlc-compromised"
REVOCATION = "certlc-revocation"
NEVER_CARRIED = WRITTEN_BY_CERTLC | {COMPROMISED, REVOCATION}  # about one version, never copied to the next

# Key Vault's limits on an object's tags; certlc checks them before it creates a version, never truncates.
MAX_TAGS = 15
MAX_TAG_TEXT = 256


def tag(tags: Mapping[str, str], name: str) -> str | None:
    """The value of a tag, looked up case-insensitively; surrounding spaces trimmed."""
    wanted = name.lower()
    for key, value in tags.items():
        if key.strip().lower() == wanted:
            return value.strip()
    return None


def is_true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "yes", "1")


def is_false(value: str | None) -> bool:
    return (value or "").strip().lower() in ("false", "no", "0")


def carried_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """The operator's tags, copied to a new version; certlc's own bookkeeping tags stay behind."""
    return {k: v for k, v in tags.items() if k.strip().lower() not in NEVER_CARRIED}


def tags_over_limits(tags: Mapping[str, str]) -> str | None:
    """Why a renewed version with ``tags`` plus certlc's own could not be merged into Key Vault, or None."""
    carried = carried_tags(tags)
    total = len(carried) + len(WRITTEN_BY_CERTLC)
    if total > MAX_TAGS:
        return (
            f"the renewed version would carry {len(carried)} of your tags plus certlc's {len(WRITTEN_BY_CERTLC)} "
            f"({', '.join(sorted(WRITTEN_BY_CERTLC))}); Key Vault allows {MAX_TAGS}: remove {total - MAX_TAGS} "
            f"of {', '.join(sorted(carried))}"
        )
    long = sorted(k for k, v in carried.items() if len(k) > MAX_TAG_TEXT or len(v) > MAX_TAG_TEXT)
    if long:
        return f"tags {', '.join(k[:40] for k in long)} have a name or value over Key Vault's {MAX_TAG_TEXT} characters"
    return None


def is_managed(issuer_name: str | None, tags: Mapping[str, str]) -> bool:
    """certlc renews it: not opted out, and issued by a CA Key Vault does not renew itself (or opted in)."""
    if is_false(tag(tags, RENEW)):
        return False
    return (issuer_name or "").strip().lower() == "unknown" or is_true(tag(tags, MANAGED))
