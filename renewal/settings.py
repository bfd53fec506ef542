"""App settings of the renewal functions, read once and checked with messages an operator can act on.

| setting | default | meaning |
|---|---|---|
| ``CERTLC_VAULTS`` | (required) | allow-listed vaults: ``name`` or ``name=https://url`` entries |
| ``CERTLC_QUEUE_NAME`` | ``certlc-renewals`` | renewal queue; ``-failed`` and ``-poison`` queues beside it |
| ``CertlcStorage`` | | queue connection string (or ``CertlcStorage__queueServiceUri`` for managed identity) |
| ``CERTLC_CA`` | ``local`` | default CA adapter: ``local``, ``cfssl``, ``acme`` (tag ``certlc-ca`` overrides) |
| ``CERTLC_CA_PROFILE`` | | default CA profile/template when neither tag nor certificate names one |
| ``CERTLC_LOCAL_CA_DIR`` | ``.local/ca`` | folder of the built-in CA (key 0600) |
| ``CERTLC_LOCAL_CA_CRL_URL`` | none | where the built-in CA's CRL is published (its certificates' CDP) |
| ``CERTLC_CFSSL_URL`` | | CFSSL remote signer base URL |
| ``CERTLC_ACME_DIRECTORY`` | | ACME directory URL (with ``CERTLC_ACME_ACCOUNT_KEY``, ``CERTLC_ACME_EMAIL``) |
| ``CERTLC_RENEW_BEFORE_DAYS`` | ``30`` | renew when at most this many days remain ... |
| ``CERTLC_RENEW_LIFETIME_FRACTION`` | ``0.333`` | ... or when less than this share of the lifetime remains |
| ``CERTLC_ESCALATE_DAYS`` | ``7`` | escalate failures this close to expiry |
| ``CERTLC_WARN_DAYS`` | ``30`` | daily notices from this close to expiry for certificates nobody renews |
| ``CERTLC_MAX_ATTEMPTS`` | ``12`` | transient failures retried this many times, then failed |
| ``CERTLC_BACKOFF_BASE_SECONDS`` / ``CERTLC_BACKOFF_CAP_SECONDS`` | ``60`` / ``21600`` | retry back-off |
| ``CERTLC_KEYVAULT_CONNECT_TIMEOUT`` | ``10`` | seconds to open a connection to Key Vault |
| ``CERTLC_KEYVAULT_READ_TIMEOUT`` | ``30`` | seconds to wait for each read of Key Vault's answer |
| ``CERTLC_CA_TIMEOUT`` | ``30`` | seconds to connect to the CA, and to wait for each read (cfssl, AD CS, ACME) |
| ``CERTLC_CANARY`` / ``CERTLC_CANARY_EVERY_DAYS`` | / ``7`` | canaries renewed on a schedule (``renewal.canary``) |

A call over its deadline fails as a transient error (``KeyVaultError(transient=True)``,
``CaUnavailable``) and the renewal is retried from the queue with back-off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from renewal.backoff import Backoff
from renewal.ca.base import CA_TIMEOUT_DEFAULT
from renewal.canary import CanarySettings, canary_settings_from_env
from renewal.clients import QUEUE_NAME_DEFAULT, KeyVaultTimeouts, keyvault_timeouts
from renewal.decide import WindowSettings
from renewal.errors import ConfigError
from renewal.setting_values import number_setting, seconds_setting, whole_number_setting
from renewal.vaults import Vault, vaults_from_env


class SettingsError(ConfigError):
    """An app setting is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    vaults: Mapping[str, Vault]
    queue_name: str
    window: WindowSettings
    backoff: Backoff
    keyvault_timeouts: KeyVaultTimeouts = field(default_factory=KeyVaultTimeouts)
    ca_timeout: float = CA_TIMEOUT_DEFAULT
    canary: CanarySettings = field(default_factory=CanarySettings)

    @property
    def failed_queue_name(self) -> str:
        return f"{self.queue_name}-failed"

    @property
    def poison_queue_name(self) -> str:
        return f"{self.queue_name}-poison"


def settings_from_env(env: Mapping[str, str]) -> Settings:
    try:
        vaults = vaults_from_env(env)
    except ValueError as exc:
        raise SettingsError(str(exc)) from exc
    window = WindowSettings(
        lifetime_fraction=number_setting(
            env, "CERTLC_RENEW_LIFETIME_FRACTION", 1 / 3, low=0, high=1, error=SettingsError
        ),
        renew_before=timedelta(days=_days(env, "CERTLC_RENEW_BEFORE_DAYS", 30, 3650)),
        escalate_within=timedelta(days=_days(env, "CERTLC_ESCALATE_DAYS", 7, 365)),
        warn_within=timedelta(days=_days(env, "CERTLC_WARN_DAYS", 30, 365)),
        default_ca=env.get("CERTLC_CA", "local").strip() or "local",
        default_profile=env.get("CERTLC_CA_PROFILE", "").strip() or None,
    )
    backoff = Backoff(
        base_seconds=_whole_seconds(env, "CERTLC_BACKOFF_BASE_SECONDS", 60, 86400),
        cap_seconds=_whole_seconds(env, "CERTLC_BACKOFF_CAP_SECONDS", 6 * 3600, 7 * 86400),
        max_attempts=whole_number_setting(env, "CERTLC_MAX_ATTEMPTS", 12, low=1, high=1000, error=SettingsError),
    )
    try:
        timeouts = keyvault_timeouts(env)
        canary = canary_settings_from_env(env)
    except ConfigError as exc:
        raise SettingsError(str(exc)) from None
    return Settings(
        vaults,
        env.get("CERTLC_QUEUE_NAME", QUEUE_NAME_DEFAULT).strip(),
        window,
        backoff,
        keyvault_timeouts=timeouts,
        ca_timeout=ca_timeout(env),
        canary=canary,
    )


def ca_timeout(env: Mapping[str, str]) -> float:
    """``CERTLC_CA_TIMEOUT``: the connect and the read deadline of every CA adapter's requests."""
    return seconds_setting(env, "CERTLC_CA_TIMEOUT", CA_TIMEOUT_DEFAULT, SettingsError)


def _days(env: Mapping[str, str], key: str, default: int, high: int) -> int:
    return whole_number_setting(env, key, default, low=0, high=high, unit="days", error=SettingsError)


def _whole_seconds(env: Mapping[str, str], key: str, default: int, high: int) -> int:
    return whole_number_setting(env, key, default, low=1, high=high, unit="seconds", error=SettingsError)
