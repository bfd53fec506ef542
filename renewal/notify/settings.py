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
| `CERTLC_WEBHOOK_URLS` | (none) | `kind[:name][@min-severity]=value;...` (secret): chat and paging, below |
| `CERTLC_WEBHOOK_TIMEOUT` | 10 | Seconds to connect to a webhook or paging receiver, and for each read of its answer |
| `CERTLC_WEBHOOK_CA_BUNDLE` | system trust store | a private CA for webhook and paging receivers: PEM text or a path |

`CERTLC_WEBHOOK_URLS` entries, `;`-separated, each `kind[:name][@min-severity]=value`:

| kind | value |
|---|---|
| `teams`, `slack`, `generic` | the webhook URL |
| `pagerduty` | an Events API v2 routing key, or `https://KEY@host/path` to post elsewhere |
| `opsgenie` | an API integration's key, or `https://KEY@api.eu.opsgenie.com` for an EU account |

`name` (default: the kind) is what a certificate's `certlc-notify` tag picks the channel by; several
channels may share one. `min-severity` is `info` (everything, the default), `warning` or `error`:
`pagerduty:oncall@error=KEY` pages only for failed renewals and escalations (and resolves on renewal).
Routing is described in ``renewal.notify.routing``; plain http is accepted for loopback receivers only.

`CERTLC_SMTP_PASSWORD` is best a Key Vault reference (`@Microsoft.KeyVault(SecretUri=...)`),
which the platform resolves; `CERTLC_SMTP_PASSWORD_SETTING` points at another setting instead.

Timeouts are more than 0 and at most 300 s. A channel that does not answer in time is a failed
delivery: logged and in the report, never an error of the renewal (that would issue again).

A setting that cannot be used raises ``NotifyConfigError`` naming the setting and entry (never a
password, a webhook URL or a paging key), so a mistake shows up when the app starts, not when a
certificate has already been renewed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

from renewal.notify.channel import Channel, NotifyConfigError, Route
from renewal.notify.notifier import Notifier
from renewal.notify.paging import PAGERDUTY_URL, IncidentChannel, OpsgenieChannel, PagerDutyChannel
from renewal.notify.routing import CHANNEL_NAME, SEVERITIES, RoutedChannel
from renewal.notify.smtp import SMTP_TIMEOUT_DEFAULT, SmtpChannel, SmtpSettings
from renewal.notify.webhook import PAYLOADS, WEBHOOK_TIMEOUT_DEFAULT, WebhookChannel
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


# kind, an optional name for the certlc-notify tag, an optional minimum severity: teams:ops@warning
ENTRY_HEAD = re.compile(r"(?P<kind>[a-z][a-z0-9-]*)(?::(?P<name>[^@]*))?(?:@(?P<severity>.*))?")
PAGING_KINDS: dict[str, type[IncidentChannel]] = {"pagerduty": PagerDutyChannel, "opsgenie": OpsgenieChannel}
KINDS = (*PAYLOADS, *PAGING_KINDS)
SETTING = "CERTLC_WEBHOOK_URLS"


@dataclass(frozen=True)
class Entry:
    position: int
    kind: str
    route: Route
    value: str = field(repr=False)  # a webhook URL or a paging key: a secret


def _entries(env: Mapping[str, str]) -> list[Entry]:
    """``kind[:name][@min-severity]=value;...``. Errors name the setting and the entry, never its value."""
    entries = []
    items = [e.strip() for e in env.get(SETTING, "").split(";") if e.strip()]
    for position, item in enumerate(items, start=1):
        head, sep, value = item.partition("=")
        match = ENTRY_HEAD.fullmatch(head.strip().lower())
        if not sep or not value.strip() or match is None:
            # The entry may be a bare URL or key: do not echo it.
            raise NotifyConfigError(
                f"{SETTING} entry {position} is not written as kind=url, or kind:name@min-severity=url "
                f"(kind: {', '.join(KINDS)}; for pagerduty and opsgenie the value may be the key)"
            )
        where = f"{SETTING} entry {position}"
        kind, name, severity = match["kind"], match["name"], match["severity"]
        if kind not in KINDS:
            raise NotifyConfigError(f"{where} has a kind that is not one of {', '.join(KINDS)}")
        if name is not None and not CHANNEL_NAME.fullmatch(name):
            raise NotifyConfigError(
                f"{where}: the name after {kind}: must be 1 to 40 letters, digits, - or _, starting with a letter "
                "or digit (it is what the certlc-notify tag names)"
            )
        if severity is not None and severity not in SEVERITIES:
            raise NotifyConfigError(f"{where}: the minimum severity after @ must be one of {', '.join(SEVERITIES)}")
        entries.append(Entry(position, kind, Route(name or "", severity or SEVERITIES[0]), value.strip()))
    return entries


def _paging_channel(kind: str, value: str, route: Route, timeout: float, bundle: str | None) -> IncidentChannel:
    """``KEY`` for the service's public endpoint, or ``https://KEY@host/path`` for another (the EU's, a test's)."""
    cls = PAGING_KINDS[kind]
    if "://" not in value:
        return cls(value, timeout=timeout, ca_bundle=bundle, route=route)
    parts = urlsplit(value)
    if not parts.username:
        raise NotifyConfigError(f"the {kind} URL must carry the key as its user part: https://KEY@host/...")
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    try:
        port = parts.port
    except ValueError:
        raise NotifyConfigError(f"the {kind} URL's port is not a number from 0 to 65535") from None
    if port:
        netloc += f":{port}"
    path = parts.path if parts.path.strip("/") or kind != "pagerduty" else urlsplit(PAGERDUTY_URL).path
    url = urlunsplit((parts.scheme, netloc, path, parts.query, ""))
    return cls(unquote(parts.username), url, timeout=timeout, ca_bundle=bundle, route=route)


def _channel(entry: Entry, timeout: float, bundle: str | None) -> RoutedChannel:
    try:
        if entry.kind in PAGING_KINDS:
            return _paging_channel(entry.kind, entry.value, entry.route, timeout, bundle)
        return WebhookChannel(entry.kind, entry.value, timeout=timeout, ca_bundle=bundle, route=entry.route)
    except NotifyConfigError as exc:
        raise NotifyConfigError(f"{SETTING} entry {entry.position}: {exc}") from None


def webhook_channels_from_env(env: Mapping[str, str]) -> list[RoutedChannel]:
    """Chat webhooks and paging services, each with its route name and minimum severity."""
    timeout = _seconds(env, "CERTLC_WEBHOOK_TIMEOUT", WEBHOOK_TIMEOUT_DEFAULT)
    bundle = ca_bundle(env, "CERTLC_WEBHOOK_CA_BUNDLE", NotifyConfigError)
    return [_channel(entry, timeout, bundle) for entry in _entries(env)]


def notifier_from_env(env: Mapping[str, str]) -> Notifier:
    channels: list[Channel] = []
    smtp = smtp_channel_from_env(env)
    if smtp is not None:
        channels.append(smtp)
    channels.extend(webhook_channels_from_env(env))
    return Notifier(channels)
