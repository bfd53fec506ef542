"""SmtpChannel against real aiosmtpd servers: STARTTLS + AUTH, implicit TLS, and refusals."""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime

import pytest

from renewal.notify import (
    ExpiringWithoutRenewal,
    NotificationError,
    Notifier,
    NotifyConfigError,
    Renewed,
    SmtpChannel,
    SmtpSettings,
)
from tests.fixtures.mail import SmtpServer

HOSTILE = "<script>x</script>&"
RECIPIENTS = ("ops@contoso.com", "pki@contoso.com")


def channel_for(server: SmtpServer, **changes: object) -> SmtpChannel:
    values: dict[str, object] = {
        "host": server.host,
        "port": server.port,
        "sender": "certlc@contoso.com",
        "username": server.user,
        "password": server.password,
        "ca_bundle": server.ca_bundle,
        "timeout": 5.0,
    }
    values.update(changes)
    return SmtpChannel(SmtpSettings(**values))  # type: ignore[arg-type]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def hostile_renewal() -> Renewed:
    return Renewed(
        vault="kv-prod",
        name=HOSTILE,
        old_version="1" * 32,
        new_version="2" * 32,
        thumbprint="C0FFEE",
        expires_on=datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC),
        ca="local",
        recipients=RECIPIENTS,
    )


def test_starttls_with_auth_delivers_both_parts(smtp_starttls: SmtpServer) -> None:
    channel_for(smtp_starttls).send(hostile_renewal(), RECIPIENTS)

    [mail] = smtp_starttls.messages
    assert mail.rcpt_tos == RECIPIENTS
    assert mail.mail_from == "certlc@contoso.com"
    message = mail.message
    assert message["Subject"] == f"[certlc] Renewed certificate {HOSTILE} in kv-prod"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert HOSTILE in text
    assert "2031-01-02T03:04:05Z (UTC)" in text
    assert "<script>" not in html
    assert "&lt;script&gt;x&lt;/script&gt;&amp;" in html


def test_implicit_tls(smtp_implicit_tls: SmtpServer) -> None:
    warning = ExpiringWithoutRenewal(
        vault="kv", name="web", expires_on=datetime(2031, 1, 1, tzinfo=UTC), days_left=9, recipients=RECIPIENTS
    )
    channel_for(smtp_implicit_tls, security="tls").send(warning, warning.recipients)
    [mail] = smtp_implicit_tls.messages
    assert "will expire within the next 9 days" in mail.message["Subject"]


def test_server_without_starttls_is_refused_and_nothing_is_sent(smtp_plain: SmtpServer) -> None:
    with pytest.raises(NotificationError, match="does not offer STARTTLS; refusing to send"):
        channel_for(smtp_plain).send(hostile_renewal(), RECIPIENTS)
    assert smtp_plain.messages == []


def test_plain_smtp_only_when_asked_for_and_on_loopback(smtp_plain: SmtpServer) -> None:
    channel_for(smtp_plain, security="none", username=None, password=None).send(hostile_renewal(), RECIPIENTS)
    assert len(smtp_plain.messages) == 1
    with pytest.raises(NotifyConfigError, match="only allowed for a loopback relay"):
        SmtpSettings(host="smtp.contoso.com", sender="certlc@contoso.com", security="none")


def test_wrong_password_is_a_clear_error_without_the_password(
    smtp_starttls: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "Wr0ng-Passw0rd-value"
    channel = channel_for(smtp_starttls, password=wrong)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(NotificationError, match="rejected the login for user 'certlc-mailer'") as caught:
            channel.send(hostile_renewal(), RECIPIENTS)
        report = Notifier([channel]).send(hostile_renewal())
    assert wrong not in str(caught.value)
    assert not report.ok and "rejected the login" in (report.results[0].error or "")
    assert wrong not in caplog.text
    assert wrong not in repr(channel.settings)
    assert smtp_starttls.messages == []


def test_refused_recipients_are_reported(smtp_starttls: SmtpServer) -> None:
    channel = channel_for(smtp_starttls)
    with pytest.raises(NotificationError, match=r"delivered to 1 recipient\(s\) but refused gone@refused\.example"):
        channel.send(hostile_renewal(), ["ops@contoso.com", "gone@refused.example"])
    assert [m.rcpt_tos for m in smtp_starttls.messages] == [("ops@contoso.com",)]
    with pytest.raises(NotificationError, match=r"refused every recipient \(gone@refused.example\)"):
        channel.send(hostile_renewal(), ["gone@refused.example"])
    assert len(smtp_starttls.messages) == 1


def test_untrusted_server_certificate_says_how_to_trust_it(smtp_starttls: SmtpServer) -> None:
    with pytest.raises(NotificationError, match="CERTLC_SMTP_CA_BUNDLE"):
        channel_for(smtp_starttls, ca_bundle=None).send(hostile_renewal(), RECIPIENTS)
    assert smtp_starttls.messages == []


def test_no_recipients_is_an_error_before_connecting() -> None:
    channel = SmtpChannel(SmtpSettings(host="127.0.0.1", port=9, sender="certlc@contoso.com"))
    with pytest.raises(NotificationError, match="set the certificate's Recipient tag"):
        channel.send(hostile_renewal(), [])


def test_unreachable_server_is_a_notification_error() -> None:
    port = closed_port()
    channel = SmtpChannel(SmtpSettings(host="127.0.0.1", port=port, sender="certlc@contoso.com", timeout=2))
    with pytest.raises(NotificationError, match=rf"SMTP server 127\.0\.0\.1:{port} could not be reached"):
        channel.send(hostile_renewal(), RECIPIENTS)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"host": "", "sender": "a@b.com"}, "CERTLC_SMTP_HOST"),
        ({"host": "mail", "sender": ""}, "CERTLC_SMTP_SENDER"),
        ({"host": "mail", "sender": "a@b.com", "security": "ssl"}, "CERTLC_SMTP_SECURITY"),
        ({"host": "mail", "sender": "a@b.com", "username": "u"}, "both a user name and a password"),
    ],
)
def test_settings_are_checked(settings: dict[str, str], message: str) -> None:
    with pytest.raises(NotifyConfigError, match=message):
        SmtpSettings(**settings)  # type: ignore[arg-type]
