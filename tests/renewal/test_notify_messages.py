"""Notification rendering, recipient parsing and the once-a-day warning rule."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, timezone

import pytest

from renewal.notify import (
    Escalation,
    ExpiringWithoutRenewal,
    RenewalFailed,
    Renewed,
    parse_recipients,
    recipients_from_tags,
)

HOSTILE = "<script>x</script>&"
EXPIRES = datetime(2031, 2, 3, 4, 5, 6, tzinfo=UTC)


def renewed(**changes: object) -> Renewed:
    values: dict[str, object] = {
        "vault": "kv-prod",
        "name": "www-contoso",
        "old_version": "a" * 32,
        "new_version": "b" * 32,
        "thumbprint": "AB12CD",
        "expires_on": EXPIRES,
        "ca": "adcs",
        "recipients": ["ops@contoso.com"],
    }
    values.update(changes)
    return Renewed(**values)  # type: ignore[arg-type]


def test_expiry_warning_keeps_the_certlc_wording() -> None:
    warning = ExpiringWithoutRenewal(vault="kv-prod", name="www", expires_on=EXPIRES, days_left=12)
    expected = "The certificate for www in kv-prod will expire within the next 12 days"
    assert warning.summary == expected
    assert expected in warning.subject
    assert expected in warning.text_body()
    assert expected in warning.html_body()


def test_dates_are_iso_utc_whatever_zone_they_were_given_in() -> None:
    tokyo = timezone(timedelta(hours=9))
    notification = renewed(expires_on=datetime(2031, 2, 3, 13, 5, 6, tzinfo=tokyo))
    assert "2031-02-03T04:05:06Z (UTC)" in notification.text_body()
    assert "2031-02-03T04:05:06Z (UTC)" in notification.html_body()
    assert notification.to_dict()["expires_on"] == "2031-02-03T04:05:06Z"
    assert "+09" not in notification.text_body()


def test_naive_dates_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        renewed(expires_on=datetime(2031, 1, 1))


@pytest.mark.parametrize(
    "notification",
    [
        renewed(name=HOSTILE, ca=HOSTILE),
        RenewalFailed(
            vault="kv",
            name=HOSTILE,
            reason_code="denied",
            reason=HOSTILE,
            action="ask <CA>",
            permanent=True,
            attempt=3,
        ),
        ExpiringWithoutRenewal(vault="kv", name=HOSTILE, expires_on=EXPIRES, days_left=20),
        Escalation(vault="kv", name=HOSTILE, expires_on=EXPIRES, days_left=5, last_error=HOSTILE),
    ],
    ids=lambda n: type(n).__name__,
)
def test_html_is_escaped_and_text_is_verbatim(notification: object) -> None:
    body = notification.html_body()  # type: ignore[attr-defined]
    assert "<script>" not in body
    assert "&lt;script&gt;x&lt;/script&gt;&amp;" in body
    assert HOSTILE in notification.text_body()  # type: ignore[attr-defined]


def test_failure_says_what_to_do_and_whether_it_retries() -> None:
    permanent = RenewalFailed(
        vault="kv",
        name="web",
        reason_code="denied",
        reason="The CA denied the request.",
        action="Ask the CA administrator why template WebServer was denied.",
        permanent=True,
        attempt=1,
    )
    transient = RenewalFailed(
        vault="kv",
        name="web",
        reason_code="ca_unavailable",
        reason="The CA did not answer.",
        action="Nothing yet; certlc retries.",
        permanent=False,
        attempt=4,
    )
    assert "will not retry" in permanent.text_body()
    assert "Ask the CA administrator" in permanent.text_body()
    assert "attempt 4, will retry" in transient.subject
    assert transient.to_dict()["permanent"] is False


def test_escalation_is_urgent_and_carries_the_last_error() -> None:
    escalation = Escalation(vault="kv", name="web", expires_on=EXPIRES, days_left=3, last_error="CA denied")
    assert escalation.subject.startswith("[certlc] URGENT")
    assert "CA denied" in escalation.text_body()
    assert escalation.severity == "error"


@pytest.mark.parametrize("key", ["Recipient", "RECIPIENT", "recipient", " recipient "])
def test_recipient_tag_key_is_case_insensitive(key: str) -> None:
    assert recipients_from_tags({key: "a@x.com", "Owner": "b@y.org"}, env={}) == ["a@x.com"]


def test_recipients_split_trim_dedupe_then_defaults() -> None:
    tags = {"Recipient": " a@x.com; b@y.org,a@x.com ;; A@X.com "}
    env = {"CERTLC_NOTIFY_DEFAULT_RECIPIENTS": "pki@contoso.com, b@y.org"}
    assert recipients_from_tags(tags, env=env) == ["a@x.com", "b@y.org", "pki@contoso.com"]


def test_invalid_addresses_are_dropped_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    junk = 'not-an-address; a@x.com; <b@y.org>; c@localhost; d@@e.com; "q"@x.com; e@x.com\nBcc: f@x.com'
    with caplog.at_level(logging.WARNING):
        result = recipients_from_tags({"recipient": junk}, env={})
    assert result == ["a@x.com"]
    parsed = parse_recipients([junk])
    assert "not-an-address" in parsed.invalid
    assert "<b@y.org>" in parsed.invalid
    assert "e@x.com\nBcc: f@x.com" in parsed.invalid
    assert "ignored 6 invalid notification address(es)" in caplog.text


def test_no_tags_no_defaults_means_nobody() -> None:
    assert recipients_from_tags(None, env={}) == []
    assert recipients_from_tags({"Recipient": ""}, env={"CERTLC_NOTIFY_DEFAULT_RECIPIENTS": " "}) == []
