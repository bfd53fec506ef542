"""Paging services: PagerDuty (Events API v2) and Opsgenie (Alert API).

Each notification opens, or updates, one incident keyed by certificate and kind
(``Notification.incident_key``), so the daily repeat of a warning adds to the open
incident instead of paging anew. A ``Renewed`` opens nothing: it resolves the incidents
the certificate's failure, expiry and escalation notifications opened. Text is cut to
the services' documented limits, since they refuse a longer field and the page is lost.

The routing key and the GenieKey are secrets: they travel in the body or a header,
never in a URL, and are never put in a log line or an error.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

from renewal.clients import is_loopback_url
from renewal.notify.channel import NotifyConfigError, Route
from renewal.notify.notifications import Escalation, Notification
from renewal.notify.webhook import WEBHOOK_TIMEOUT_DEFAULT, post_json

SOURCE = "certlc"
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
OPSGENIE_URL = "https://api.opsgenie.com"  # EU accounts: https://api.eu.opsgenie.com

# PagerDuty Events API v2, "Send an Alert Event".
PD_SUMMARY_LIMIT = 1024
PD_DEDUP_KEY_LIMIT = 255
PD_SEVERITY = {"info": "info", "warning": "warning", "error": "error"}

# Opsgenie Alert API, "Create Alert" and "Close Alert".
OG_MESSAGE_LIMIT = 130
OG_ALIAS_LIMIT = 512
OG_DESCRIPTION_LIMIT = 15000
OG_DETAILS_LIMIT = 8000  # keys and values together
OG_NOTE_LIMIT = 25000
OG_PRIORITY = {"info": "P5", "warning": "P3", "error": "P2"}

KEY = re.compile(r"[\x21-\x7e]+")  # visible ASCII: it goes into a JSON body or an HTTP header


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, an ellipsis showing where it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clip_key(key: str, limit: int) -> str:
    """At most ``limit`` characters and still one key per input: a cut key ends in a hash of the whole."""
    if len(key) <= limit:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{key[: limit - len(digest) - 1]}~{digest}"


def _check_endpoint(url: str, service: str) -> None:
    """https, or http to a loopback receiver (the tests): the requests carry the key."""
    parts = urlsplit(url)
    if not parts.hostname or parts.scheme not in ("https", "http"):
        raise NotifyConfigError(f"the {service} endpoint is not an http(s) URL (host {parts.hostname!r})")
    if parts.scheme == "http" and not is_loopback_url(url):
        raise NotifyConfigError(
            f"the {service} endpoint at {parts.hostname} must use https: requests carry the key, and plain http "
            "is only accepted for a loopback receiver"
        )


@dataclass(frozen=True)
class IncidentChannel:
    """A channel that opens incidents and resolves them when the certificate is renewed."""

    key: str = field(repr=False)
    url: str
    timeout: float = WEBHOOK_TIMEOUT_DEFAULT
    ca_bundle: str | None = None
    route: Route = field(default_factory=Route)

    kind: ClassVar[str]
    service: ClassVar[str]

    def __post_init__(self) -> None:
        if not KEY.fullmatch(self.key):
            raise NotifyConfigError(f"the {self.service} key is empty or holds spaces or characters outside ASCII")
        _check_endpoint(self.url, self.service)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "?"

    @property
    def name(self) -> str:
        return self.route.label(self.kind, self.host)

    def _post(self, url: str, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        where = f"{self.service} at {self.host}"
        post_json(url, payload, where, timeout=self.timeout, ca_bundle=self.ca_bundle, headers=headers, secret=self.key)


def pagerduty_events(notification: Notification, routing_key: str) -> list[dict[str, Any]]:
    """The Events API v2 bodies for one notification: one trigger, or one resolve per incident it ends."""
    if notification.resolves():
        return [
            {"routing_key": routing_key, "event_action": "resolve", "dedup_key": clip_key(key, PD_DEDUP_KEY_LIMIT)}
            for key in notification.resolves()
        ]
    severity = "critical" if isinstance(notification, Escalation) else PD_SEVERITY[notification.severity]
    return [
        {
            "routing_key": routing_key,
            "event_action": "trigger",
            "dedup_key": clip_key(notification.incident_key, PD_DEDUP_KEY_LIMIT),
            "client": SOURCE,
            "payload": {
                "summary": clip(notification.summary, PD_SUMMARY_LIMIT),
                "source": notification.about,
                "severity": severity,
                "class": notification.kind,
                "component": SOURCE,
                "custom_details": dict(notification.facts()),
            },
        }
    ]


@dataclass(frozen=True)
class PagerDutyChannel(IncidentChannel):
    url: str = PAGERDUTY_URL

    kind: ClassVar[str] = "pagerduty"
    service: ClassVar[str] = "PagerDuty"

    def send(self, notification: Notification, recipients: Sequence[str]) -> None:
        for event in pagerduty_events(notification, self.key):
            self._post(self.url, event)


def _details(facts: list[tuple[str, str]]) -> dict[str, str]:
    """The facts as Opsgenie details, cut to its total limit (the description keeps them whole)."""
    details: dict[str, str] = {}
    room = OG_DETAILS_LIMIT
    for label, value in facts:
        if room <= len(label):
            break
        details[label] = clip(value, room - len(label))
        room -= len(label) + len(details[label])
    return details


def opsgenie_alert(notification: Notification) -> dict[str, Any]:
    """The Create Alert body."""
    priority = "P1" if isinstance(notification, Escalation) else OG_PRIORITY[notification.severity]
    return {
        "message": clip(notification.subject, OG_MESSAGE_LIMIT),
        "alias": clip_key(notification.incident_key, OG_ALIAS_LIMIT),
        "description": clip(notification.text_body(), OG_DESCRIPTION_LIMIT),
        "priority": priority,
        "details": _details(notification.facts()),
        "entity": clip(notification.about, OG_ALIAS_LIMIT),
        "source": SOURCE,
        "tags": [SOURCE, notification.kind],
    }


@dataclass(frozen=True)
class OpsgenieChannel(IncidentChannel):
    url: str = OPSGENIE_URL  # the API's base; EU accounts use https://api.eu.opsgenie.com

    kind: ClassVar[str] = "opsgenie"
    service: ClassVar[str] = "Opsgenie"

    def send(self, notification: Notification, recipients: Sequence[str]) -> None:
        base = self.url.rstrip("/") + "/v2/alerts"
        headers = {"Authorization": f"GenieKey {self.key}"}
        if not notification.resolves():
            self._post(base, opsgenie_alert(notification), headers)
            return
        note = {"source": SOURCE, "note": clip(notification.summary, OG_NOTE_LIMIT)}
        for key in notification.resolves():
            alias = quote(clip_key(key, OG_ALIAS_LIMIT), safe="")
            self._post(f"{base}/{alias}/close?identifierType=alias", note, headers)
