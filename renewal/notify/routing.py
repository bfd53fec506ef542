"""Which channels hear about a notification: its severity, and the certificate's ``certlc-notify`` tag.

A channel from ``CERTLC_WEBHOOK_URLS`` has a name (its kind unless the setting gives one) and
a minimum severity (``info``: everything). A certificate tagged
``certlc-notify=oncall,ops`` is announced on the channels with those names only; e-mail
follows the ``Recipient`` tag as before and is never routed by this tag. A name in the tag
that no channel has is most likely a typo, and dropping the page for it would be worse
than one message too many: the notification then goes to every channel, with a warning.
A ``Renewed`` reaches a paging channel whatever its minimum severity, since it resolves
the incidents that channel opened.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence

from renewal.notify.channel import Channel
from renewal.notify.notifications import Notification
from renewal.notify.paging import IncidentChannel
from renewal.notify.webhook import WebhookChannel
from renewal.tags import NOTIFY, tag

log = logging.getLogger(__name__)

SEVERITIES = ("info", "warning", "error")  # lowest first
CHANNEL_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


def severity_at_least(severity: str, minimum: str) -> bool:
    return SEVERITIES.index(severity) >= SEVERITIES.index(minimum)


RoutedChannel = WebhookChannel | IncidentChannel


def route_name(channel: RoutedChannel) -> str:
    return channel.route.name or channel.kind


def takes(channel: RoutedChannel, notification: Notification) -> bool:
    """By severity; a paging channel also takes the renewal that resolves what it opened."""
    if notification.resolves() and isinstance(channel, IncidentChannel):
        return True
    return severity_at_least(notification.severity, channel.route.min_severity)


def route(channels: Sequence[Channel], notification: Notification) -> list[Channel]:
    """The channels ``notification`` goes to; other channels than chat and paging (e-mail) take everything."""
    wanted = set(notification.channels)
    known = {route_name(c) for c in channels if isinstance(c, RoutedChannel)}
    unknown = sorted(wanted - known)
    if unknown:
        log.warning(
            "the %s tag names %s, which no channel is called (channels: %s); %s goes to every channel",
            NOTIFY,
            ", ".join(unknown),
            ", ".join(sorted(known)) or "none",
            notification.kind,
        )
        wanted = set()
    return [
        c
        for c in channels
        if not isinstance(c, RoutedChannel) or ((not wanted or route_name(c) in wanted) and takes(c, notification))
    ]


def channels_from_tags(tags: Mapping[str, str] | None) -> tuple[str, ...]:
    """The channel names in the certificate's ``certlc-notify`` tag (``,``/``;`` separated), for
    ``Notification.channels``; empty (every channel) without the tag. A malformed name is logged and kept,
    so that routing falls back to every channel rather than silently narrowing."""
    value = tag(tags or {}, NOTIFY) or ""
    names: list[str] = []
    for item in re.split(r"[,;]", value):
        name = item.strip().lower()
        if name and name not in names:
            names.append(name)
    bad = [n for n in names if not CHANNEL_NAME.fullmatch(n)]
    if bad:
        log.warning("the %s tag holds %s, which is not a channel name", NOTIFY, ", ".join(repr(n[:40]) for n in bad))
    return tuple(names)
