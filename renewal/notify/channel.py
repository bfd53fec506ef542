"""The one small interface every notification channel implements, and its errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from renewal.errors import ConfigError
from renewal.notify.notifications import Notification


class NotificationError(Exception):
    """A channel could not deliver; the message says what to fix and never holds a secret."""


class NotifyConfigError(NotificationError, ConfigError):
    """A notification setting cannot be used as written."""


@dataclass(frozen=True)
class Route:
    """Which notifications a chat or paging channel takes (``renewal.notify.routing``)."""

    name: str = ""  # what a certlc-notify tag picks it by; empty: the channel's kind
    min_severity: str = "info"  # info, warning or error

    def label(self, kind: str, host: str) -> str:
        """The channel's name in reports: ``kind:host``, after the route name when the setting gave one."""
        return f"{kind}:{host}" if self.name in ("", kind) else f"{self.name} ({kind}:{host})"


class Channel(Protocol):
    @property
    def name(self) -> str:
        """Short label for reports and logs (never a secret such as a webhook URL)."""
        ...

    def send(self, notification: Notification, recipients: Sequence[str]) -> None: ...
