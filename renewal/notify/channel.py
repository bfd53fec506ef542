"""The one small interface every notification channel implements, and its errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from renewal.errors import ConfigError
from renewal.notify.notifications import Notification


class NotificationError(Exception):
    """A channel could not deliver; the message says what to fix and never holds a secret."""


class NotifyConfigError(NotificationError, ConfigError):
    """A notification setting cannot be used as written."""


class Channel(Protocol):
    @property
    def name(self) -> str:
        """Short label for reports and logs (never a secret such as a webhook URL)."""
        ...

    def send(self, notification: Notification, recipients: Sequence[str]) -> None: ...
