"""Chat and automation webhooks: Teams (Adaptive Card), Slack (text + blocks), generic JSON.

A webhook URL is a bearer secret (whoever holds it can post), so it is never logged
or put in an error: only its host is. ``requests`` is imported when a message is sent,
not when the Functions host loads the app.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from renewal.clients import is_loopback_url, is_timeout
from renewal.notify.channel import NotificationError, NotifyConfigError, Route
from renewal.notify.notifications import Notification

WEBHOOK_TIMEOUT_DEFAULT = 10.0
TEAMS_COLOURS = {"info": "Good", "warning": "Warning", "error": "Attention"}
REDACTED = "[redacted]"


class _RedactWebhookPaths(logging.Filter):
    """urllib3 logs each request line at DEBUG; a webhook's path and query are its secret."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        hidden = message
        for secret in self.secrets:
            hidden = hidden.replace(secret, REDACTED)
        if hidden != message:
            record.msg, record.args = hidden, ()
        return True


_REDACT = _RedactWebhookPaths()
logging.getLogger("urllib3.connectionpool").addFilter(_REDACT)
SLACK_HEADER_LIMIT = 150


def teams_payload(notification: Notification, recipients: Sequence[str]) -> dict[str, Any]:
    """An Adaptive Card message, as Teams Workflows ("post to a channel when a webhook request is received") take."""
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "text": notification.subject,
                "weight": "Bolder",
                "size": "Medium",
                "wrap": True,
                "color": TEAMS_COLOURS[notification.severity],
            },
            {"type": "TextBlock", "text": notification.summary, "wrap": True},
            {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in notification.facts()]},
        ],
    }
    return {
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}],
    }


def _slack_escape(text: str) -> str:
    """Slack's mrkdwn treats ``<``, ``>`` and ``&`` as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(notification: Notification, recipients: Sequence[str]) -> dict[str, Any]:
    facts = [{"type": "mrkdwn", "text": f"*{_slack_escape(k)}*\n{_slack_escape(v)}"} for k, v in notification.facts()]
    return {
        "text": _slack_escape(notification.summary),
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": notification.subject[:SLACK_HEADER_LIMIT]},
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": _slack_escape(notification.summary)}},
            # Slack allows at most 10 fields per section.
            *({"type": "section", "fields": facts[i : i + 10]} for i in range(0, len(facts), 10)),
        ],
    }


def generic_payload(notification: Notification, recipients: Sequence[str]) -> dict[str, Any]:
    return {"source": "certlc", **notification.to_dict(), "recipients": list(recipients)}


PAYLOADS: dict[str, Callable[[Notification, Sequence[str]], dict[str, Any]]] = {
    "teams": teams_payload,
    "slack": slack_payload,
    "generic": generic_payload,
}


@dataclass(frozen=True)
class WebhookChannel:
    kind: str
    url: str = field(repr=False)
    timeout: float = WEBHOOK_TIMEOUT_DEFAULT  # connect, and each read of the answer
    ca_bundle: str | None = None  # trust a private CA for the receiver's certificate
    route: Route = field(default_factory=Route)

    def __post_init__(self) -> None:
        if self.kind not in PAYLOADS:
            raise NotifyConfigError(f"webhook kind {self.kind!r} is not one of {', '.join(PAYLOADS)}")
        parts = urlsplit(self.url)
        if not parts.hostname or parts.scheme not in ("https", "http"):
            raise NotifyConfigError(f"{self.kind} webhook URL is not an http(s) URL (host {parts.hostname!r})")
        if parts.scheme == "http" and not is_loopback_url(self.url):
            raise NotifyConfigError(
                f"{self.kind} webhook to {parts.hostname} must use https: the URL is a secret and "
                "plain http is only accepted for a loopback receiver"
            )
        secret = parts.path + (f"?{parts.query}" if parts.query else "")
        if secret.strip("/"):
            _REDACT.secrets.add(secret)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "?"

    @property
    def name(self) -> str:
        return self.route.label(self.kind, self.host)

    def send(self, notification: Notification, recipients: Sequence[str]) -> None:
        payload = PAYLOADS[self.kind](notification, recipients)
        post_json(
            self.url, payload, f"{self.kind} webhook at {self.host}", timeout=self.timeout, ca_bundle=self.ca_bundle
        )


def post_json(
    url: str,
    payload: dict[str, Any],
    where: str,
    *,
    timeout: float,
    ca_bundle: str | None,
    headers: dict[str, str] | None = None,
    secret: str = "",
) -> None:
    """POST to a receiver; any failure is a ``NotificationError`` naming ``where``, never the URL or ``secret``."""
    import requests

    try:
        response = requests.post(
            url, json=payload, headers=headers, timeout=timeout, verify=ca_bundle or True, allow_redirects=False
        )
    except requests.exceptions.SSLError:
        raise NotificationError(
            f"TLS with {where} failed; if it uses a private CA set CERTLC_WEBHOOK_CA_BUNDLE"
        ) from None
    except requests.RequestException as exc:
        if is_timeout(exc):  # also a stall in the middle of the body, which requests calls a ConnectionError
            raise NotificationError(f"{where} did not answer within {timeout:g} s") from None
        # The exception text embeds the URL path and query (the secret part): name the kind only.
        raise NotificationError(f"{where} could not be reached ({type(exc).__name__})") from None
    if not 200 <= response.status_code < 300:
        detail = " ".join(response.text.split())
        if secret:  # a receiver may quote the key it refused
            detail = detail.replace(secret, REDACTED)
        raise NotificationError(f"{where} answered HTTP {response.status_code}: {detail[:200] or response.reason}")
