"""Declared endpoints: the ``certlc-endpoints`` tag, ``CERTLC_ENDPOINTS`` and ``CERTLC_PROBER``, good and bad."""

from __future__ import annotations

import logging

import pytest

from renewal import tags
from renewal.errors import ConfigError
from renewal.targets.declared import (
    Endpoint,
    declared_targets,
    parse_endpoint,
    prober_for,
    prober_names,
    shared_endpoints,
    tag_endpoints,
)

GOOD = [
    ("www.contoso.com", Endpoint("www.contoso.com")),
    ("WWW.Contoso.COM.", Endpoint("www.contoso.com")),
    ("api.contoso.com:8443", Endpoint("api.contoso.com", 8443)),
    ("api.contoso.com:1", Endpoint("api.contoso.com", 1)),
    ("api.contoso.com:65535", Endpoint("api.contoso.com", 65535)),
    ("www.contoso.com@10.0.0.5", Endpoint("www.contoso.com", 443, "10.0.0.5")),
    ("www.contoso.com:8443@appgw-backend.internal", Endpoint("www.contoso.com", 8443, "appgw-backend.internal")),
    ("www.contoso.com@[fd00::5]", Endpoint("www.contoso.com", 443, "fd00::5")),
    ("10.0.0.7", Endpoint("10.0.0.7")),
    ("[2001:db8::1]:8443", Endpoint("2001:db8::1", 8443)),
    ("  xn--bcher-kva.example  ", Endpoint("xn--bcher-kva.example")),
]

BAD = [
    ("", "the host is empty"),
    (":443", "the host is empty"),
    ("www.contoso.com:0", "port '0' is not a number from 1 to 65535"),
    ("www.contoso.com:65536", "port '65536' is not a number from 1 to 65535"),
    ("www.contoso.com:https", "port 'https' is not a number"),
    ("www.contoso.com:", "port '' is not a number"),
    ("*.contoso.com", "is a wildcard"),
    ("-www.contoso.com", "is not a host name"),
    ("www..contoso.com", "is not a host name"),
    ("under_score.contoso.com", "is not a host name"),
    (f"{'a' * 64}.contoso.com", "is not a host name"),
    ("999.0.0.1", "is not an IPv4 address"),
    ("2001:db8::1", "an IPv6 address in brackets"),
    ("www.contoso.com:443:444", "more than one ':'"),
    ("[2001:db8::zz]:443", "is not an IPv6 address"),
    ("www.contoso.com@", "the connect address is empty"),
    ("www.contoso.com@10.0.0.5:443", "the connect address takes no port"),
    ("www.contoso.com@fd00::5", "write the IPv6 address fd00::5 in brackets"),
]


@pytest.mark.parametrize(("text", "endpoint"), GOOD)
def test_an_endpoint_is_host_port_and_connect_address(text, endpoint):
    assert parse_endpoint(text) == endpoint


@pytest.mark.parametrize(("text", "message"), BAD)
def test_a_bad_endpoint_says_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=None) as caught:
        parse_endpoint(text)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("endpoint", "text"),
    [
        (Endpoint("www.contoso.com"), "www.contoso.com:443"),
        (Endpoint("2001:db8::1", 8443), "[2001:db8::1]:8443"),
        (Endpoint("www.contoso.com", 443, "fd00::5"), "www.contoso.com:443@[fd00::5]"),
        (Endpoint("www.contoso.com", 8443, "10.0.0.5"), "www.contoso.com:8443@10.0.0.5"),
    ],
)
def test_an_endpoint_is_written_back_the_way_it_is_declared(endpoint, text):
    assert str(endpoint) == text
    assert parse_endpoint(text) == endpoint


def test_a_tag_keeps_its_good_entries_and_reports_each_bad_one_by_position():
    endpoints, problems = tag_endpoints("www.contoso.com, bad:0 ,,api.contoso.com:8443,www.contoso.com,*.x.com")

    assert endpoints == [Endpoint("www.contoso.com"), Endpoint("api.contoso.com", 8443)]
    assert problems == [
        "tag certlc-endpoints entry 2 ('bad:0') skipped: port '0' is not a number from 1 to 65535",
        "tag certlc-endpoints entry 6 ('*.x.com') skipped: *.x.com is a wildcard: name one host a client asks for",
    ]


def test_a_full_tag_value_is_read_whole():
    """Key Vault keeps 256 characters in a tag value: as many endpoints as fit are all read."""
    names = [f"host{n:02}.contoso.com" for n in range(13)]
    value = ",".join(names)
    assert len(value) <= tags.MAX_TAG_TEXT

    endpoints, problems = tag_endpoints(value)

    assert [e.host for e in endpoints] == names and not problems


def test_declared_targets_come_from_the_tag_then_the_setting_each_once(caplog):
    env = {"CERTLC_ENDPOINTS": "kv1/www|kv1/api=shared.contoso.com,www.contoso.com; kv2/other=elsewhere.contoso.com"}
    tagged = {"Certlc-Endpoints": "www.contoso.com, api.contoso.com:8443@10.0.0.5, nope:99999", "Recipient": "x@y"}

    with caplog.at_level(logging.WARNING, logger="certlc.targets"):
        declared = declared_targets("KV1", "WWW", tagged, env)

    assert [t.name for t in declared.targets] == [
        "www.contoso.com:443",
        "api.contoso.com:8443@10.0.0.5",
        "shared.contoso.com:443",
    ]
    second = declared.targets[1]
    assert (second.kind, second.source, second.pickup, second.hosts, second.port, second.connect) == (
        "endpoint", "declared", "unknown", ("api.contoso.com",), 8443, "10.0.0.5"
    )  # fmt: skip
    assert declared.problems == (
        "tag certlc-endpoints entry 3 ('nope:99999') skipped: port '99999' is not a number from 1 to 65535",
    )
    assert "KV1/WWW: tag certlc-endpoints entry 3" in caplog.text
    assert len({t.key for t in declared.targets}) == 3


def test_a_certificate_nothing_declares_has_no_targets():
    declared = declared_targets("kv1", "www", {}, {"CERTLC_ENDPOINTS": "kv1/api=api.contoso.com"})

    assert declared.targets == () and declared.problems == ()


def test_the_setting_lists_endpoints_for_several_certificates():
    shared = shared_endpoints(
        {"CERTLC_ENDPOINTS": " kv1/www | kv1/www-old = lb.contoso.com:8443@10.1.1.1 , www.contoso.com ;kv1/www=x.test"}
    )

    assert shared == {
        "kv1/www": (Endpoint("lb.contoso.com", 8443, "10.1.1.1"), Endpoint("www.contoso.com"), Endpoint("x.test")),
        "kv1/www-old": (Endpoint("lb.contoso.com", 8443, "10.1.1.1"), Endpoint("www.contoso.com")),
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("kv1/www", "CERTLC_ENDPOINTS entry 1 ('kv1/www') is not vault/name|vault/name=host[:port][@connect],..."),
        ("kv1/www=", "CERTLC_ENDPOINTS entry 1 ('kv1/www=') is not vault/name"),
        ("=www.contoso.com", "CERTLC_ENDPOINTS entry 1 ('=www.contoso.com') is not vault/name"),
        (
            "kv1/a=a.test;kv1/www=a.test,b.test:0",
            "CERTLC_ENDPOINTS entry 2 ('kv1/www=a.test,b.test:0'): endpoint 2 ('b.test:0'): port '0' is not a number",
        ),
        (
            "www=a.test",
            "CERTLC_ENDPOINTS entry 1 ('www=a.test'): 'www' is not vault/name (for example kv1/www-contoso)",
        ),
        ("kv1/www|kv1/bad_name=a.test", "'kv1/bad_name' is not vault/name"),
        ("k/www=a.test", "'k/www' is not vault/name"),
    ],
)
def test_a_bad_setting_names_the_setting_and_the_entry(value, message):
    with pytest.raises(ConfigError) as caught:
        shared_endpoints({"CERTLC_ENDPOINTS": value})

    assert message in str(caught.value)


PROBER = "onprem-1=*.corp.contoso.com,10.0.0.0/8, intranet.contoso.com ; dc2=[fd00::]/8,192.168.1.7;onprem-1=x.test"


@pytest.mark.parametrize(
    ("host", "connect", "worker"),
    [
        ("app.corp.contoso.com", None, "onprem-1"),
        ("a.b.corp.contoso.com", None, "onprem-1"),  # any depth under the domain
        ("corp.contoso.com", None, ""),  # *.domain is what is under it, not the domain itself
        ("xcorp.contoso.com", None, ""),
        ("INTRANET.contoso.com.", None, "onprem-1"),
        ("www.contoso.com", "10.20.30.40", "onprem-1"),  # the address it is reached at
        ("10.1.2.3", None, "onprem-1"),
        ("[fd00::12]", None, "dc2"),
        ("www.contoso.com", "fd00::12", "dc2"),
        ("www.contoso.com", "192.168.1.7", "dc2"),
        ("www.contoso.com", "192.168.1.8", ""),
        ("www.contoso.com", None, ""),
        ("x.test", None, "onprem-1"),
    ],
)
def test_the_first_prober_entry_that_matches_the_host_or_its_address_wins(host, connect, worker):
    assert prober_for(host, {"CERTLC_PROBER": PROBER}, connect=connect) == worker


def test_without_prober_rules_the_app_probes_everything():
    assert prober_for("app.corp.contoso.com", {}) == ""
    assert prober_names({"CERTLC_PROBER": PROBER}) == {"onprem-1", "dc2"}


def test_a_declared_target_names_its_prober():
    env = {"CERTLC_PROBER": PROBER}
    declared = declared_targets("kv1", "www", {tags.ENDPOINTS: "app.corp.contoso.com,www.contoso.com"}, env)

    assert [(t.name, t.prober) for t in declared.targets] == [
        ("app.corp.contoso.com:443", "onprem-1"),
        ("www.contoso.com:443", ""),
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("onprem-1", "CERTLC_PROBER entry 1 ('onprem-1') is not worker=pattern,..."),
        ("On Prem=a.test", "CERTLC_PROBER entry 1 ('On Prem=a.test') is not worker=pattern"),
        ("onprem-1=", "CERTLC_PROBER entry 1 ('onprem-1=') names no endpoints"),
        ("a=x.test;b=10.0.0.0/33", "CERTLC_PROBER entry 2 ('b=10.0.0.0/33'): pattern 1 ('10.0.0.0/33')"),
        ("a=x.test,*.bad_domain.test", "CERTLC_PROBER entry 1 ('a=x.test,*.bad_domain.test'): pattern 2"),
        ("a=300.1.1.1", "300.1.1.1 is not an address or network"),
    ],
)
def test_a_bad_prober_setting_names_the_setting_and_the_entry(value, message):
    with pytest.raises(ConfigError) as caught:
        prober_for("x.test", {"CERTLC_PROBER": value})

    assert message in str(caught.value)
