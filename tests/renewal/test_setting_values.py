"""Numbers in app settings: one parser, messages that name the setting, its value and what it must be."""

from __future__ import annotations

import pytest

from ingestion.run import expiring_days
from ingestion.upload import IngestionConfigError
from renewal.canary import canary_settings_from_env
from renewal.clock import clock_from_env
from renewal.errors import ConfigError
from renewal.runtime import ca_factory
from renewal.setting_values import number_setting, seconds_setting, whole_number_setting
from renewal.settings import SettingsError, settings_from_env


def test_unset_or_blank_is_the_default_and_a_good_value_is_read() -> None:
    assert whole_number_setting({}, "N", 7, low=1) == 7
    assert whole_number_setting({"N": "  "}, "N", 7, low=1) == 7
    assert whole_number_setting({"N": " 12 "}, "N", 7, low=1, high=12) == 12
    assert number_setting({"F": "0.5"}, "F", 1.0, low=0, high=1) == 0.5
    assert seconds_setting({"S": "300"}, "S", 10.0) == 300.0


@pytest.mark.parametrize(
    ("key", "value", "must"),
    [
        ("CERTLC_RENEW_BEFORE_DAYS", "a month", "is not a whole number of days"),
        ("CERTLC_RENEW_BEFORE_DAYS", "3651", "must be at least 0 and at most 3650 days"),
        ("CERTLC_RENEW_LIFETIME_FRACTION", "1.5", "must be at least 0 and at most 1"),
        ("CERTLC_RENEW_LIFETIME_FRACTION", "nan", "must be at least 0 and at most 1"),
        ("CERTLC_MAX_ATTEMPTS", "0", "must be at least 1 and at most 1000"),
        ("CERTLC_BACKOFF_BASE_SECONDS", "1.5", "is not a whole number of seconds"),
        ("CERTLC_CA_TIMEOUT", "0", "must be more than 0 and at most 300 seconds"),
    ],
)
def test_the_renewal_settings_name_the_setting_and_what_it_must_be(key: str, value: str, must: str) -> None:
    with pytest.raises(SettingsError, match=f"^{key}={value!r} {must}$"):
        settings_from_env({"CERTLC_VAULTS": "kv-test", key: value})


def test_the_other_readers_use_the_same_parser_with_their_own_error() -> None:
    with pytest.raises(ConfigError, match=r"^CERTLC_CANARY_EVERY_DAYS='0' must be at least 1 and at most 365 days$"):
        canary_settings_from_env({"CERTLC_CANARY_EVERY_DAYS": "0"})
    with pytest.raises(IngestionConfigError, match=r"^CERTLC_EXPIRING_DAYS='-1' must be at least 0 days$"):
        expiring_days({"CERTLC_EXPIRING_DAYS": "-1"})
    with pytest.raises(ConfigError, match=r"^CERTLC_ADCS_POLL_SECONDS='soon' is not a whole number of seconds$"):
        env = {"CERTLC_ADCS_SERVER": "ca.contoso.com", "CERTLC_ADCS_POLL_SECONDS": "soon"}
        ca_factory(env, clock_from_env(env))("adcs")
