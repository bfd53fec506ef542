"""Fan one notification out to its channels; a channel failure is reported, never raised.

Which channels: ``renewal.notify.routing`` (severity, the ``certlc-notify`` tag).

The renewal workflow calls this after the certificate is merged. If sending raised,
the message would be retried and the certificate issued a second time (a certlc
weak point), so every failure becomes a line in the ``NotifyReport`` instead.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Sequence
from dataclasses import dataclass

from renewal.notify.channel import Channel, NotificationError
from renewal.notify.notifications import Notification
from renewal.notify.routing import route

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChannelResult:
    channel: str
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class NotifyReport:
    results: tuple[ChannelResult, ...]

    @property
    def ok(self) -> bool:
        """True when every configured channel delivered (also when none is configured)."""
        return all(r.ok for r in self.results)

    @property
    def failed(self) -> tuple[ChannelResult, ...]:
        return tuple(r for r in self.results if not r.ok)

    def as_dict(self) -> dict[str, str]:
        """Compact per-channel outcome, e.g. for an audit record."""
        return {r.channel: "ok" if r.ok else f"error: {r.error}" for r in self.results}


class Notifier:
    def __init__(self, channels: Sequence[Channel]) -> None:
        self.channels = tuple(channels)

    def send(self, notification: Notification) -> NotifyReport:
        if not self.channels:
            log.info("no notification channel configured; %s not sent", notification.kind)
        chosen = route(self.channels, notification)
        if self.channels and not chosen:
            log.info("no channel takes %s notifications of severity %s", notification.kind, notification.severity)
        return NotifyReport(tuple(self._deliver(channel, notification) for channel in chosen))

    def _deliver(self, channel: Channel, notification: Notification) -> ChannelResult:
        name = channel.name
        try:
            channel.send(notification, notification.recipients)
        except NotificationError as exc:
            error = str(exc)
        except Exception as exc:  # any channel bug must not reach the renewal workflow
            # The exception text may embed a secret (a URL, a password), so name only its type and place.
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            where = f"{os.path.basename(frame.filename)}:{frame.lineno}"
            error = f"unexpected {type(exc).__name__} at {where} in the {name} channel"
        else:
            log.info("sent %s notification through %s", notification.kind, name)
            return ChannelResult(name, True)
        log.warning("could not send %s notification through %s: %s", notification.kind, name, error)
        return ChannelResult(name, False, error)
