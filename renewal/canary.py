"""The canary: a certificate certlc renews on a schedule even when it is not due.

Renewal guides insist on testing the automation before the first real renewal. A canary renewed every few
days through the same queue, CA and notification path shows a broken CA path, a revoked permission or a dead
alert channel weeks before a real certificate expires. Which certificates are canaries: the vault/name
entries of ``CERTLC_CANARY`` (``,``-separated) and any certificate tagged ``certlc-canary=true``; how often:
``CERTLC_CANARY_EVERY_DAYS`` (default 7).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from renewal import tags as cert_tags
from renewal.errors import ConfigError
from renewal.setting_values import whole_number_setting
from renewal.vaults import is_valid_object_name

CANARY_EVERY_DAYS_DEFAULT = 7


@dataclass(frozen=True)
class CanarySettings:
    names: frozenset[str] = frozenset()  # "vault/name", lower case
    every: timedelta = timedelta(days=CANARY_EVERY_DAYS_DEFAULT)


def canary_settings_from_env(env: Mapping[str, str]) -> CanarySettings:
    """``CERTLC_CANARY`` and ``CERTLC_CANARY_EVERY_DAYS``, checked: a typo must not silently disable the canary."""
    names: set[str] = set()
    for entry in (e.strip() for e in env.get("CERTLC_CANARY", "").split(",")):
        if not entry:
            continue
        vault, _, name = entry.partition("/")
        if not vault.strip() or not is_valid_object_name(name.strip()):
            raise ConfigError(f"CERTLC_CANARY entry {entry!r} is not vault/name (for example kv1/certlc-canary)")
        names.add(f"{vault.strip().lower()}/{name.strip().lower()}")
    days = whole_number_setting(
        env, "CERTLC_CANARY_EVERY_DAYS", CANARY_EVERY_DAYS_DEFAULT, low=1, high=365, unit="days"
    )
    return CanarySettings(frozenset(names), timedelta(days=days))


def canary_every(settings: CanarySettings, vault: str, name: str, tags: Mapping[str, str]) -> timedelta | None:
    """How often this certificate is renewed as a canary, or None when it is not one."""
    if f"{vault.lower()}/{name.lower()}" in settings.names or cert_tags.is_true(cert_tags.tag(tags, cert_tags.CANARY)):
        return settings.every
    return None
