"""host.json keeps the audit trail whole in Application Insights.

The audit trail is the ``certlc.audit`` logger's JSON lines at Information level, which the Functions
host sends to Application Insights as traces. Adaptive sampling would drop some of them under load, so
traces are excluded from sampling ("excludedTypes", a ``;``-separated list of Dependency, Event,
Exception, PageView, Request and Trace, in the host.json reference for Functions 2.x and later).
"""

import json
import logging

from renewal.audit import Audit, AuditEvent
from tests.infra.template import ROOT

HOST = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
SAMPLING_TYPES = {"Dependency", "Event", "Exception", "PageView", "Request", "Trace"}
LEVELS = {"Trace": 0, "Debug": 1, "Information": 2, "Warning": 3, "Error": 4, "Critical": 5, "None": 6}


def sampled_types(host: dict) -> set[str]:
    """The telemetry types adaptive sampling may drop with this host.json."""
    sampling = host.get("logging", {}).get("applicationInsights", {}).get("samplingSettings", {})
    if sampling.get("isEnabled", True) is False:
        return set()
    excluded = {t.strip() for t in (sampling.get("excludedTypes") or "").split(";") if t.strip()}
    assert excluded <= SAMPLING_TYPES, f"unknown sampling types {sorted(excluded - SAMPLING_TYPES)}"
    included = {t.strip() for t in (sampling.get("includedTypes") or "").split(";") if t.strip()}
    return (included or SAMPLING_TYPES) - excluded


def test_traces_requests_and_exceptions_are_never_sampled():
    assert not {"Trace", "Request", "Exception"} & sampled_types(HOST)


def test_the_sampling_check_sees_traces_sampled():
    sampling = {"samplingSettings": {"isEnabled": True, "excludedTypes": "Request;Exception"}}
    assert "Trace" in sampled_types({"logging": {"applicationInsights": sampling}})
    assert sampled_types({"logging": {"applicationInsights": {"samplingSettings": {"isEnabled": False}}}}) == set()


def test_the_audit_lines_pass_the_function_log_filter(caplog):
    """Code logs in a function are category Function.<name>.User: the "Function" level (else default) applies."""
    with caplog.at_level(logging.DEBUG, logger="certlc.audit"):
        Audit().record(AuditEvent.SKIPPED, vault="kv", name="cert", correlation_id="c", attempt=1)
    (line,) = [r for r in caplog.records if r.name == "certlc.audit"]
    levels = HOST["logging"]["logLevel"]
    allowed = LEVELS[levels.get("Function", levels.get("default", "Information"))]
    assert allowed <= {logging.DEBUG: 1, logging.INFO: 2, logging.WARNING: 3}[line.levelno]
