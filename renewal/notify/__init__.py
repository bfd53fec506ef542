"""Notifications: typed messages, recipients from tags, SMTP and webhook channels, the fan-out."""

from renewal.notify.channel import Channel, NotificationError, NotifyConfigError
from renewal.notify.notifications import (
    Escalation,
    ExpiringWithoutRenewal,
    MessageRejected,
    Notification,
    RenewalFailed,
    Renewed,
    warning_due,
)
from renewal.notify.notifier import ChannelResult, Notifier, NotifyReport
from renewal.notify.recipients import parse_recipients, recipients_from_tags
from renewal.notify.settings import notifier_from_env
from renewal.notify.smtp import SmtpChannel, SmtpSettings
from renewal.notify.webhook import WebhookChannel

__all__ = [
    "Channel",
    "ChannelResult",
    "Escalation",
    "ExpiringWithoutRenewal",
    "MessageRejected",
    "Notification",
    "NotificationError",
    "Notifier",
    "NotifyConfigError",
    "NotifyReport",
    "RenewalFailed",
    "Renewed",
    "SmtpChannel",
    "SmtpSettings",
    "WebhookChannel",
    "notifier_from_env",
    "parse_recipients",
    "recipients_from_tags",
    "warning_due",
]
