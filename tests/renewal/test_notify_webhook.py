"""Webhook channels, the fan-out and the settings, against a real local HTTP receiver."""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest

from renewal.notify import (
    Escalation,
    Notifier,
    NotifyConfigError,
    RenewalFailed,
    Renewed,
    WebhookChannel,
    notifier_from_env,
)
from tests.fixtures.mail import HttpReceiver, SmtpServer
from tests.fixtures.pki import make_tls_material

HOSTILE = "<script>x</script>&"
SECRET_PATH = "/hooks/T000-secret-sig-0123456789"


def renewal(recipients: tuple[str, ...] = ("ops@contoso.com",)) -> Renewed:
    return Renewed(
        vault="kv-prod",
        name="www-contoso",
        old_version="1" * 32,
        new_version="2" * 32,
        thumbprint="C0FFEE",
        expires_on=datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC),
        ca="acme",
        recipients=recipients,
    )


def test_teams_gets_an_adaptive_card(http_receiver: HttpReceiver) -> None:
    failure = RenewalFailed(
        vault="kv",
        name="web",
        reason_code="denied",
        reason="CA said no.",
        action="Ask the CA admin.",
        permanent=True,
        attempt=2,
    )
    WebhookChannel("teams", http_receiver.url + "/teams").send(failure, ["ops@contoso.com"])
    [request] = http_receiver.received("/teams")
    [attachment] = request.body["attachments"]
    assert request.body["type"] == "message"
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["body"][0]["text"] == failure.subject
    assert card["body"][0]["color"] == "Attention"
    facts = {f["title"]: f["value"] for f in card["body"][2]["facts"]}
    assert facts["What to do"] == "Ask the CA admin."
    assert facts["Permanent"] == "yes"


def test_slack_gets_text_and_escaped_blocks(http_receiver: HttpReceiver) -> None:
    escalation = Escalation(
        vault="kv", name=HOSTILE, expires_on=datetime(2031, 1, 1, tzinfo=UTC), days_left=4, last_error="denied"
    )
    WebhookChannel("slack", http_receiver.url + "/slack").send(escalation, [])
    [request] = http_receiver.received("/slack")
    body = request.body
    assert "&lt;script&gt;x&lt;/script&gt;&amp;" in body["text"]
    assert "<script>" not in body["text"]
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "section"]
    assert any("2031-01-01T00:00:00Z (UTC)" in f["text"] for f in body["blocks"][2]["fields"])


def test_generic_gets_the_notification_fields(http_receiver: HttpReceiver) -> None:
    WebhookChannel("generic", http_receiver.url + "/generic").send(renewal(), ["ops@contoso.com"])
    [request] = http_receiver.received("/generic")
    assert request.headers["content-type"] == "application/json"
    body = request.body
    assert body["source"] == "certlc"
    assert body["kind"] == "renewed"
    assert body["new_version"] == "2" * 32
    assert body["expires_on"] == "2031-01-02T03:04:05Z"
    assert body["recipients"] == ["ops@contoso.com"]


def test_one_failing_channel_does_not_stop_the_others(
    http_receiver: HttpReceiver, smtp_starttls: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    env = {
        "CERTLC_SMTP_HOST": smtp_starttls.host,
        "CERTLC_SMTP_PORT": str(smtp_starttls.port),
        "CERTLC_SMTP_SENDER": "certlc@contoso.com",
        "CERTLC_SMTP_USERNAME": smtp_starttls.user,
        "CERTLC_SMTP_PASSWORD_SETTING": "MAIL_PASSWORD",
        "MAIL_PASSWORD": smtp_starttls.password,
        "CERTLC_SMTP_CA_BUNDLE": smtp_starttls.ca_bundle,
        "CERTLC_WEBHOOK_URLS": (
            f"generic={http_receiver.url}/failing{SECRET_PATH}; "
            f"teams={http_receiver.url}/teams ; SLACK={http_receiver.url}/slack"
        ),
    }
    http_receiver.script(f"/failing{SECRET_PATH}", [500])
    notifier = notifier_from_env(env)
    # INFO and up: urllib3 itself logs request paths at DEBUG, which host.json keeps off.
    with caplog.at_level(logging.INFO):
        report = notifier.send(renewal())

    assert [r.channel for r in report.results] == [
        f"smtp:127.0.0.1:{smtp_starttls.port}",
        "generic:127.0.0.1",
        "teams:127.0.0.1",
        "slack:127.0.0.1",
    ]
    assert [r.ok for r in report.results] == [True, False, True, True]
    assert not report.ok
    [failed] = report.failed
    assert failed.error is not None and "answered HTTP 500" in failed.error
    assert len(smtp_starttls.messages) == 1
    assert len(http_receiver.received("/teams")) == 1
    assert len(http_receiver.received("/slack")) == 1
    assert len(http_receiver.received(f"/failing{SECRET_PATH}")) == 1
    assert SECRET_PATH not in caplog.text
    assert SECRET_PATH not in str(report)
    assert smtp_starttls.password not in caplog.text


def test_private_cas_given_as_pem_text_are_trusted_for_smtp_and_webhooks(smtp_starttls: SmtpServer, tmp_path) -> None:
    """In Azure the bundles are the settings' values (or Key Vault references resolved to them), not files."""
    tls = make_tls_material(tmp_path)
    receiver = HttpReceiver(tls=tls)
    receiver.start()
    try:
        env = {
            "CERTLC_SMTP_HOST": smtp_starttls.host,
            "CERTLC_SMTP_PORT": str(smtp_starttls.port),
            "CERTLC_SMTP_SENDER": "certlc@contoso.com",
            "CERTLC_SMTP_USERNAME": smtp_starttls.user,
            "CERTLC_SMTP_PASSWORD": smtp_starttls.password,
            "CERTLC_SMTP_CA_BUNDLE": Path(smtp_starttls.ca_bundle).read_text(),
            "CERTLC_WEBHOOK_URLS": f"generic={receiver.url}/hook",
            "CERTLC_WEBHOOK_CA_BUNDLE": tls.ca_pem.read_text(),
        }

        report = notifier_from_env(env).send(renewal())

        assert report.ok, report
        assert len(smtp_starttls.messages) == 1
        assert len(receiver.received("/hook")) == 1
        with pytest.raises(NotifyConfigError, match=r"^CERTLC_WEBHOOK_CA_BUNDLE holds PEM text that does not parse"):
            notifier_from_env(env | {"CERTLC_WEBHOOK_CA_BUNDLE": "-----BEGIN CERTIFICATE-----\nnope\n"})
    finally:
        receiver.stop()


def test_unreachable_webhook_error_hides_the_url(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    channel = WebhookChannel("generic", f"http://127.0.0.1:{port}{SECRET_PATH}?sig=abc", timeout=2)
    notifier = Notifier([channel])
    with caplog.at_level(logging.DEBUG):
        report = notifier.send(renewal())
    [result] = report.results
    assert not result.ok
    assert result.error == "generic webhook at 127.0.0.1 could not be reached (ConnectionError)"
    assert SECRET_PATH not in caplog.text
    assert SECRET_PATH not in repr(channel)


class ExplodingChannel:
    name = "exploding"

    def send(self, notification: object, recipients: object) -> None:
        raise RuntimeError("boom with https://hooks.example/secret")


def test_a_channel_bug_is_reported_not_raised(http_receiver: HttpReceiver) -> None:
    webhooks = notifier_from_env({"CERTLC_WEBHOOK_URLS": f"generic={http_receiver.url}/after"}).channels
    notifier = Notifier([ExplodingChannel(), *webhooks])
    report = notifier.send(renewal())
    assert [r.ok for r in report.results] == [False, True]
    error = report.results[0].error or ""
    assert error.startswith("unexpected RuntimeError at test_notify_webhook.py:")
    assert "secret" not in error
    assert len(http_receiver.received("/after")) == 1


def test_no_channels_is_an_empty_successful_report() -> None:
    report = notifier_from_env({}).send(renewal())
    assert report.results == () and report.ok


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CERTLC_WEBHOOK_URLS": "https://hooks.contoso.com/abc"}, "entry 1 is not written as kind=url"),
        ({"CERTLC_WEBHOOK_URLS": "discord=https://hooks.contoso.com/abc"}, "not one of teams, slack, generic"),
        ({"CERTLC_WEBHOOK_URLS": "slack=http://hooks.contoso.com/abc"}, "must use https"),
        ({"CERTLC_WEBHOOK_TIMEOUT": "soon"}, "CERTLC_WEBHOOK_TIMEOUT"),
        (
            {"CERTLC_SMTP_HOST": "mail", "CERTLC_SMTP_SENDER": "a@b.com", "CERTLC_SMTP_PORT": "0"},
            "CERTLC_SMTP_PORT='0' must be at least 1 and at most 65535",
        ),
        (
            {"CERTLC_SMTP_HOST": "mail", "CERTLC_SMTP_SENDER": "a@b.com", "CERTLC_SMTP_PASSWORD_SETTING": "NOPE"},
            "'NOPE', which is not set",
        ),
    ],
)
def test_bad_settings_name_the_setting_not_the_secret(env: dict[str, str], message: str) -> None:
    with pytest.raises(NotifyConfigError, match=message) as caught:
        notifier_from_env(env)
    assert "/abc" not in str(caught.value)


def test_smtp_defaults_from_settings() -> None:
    [smtp] = notifier_from_env({"CERTLC_SMTP_HOST": "smtp.contoso.com", "CERTLC_SMTP_SENDER": "a@b.com"}).channels
    assert smtp.name == "smtp:smtp.contoso.com:587"
    [tls] = notifier_from_env(
        {"CERTLC_SMTP_HOST": "smtp.contoso.com", "CERTLC_SMTP_SENDER": "a@b.com", "CERTLC_SMTP_SECURITY": "TLS"}
    ).channels
    assert tls.name == "smtp:smtp.contoso.com:465"
