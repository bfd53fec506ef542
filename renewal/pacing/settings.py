"""The pacing settings, checked when the app starts like every other setting."""

from __future__ import annotations

from collections.abc import Mapping

from renewal.errors import ConfigError
from renewal.pacing.budget import Limits
from renewal.pacing.limits import WINDOW_SECONDS
from renewal.pacing.store import DEFAULT_SUBSCRIPTION, BlobPacer, Pacer, Unpaced
from renewal.setting_values import number_setting

WAIT_SECONDS_DEFAULT = 10.0  # one window: longer, and the request goes back to the queue instead


class PacingSettingError(ConfigError):
    """A pacing setting is malformed."""


def subscriptions_of(env: Mapping[str, str], vaults: list[str]) -> dict[str, str]:
    """Each configured vault's subscription from ``CERTLC_KEYVAULT_SUBSCRIPTIONS`` (``sub=kv1,kv2;sub2=kv3``); a vault
    it does not name is in one subscription with every other such vault, the safe assumption (one ceiling)."""
    known = {name.lower() for name in vaults}
    groups = dict.fromkeys(known, DEFAULT_SUBSCRIPTION)
    raw = env.get("CERTLC_KEYVAULT_SUBSCRIPTIONS", "").strip()
    for position, entry in enumerate(filter(None, (e.strip() for e in raw.split(";"))), start=1):
        subscription, equals, names = entry.partition("=")
        if not equals or not subscription.strip() or not names.strip():
            raise PacingSettingError(
                f"CERTLC_KEYVAULT_SUBSCRIPTIONS entry {position} is not subscription=vault,vault (e.g. prod=kv1,kv2)"
            )
        for name in filter(None, (n.strip().lower() for n in names.split(","))):
            if name not in known:
                raise PacingSettingError(
                    f"CERTLC_KEYVAULT_SUBSCRIPTIONS entry {position} names {name!r}, which is not in CERTLC_VAULTS"
                )
            groups[name] = subscription.strip()
    return groups


def pacer_from_env(env: Mapping[str, str], vaults: list[str]) -> Pacer:
    """``CERTLC_PACING`` (``on``, the default, or ``off``); the budget blob is in the lock's container."""
    mode = env.get("CERTLC_PACING", "").strip().lower() or "on"
    if mode not in ("on", "off"):
        raise PacingSettingError(f"CERTLC_PACING={mode!r} must be on or off")
    groups = subscriptions_of(env, vaults)
    window = number_setting(
        env, "CERTLC_PACING_WINDOW_SECONDS", WINDOW_SECONDS, low=0, high=WINDOW_SECONDS, above_low=True,
        unit="seconds", error=PacingSettingError,
    )  # fmt: skip
    wait = number_setting(
        env, "CERTLC_PACING_WAIT_SECONDS", WAIT_SECONDS_DEFAULT, low=0, high=60, unit="seconds",
        error=PacingSettingError,
    )  # fmt: skip
    if mode == "off":
        return Unpaced()
    from renewal.ledger import lock_container

    return BlobPacer(lock_container(env), Limits(window=window), groups, wait)
