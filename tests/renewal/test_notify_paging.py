"""PagerDuty and Opsgenie channels, routing by severity and by the certlc-notify tag, against a real local receiver."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from urllib.parse import quote

import pytest

from renewal.notify import (
    Escalation,
    ExpiringWithoutRenewal,
    MessageRejected,
    Notification,
    Notifier,
    NotifyConfigError,
    OpsgenieChannel,
    PagerDutyChannel,
    RenewalFailed,
    Renewed,
    WebhookChannel,
    channels_from_tags,
    notifier_from_env,
)
from renewal.notify.paging import clip_key
from tests.fixtures.mail import HttpReceiver, SmtpServer

PD_KEY = "R0uting0Key0For0Tests0123456789ab"
OG_KEY = "eb243592-faa2-4ba2-a551-1afdf565c889"
EXPIRES = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)


def failed(reason: str = "The CA refused the request.", name: str = "www-contoso", **kw: object) -> RenewalFailed:
    return RenewalFailed(
        vault="kv-prod",
        name=name,
        reason_code="denied",
        reason=reason,
        action="Ask the CA admin.",
        permanent=True,
        attempt=1,
        **kw,  # type: ignore[arg-type]
    )


def escalation(**kw: object) -> Escalation:
    return Escalation(vault="kv-prod", name="www-contoso", expires_on=EXPIRES, days_left=5, **kw)  # type: ignore[arg-type]


def expiring(**kw: object) -> ExpiringWithoutRenewal:
    return ExpiringWithoutRenewal(vault="kv-prod", name="www-contoso", expires_on=EXPIRES, days_left=20, **kw)  # type: ignore[arg-type]


def renewed(**kw: object) -> Renewed:
    return Renewed(
        vault="kv-prod",
        name="www-contoso",
        old_version="1" * 32,
        new_version="2" * 32,
        thumbprint="C0FFEE",
        expires_on=EXPIRES,
        ca="acme",
        **kw,  # type: ignore[arg-type]
    )


def key_url(receiver: HttpReceiver, key: str, path: str) -> str:
    """The https://KEY@host/path form, on the local receiver."""
    return receiver.url.replace("http://", f"http://{key}@") + path


def sent(receiver: HttpReceiver, path: str) -> list[dict]:
    return [r.body for r in receiver.received(path)]


def test_pagerduty_triggers_one_incident_per_certificate_and_kind(http_receiver: HttpReceiver) -> None:
    notifier = notifier_from_env({"CERTLC_WEBHOOK_URLS": f"pagerduty={key_url(http_receiver, PD_KEY, '/pd')}"})
    http_receiver.script("/pd", [202, 202, 202, 202])
    reports = [notifier.send(n) for n in (escalation(), escalation(), failed(), expiring())]

    assert all(r.ok for r in reports), reports
    requests = http_receiver.received("/pd")
    assert all("authorization" not in r.headers for r in requests)  # the key is in the body, never basic auth
    first, again, failure, warning = (r.body for r in requests)
    assert first == again
    assert first["routing_key"] == PD_KEY
    assert first["event_action"] == "trigger"
    assert first["dedup_key"] == "certlc:kv-prod/www-contoso:escalation"
    assert first["payload"]["severity"] == "critical"
    assert first["payload"]["source"] == "kv-prod/www-contoso"
    assert first["payload"]["summary"] == escalation().summary
    assert first["payload"]["custom_details"]["Expires"] == "2031-01-02T03:04:05Z (UTC)"
    assert (failure["dedup_key"], failure["payload"]["severity"]) == (
        "certlc:kv-prod/www-contoso:renewal_failed",
        "error",
    )
    assert (warning["dedup_key"], warning["payload"]["severity"]) == ("certlc:kv-prod/www-contoso:expiring", "warning")


def test_opsgenie_creates_an_alert_with_the_key_in_the_header(http_receiver: HttpReceiver) -> None:
    env = {"CERTLC_WEBHOOK_URLS": f"opsgenie={key_url(http_receiver, OG_KEY, '/og')}"}
    http_receiver.script("/og/v2/alerts", [202, 202, 202])
    notifier = notifier_from_env(env)
    for notification in (escalation(), failed(), MessageRejected("unreadable", "The body is not JSON.", "{oops")):
        assert notifier.send(notification).ok

    first, failure, rejected = http_receiver.received("/og/v2/alerts")
    assert first.headers["authorization"] == f"GenieKey {OG_KEY}"
    assert first.body["message"] == escalation().subject
    assert first.body["alias"] == "certlc:kv-prod/www-contoso:escalation"
    assert first.body["priority"] == "P1"
    assert first.body["description"] == escalation().text_body()
    assert first.body["details"]["Days left"] == "5"
    assert first.body["source"] == "certlc"
    assert failure.body["priority"] == "P2"
    assert (rejected.body["alias"], rejected.body["priority"]) == ("certlc:queue/unreadable:message_rejected", "P3")


def test_text_is_cut_to_the_documented_limits(http_receiver: HttpReceiver) -> None:
    long_name = "n" * 600
    notification = failed(reason="x" * 30000, name=long_name)
    PagerDutyChannel(PD_KEY, http_receiver.url + "/pd").send(notification, [])
    OpsgenieChannel(OG_KEY, http_receiver.url + "/og").send(notification, [])

    [event] = sent(http_receiver, "/pd")
    assert len(event["payload"]["summary"]) == 1024 and event["payload"]["summary"].endswith("…")
    assert len(event["dedup_key"]) == 255
    [alert] = sent(http_receiver, "/og/v2/alerts")
    assert len(alert["message"]) == 130 and alert["message"].endswith("…")
    assert len(alert["alias"]) == 512
    assert len(alert["description"]) == 15000
    assert sum(len(k) + len(v) for k, v in alert["details"].items()) <= 8000
    assert alert["details"]["Vault"] == "kv-prod"
    # A cut key still tells certificates apart, and stays the same for the same certificate.
    other = failed(name=long_name + "2").incident_key
    assert clip_key(other, 255) != event["dedup_key"] == clip_key(notification.incident_key, 255)


def test_a_renewal_resolves_what_the_certificate_opened(http_receiver: HttpReceiver) -> None:
    env = {
        "CERTLC_WEBHOOK_URLS": (
            f"pagerduty@error={key_url(http_receiver, PD_KEY, '/pd')};"
            f"opsgenie@error={key_url(http_receiver, OG_KEY, '/og')}"
        )
    }
    report = notifier_from_env(env).send(renewed())

    assert report.ok, report
    kinds = ("renewal_failed", "expiring", "escalation")
    assert sent(http_receiver, "/pd") == [
        {"routing_key": PD_KEY, "event_action": "resolve", "dedup_key": f"certlc:kv-prod/www-contoso:{kind}"}
        for kind in kinds
    ]
    closes = [r for r in http_receiver.received() if r.path.startswith("/og/")]
    assert [r.path for r in closes] == [
        f"/og/v2/alerts/{quote(f'certlc:kv-prod/www-contoso:{kind}', safe='')}/close?identifierType=alias"
        for kind in kinds
    ]
    assert all(r.headers["authorization"] == f"GenieKey {OG_KEY}" for r in closes)
    assert closes[0].body["source"] == "certlc"


def routed_env(receiver: HttpReceiver) -> dict[str, str]:
    return {
        "CERTLC_WEBHOOK_URLS": (
            f"generic={receiver.url}/all; generic:chat@warning={receiver.url}/warn; "
            f"PagerDuty:OnCall@Error={key_url(receiver, PD_KEY, '/pd')}"
        )
    }


@pytest.mark.parametrize(
    ("notification", "paths"),
    [
        (renewed(), {"/all", "/pd"}),  # to PagerDuty only as resolves
        (expiring(), {"/all", "/warn"}),
        (failed(), {"/all", "/warn", "/pd"}),
        (escalation(), {"/all", "/warn", "/pd"}),
    ],
)
def test_channels_take_notifications_from_their_minimum_severity(
    http_receiver: HttpReceiver, notification: Notification, paths: set[str]
) -> None:
    report = notifier_from_env(routed_env(http_receiver)).send(notification)
    assert report.ok, report
    assert {r.path for r in http_receiver.received()} == paths


def test_the_certlc_notify_tag_picks_channels_and_email_still_goes(
    http_receiver: HttpReceiver, smtp_starttls: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    env = routed_env(http_receiver) | {
        "CERTLC_SMTP_HOST": smtp_starttls.host,
        "CERTLC_SMTP_PORT": str(smtp_starttls.port),
        "CERTLC_SMTP_SENDER": "certlc@contoso.com",
        "CERTLC_SMTP_USERNAME": smtp_starttls.user,
        "CERTLC_SMTP_PASSWORD": smtp_starttls.password,
        "CERTLC_SMTP_CA_BUNDLE": smtp_starttls.ca_bundle,
    }
    channels = channels_from_tags({"Recipient": "ops@contoso.com", " CERTLC-Notify ": "oncall; Chat,oncall"})
    assert channels == ("oncall", "chat")
    notifier = notifier_from_env(env)
    with caplog.at_level(logging.WARNING):
        report = notifier.send(failed(recipients=("ops@contoso.com",), channels=channels))

    assert report.ok, report
    assert [r.channel for r in report.results] == [
        f"smtp:127.0.0.1:{smtp_starttls.port}",
        "chat (generic:127.0.0.1)",
        "oncall (pagerduty:127.0.0.1)",
    ]
    assert {r.path for r in http_receiver.received()} == {"/warn", "/pd"}
    assert len(smtp_starttls.messages) == 1
    assert "channels" not in http_receiver.received("/warn")[0].body  # routing is not part of the payload
    assert [r.getMessage() for r in caplog.records if r.name.startswith("renewal.")] == []  # no fallback warning

    http_receiver.clear()
    only_pager = notifier.send(expiring(channels=channels_from_tags({"certlc-notify": "oncall"})))
    assert [r.channel for r in only_pager.results] == [f"smtp:127.0.0.1:{smtp_starttls.port}"]  # below @error
    assert http_receiver.received() == []


@pytest.mark.parametrize("tag", ["oncall, typo", "on call!"])
def test_an_unknown_name_in_the_tag_sends_to_every_channel_and_says_so(
    http_receiver: HttpReceiver, caplog: pytest.LogCaptureFixture, tag: str
) -> None:
    notifier = notifier_from_env(routed_env(http_receiver))
    with caplog.at_level(logging.WARNING):
        report = notifier.send(failed(channels=channels_from_tags({"certlc-notify": tag})))

    assert report.ok, report
    assert {r.path for r in http_receiver.received()} == {"/all", "/warn", "/pd"}
    warning = caplog.records[-1]
    assert warning.levelno == logging.WARNING
    assert "certlc-notify" in warning.getMessage() and "every channel" in warning.getMessage()
    assert tag.split(",")[-1].strip() in warning.getMessage()


def test_keys_stay_out_of_logs_errors_and_reprs(http_receiver: HttpReceiver, caplog: pytest.LogCaptureFixture) -> None:
    env = {
        "CERTLC_WEBHOOK_URLS": (
            f"pagerduty={key_url(http_receiver, PD_KEY, '/pd')}; opsgenie={key_url(http_receiver, OG_KEY, '/og')}"
        )
    }
    # The services quote the key they refuse.
    http_receiver.script("/pd", [400], body=f'{{"message": "bad routing_key {PD_KEY}"}}'.encode())
    http_receiver.script("/og/v2/alerts", [401], body=f"GenieKey {OG_KEY} is not valid".encode())
    notifier = notifier_from_env(env)
    with caplog.at_level(logging.DEBUG):
        report = notifier.send(escalation())

    pd, og = report.results
    assert pd.error == 'PagerDuty at 127.0.0.1 answered HTTP 400: {"message": "bad routing_key [redacted]"}'
    assert og.error == "Opsgenie at 127.0.0.1 answered HTTP 401: GenieKey [redacted] is not valid"
    everything = caplog.text + repr(report) + repr(notifier.channels)
    assert PD_KEY not in everything and OG_KEY not in everything
    assert len(http_receiver.received("/pd")) == 1  # the failure was the service's answer, not a missed request


@pytest.mark.parametrize(
    ("urls", "message"),
    [
        (PD_KEY, r"^CERTLC_WEBHOOK_URLS entry 1 is not written as kind=url"),
        (
            f"generic=https://hooks.contoso.com/x; pagerduty@urgent={PD_KEY}",
            r"^CERTLC_WEBHOOK_URLS entry 2: .* after @",
        ),
        (f"pagerduty:on call={PD_KEY}", r"^CERTLC_WEBHOOK_URLS entry 1: the name after pagerduty: must be"),
        (f"victorops={PD_KEY}", r"^CERTLC_WEBHOOK_URLS entry 1 has a kind that is not one of .*pagerduty, opsgenie"),
        (f"opsgenie={OG_KEY[:8]} {OG_KEY[9:]}", r"^CERTLC_WEBHOOK_URLS entry 1: the Opsgenie key is empty or holds"),
        ("opsgenie=https://api.eu.opsgenie.com", r"^CERTLC_WEBHOOK_URLS entry 1: the opsgenie URL must carry the key"),
        (f"opsgenie=https://{OG_KEY}@h.contoso.com:44x3", r"^CERTLC_WEBHOOK_URLS entry 1: the opsgenie URL's port"),
        (
            f"slack=https://hooks.contoso.com/x; generic=https://h.contoso.com/y; pagerduty=http://{PD_KEY}@pd.contoso.com",
            r"^CERTLC_WEBHOOK_URLS entry 3: the PagerDuty endpoint at pd.contoso.com must use https",
        ),
    ],
)
def test_bad_paging_entries_name_the_setting_and_entry_never_the_key(urls: str, message: str) -> None:
    with pytest.raises(NotifyConfigError, match=message) as caught:
        notifier_from_env({"CERTLC_WEBHOOK_URLS": urls})
    assert PD_KEY not in str(caught.value) and OG_KEY[9:] not in str(caught.value)


def test_the_public_endpoints_are_the_defaults() -> None:
    pd, og, eu = notifier_from_env(
        {
            "CERTLC_WEBHOOK_URLS": f"pagerduty={PD_KEY}; opsgenie={OG_KEY}; opsgenie:eu=https://{OG_KEY}@api.eu.opsgenie.com"
        }
    ).channels
    assert [c.name for c in (pd, og, eu)] == [
        "pagerduty:events.pagerduty.com",
        "opsgenie:api.opsgenie.com",
        "eu (opsgenie:api.eu.opsgenie.com)",
    ]
    assert pd.url == "https://events.pagerduty.com/v2/enqueue"
    assert (og.url, eu.url) == ("https://api.opsgenie.com", "https://api.eu.opsgenie.com")
    assert eu.key == OG_KEY


def test_a_channel_built_by_hand_is_named_by_its_kind(http_receiver: HttpReceiver) -> None:
    notifier = Notifier(
        [PagerDutyChannel(PD_KEY, http_receiver.url + "/pd"), WebhookChannel("generic", http_receiver.url + "/hook")]
    )
    assert notifier.send(expiring(channels=("pagerduty",))).ok
    assert {r.path for r in http_receiver.received()} == {"/pd"}
