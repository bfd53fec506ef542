"""Builds the ``Notifier`` from app settings.

| Setting | Default | Meaning |
|---|---|---|
| `CERTLC_NOTIFY_DEFAULT_RECIPIENTS` | (none) | Addresses (`,`/`;`) added to every `Recipient` tag |
| `CERTLC_SMTP_HOST` | (unset: no e-mail) | SMTP server host name |
| `CERTLC_SMTP_PORT` | 587 / 465 / 25 by security | SMTP server port |
| `CERTLC_SMTP_SENDER` | (required with a host) | The From address |
| `CERTLC_SMTP_USERNAME` | (none: no AUTH) | SMTP AUTH user |
| `CERTLC_SMTP_PASSWORD` | (none) | SMTP AUTH password; in Azure a Key Vault reference |
| `CERTLC_SMTP_PASSWORD_SETTING` | (none) | Name of another app setting holding the password |
| `CERTLC_SMTP_SECURITY` | `starttls` | `starttls` (required), `tls` (implicit), `none` (loopback only) |
| `CERTLC_SMTP_TIMEOUT` | 10 | Seconds per step: connect, greeting, EHLO, STARTTLS, AUTH, each send command |
| `CERTLC_SMTP_CA_BUNDLE` | system trust store | a private CA for the SMTP server: PEM text or a file's path |
| `CERTLC_WEBHOOK_URLS` | (none) | `kind=url;...`, kind `teams`, `slack` or `generic` (secret) |
| `CERTLC_WEBHOOK_TIMEOUT` | 10 | Seconds to connect to a webhook receiver, and to wait for each read of its answer |
| `CERTLC_WEBHOOK_CA_BUNDLE` | system trust store | a private CA for webhook receivers: PEM text or a file's path |

`CERTLC_SMTP_PASSWORD` is best a Key Vault reference (`@Microsoft.KeyVault(SecretUri=...)`),
which the platform resolves; `CERTLC_SMTP_PASSWORD_SETTING` points at another setting instead.

Timeouts are more than 0 and at most 300 s. A channel that does not answer in time is a failed
delivery: logged and in the report, never an error of the renewal (that would issue again).

A setting that cannot be used raises ``NotifyConfigError`` naming the setting (never a
password or a webhook URL), so a mistake shows up when the app starts, not when a
certificate has already been renewed.
"""

from __future__ import annotations

from collections.abc import Mapping

from renewal.notify.channel import Channel, NotifyConfigError
from renewal.notify.notifier import Notifier
from renewal.notify.smtp import SMTP_TIMEOUT_DEFAULT, SmtpChannel, SmtpSettings
from renewal.notify.webhook import WEBHOOK_TIMEOUT_DEFAULT, WebhookChannel
from renewal.setting_values import seconds_setting, whole_number_setting
from renewal.trust import ca_bundle


def _seconds(env: Mapping[str, str], key: str, default: float) -> float:
    return seconds_setting(env, key, default, NotifyConfigError)


def _port(env: Mapping[str, str]) -> int | None:
    """None when unset: the security mode's own port."""
    return whole_number_setting(env, "CERTLC_SMTP_PORT", 0, low=1, high=65535, error=NotifyConfigError) or None


def _password(env: Mapping[str, str]) -> str | None:
    pointer = env.get("CERTLC_SMTP_PASSWORD_SETTING", "").strip()
    if not pointer:
        return env.get("CERTLC_SMTP_PASSWORD") or None
    if pointer not in env:
        raise NotifyConfigError(f"CERTLC_SMTP_PASSWORD_SETTING names the app setting {pointer!r}, which is not set")
    return env[pointer] or None


def smtp_channel_from_env(env: Mapping[str, str]) -> SmtpChannel | None:
    host = env.get("CERTLC_SMTP_HOST", "").strip()
    if not host:
        return None
    settings = SmtpSettings(
        host=host,
        port=_port(env),
        sender=env.get("CERTLC_SMTP_SENDER", "").strip(),
        username=env.get("CERTLC_SMTP_USERNAME", "").strip() or None,
        password=_password(env),
        security=env.get("CERTLC_SMTP_SECURITY", "starttls").strip().lower() or "starttls",
        timeout=_seconds(env, "CERTLC_SMTP_TIMEOUT", SMTP_TIMEOUT_DEFAULT),
        ca_bundle=ca_bundle(env, "CERTLC_SMTP_CA_BUNDLE", NotifyConfigError),
    )
    return SmtpChannel(settings)


def webhook_channels_from_env(env: Mapping[str, str]) -> list[WebhookChannel]:
    timeout = _seconds(env, "CERTLC_WEBHOOK_TIMEOUT", WEBHOOK_TIMEOUT_DEFAULT)
    bundle = ca_bundle(env, "CERTLC_WEBHOOK_CA_BUNDLE", NotifyConfigError)
    channels = []
    entries = [e.strip() for e in env.get("CERTLC_WEBHOOK_URLS", "").split(";") if e.strip()]
    for position, entry in enumerate(entries, start=1):
        kind, sep, url = entry.partition("=")
        if not sep or not url.strip():
            # The entry may be a bare URL: do not echo it.
            raise NotifyConfigError(
                f"CERTLC_WEBHOOK_URLS entry {position} is not written as kind=url (kind: teams, slack or generic)"
            )
        channels.append(WebhookChannel(kind.strip().lower(), url.strip(), timeout=timeout, ca_bundle=bundle))
    return channels


def notifier_from_env(env: Mapping[str, str]) -> Notifier:
    channels: list[Channel] = []
    smtp = smtp_channel_from_env(env)
    if smtp is not None:
        channels.append(smtp)
    channels.extend(webhook_channels_from_env(env))
    return Notifier(channels)
