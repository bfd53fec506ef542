"""Notifications: typed messages, recipients and routes from tags, SMTP, webhook and paging channels, the fan-out."""

from renewal.notify.channel import Channel, NotificationError, NotifyConfigError, Route
from renewal.notify.notifications import (
    CompromiseHandled,
    Escalation,
    ExpiringWithoutRenewal,
    MessageRejected,
    Notification,
    RenewalFailed,
    Renewed,
    ServingProblem,
)
from renewal.notify.notifier import ChannelResult, Notifier, NotifyReport
from renewal.notify.paging import OpsgenieChannel, PagerDutyChannel
from renewal.notify.recipients import parse_recipients, recipients_from_tags
from renewal.notify.routing import channels_from_tags
from renewal.notify.settings import notifier_from_env
from renewal.notify.smtp import SmtpChannel, SmtpSettings
from renewal.notify.webhook import WebhookChannel

__all__ = [
    "Channel",
    "ChannelResult",
    "CompromiseHandled",
    "Escalation",
    "ExpiringWithoutRenewal",
    "MessageRejected",
    "Notification",
    "NotificationError",
    "Notifier",
    "NotifyConfigError",
    "NotifyReport",
    "OpsgenieChannel",
    "PagerDutyChannel",
    "RenewalFailed",
    "Renewed",
    "Route",
    "ServingProblem",
    "SmtpChannel",
    "SmtpSettings",
    "WebhookChannel",
    "channels_from_tags",
    "notifier_from_env",
    "parse_recipients",
    "recipients_from_tags",
]
