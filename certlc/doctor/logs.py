"""The Logs Ingestion endpoint (DCE) and rule (DCR) the ``ingest`` function uploads to are set and accept the app.

The probe, and why it is read-only: it POSTs to the configured rule and stream, exactly where ``ingest``
uploads, but with a body that is not JSON. No implementation can store a row from that body, so nothing is
written. The service checks the request in the order the emulator does (the token, then the rule, then the
stream, then the body), so where it stops tells what is wrong:

- 401: the endpoint refused the token; 403: the identity lacks Monitoring Metrics Publisher on the rule;
- 404: no such rule (a wrong ``CERTLC_DCR_IMMUTABLE_ID``), or a stream the rule does not declare;
- 400 about the body: the endpoint, the token, the rule and the stream were all accepted: the check passes.

The alternatives are not honest: an upload of ``[]`` is a real ingestion call (logged, counted, and in the
emulator an append), and the API has no GET on a rule, so a GET would only show that something listens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from certlc.doctor.bundles import verify_for
from certlc.doctor.net import answer_from_sdk_error, one_line, sdk_options
from certlc.doctor.result import Answer, CheckResult, failed, passed

API_VERSION = "2023-01-01"
PROBE_BODY = b"certlc doctor: not JSON, so nothing can be ingested"
PUBLISHER_ROLE = "Monitoring Metrics Publisher"  # what infra/monitoring.json assigns on the rule
NAME = "logs ingestion"


@dataclass(frozen=True)
class LogsObservation:
    answer: Answer
    target: str = ""
    rule_id: str = ""
    stream: str = ""


def probe_logs(env: Mapping[str, str], timeout: float) -> LogsObservation:
    from azure.core.exceptions import AzureError
    from azure.core.rest import HttpRequest

    from ingestion.upload import logs_ingestion_client, target_from_env
    from renewal.errors import ConfigError

    trust = verify_for(env, "CERTLC_LOGS_CA_BUNDLE")
    if isinstance(trust, Answer):
        return LogsObservation(trust)
    try:
        target = target_from_env(env)
        client = logs_ingestion_client(env)
    except ConfigError as exc:
        return LogsObservation(Answer(code="Config", message=str(exc)))
    path = f"/dataCollectionRules/{quote(target.rule_id, safe='')}/streams/{quote(target.stream, safe='')}"
    where = f"{target.endpoint}{path}"
    request = HttpRequest(
        "POST",
        path,
        params={"api-version": API_VERSION},
        content=PROBE_BODY,
        headers={"Content-Type": "application/json"},
    )
    with client:
        try:
            response = client.send_request(request, **sdk_options(timeout))
        except (AzureError, OSError) as exc:
            return LogsObservation(answer_from_sdk_error(exc, timeout), where, target.rule_id, target.stream)
        try:
            error = response.json().get("error", {})
        except (ValueError, AttributeError):
            error = {}
        answer = Answer(
            status=response.status_code,
            code=str(error.get("code", "")),
            message=one_line(error.get("message", "") or response.text() or ""),
        )
    return LogsObservation(answer, where, target.rule_id, target.stream)


def judge_logs(seen: LogsObservation) -> CheckResult:
    answer, target = seen.answer, seen.target
    if answer.code == "Config":
        fix = "set CERTLC_DCE_ENDPOINT, CERTLC_DCR_IMMUTABLE_ID (and CERTLC_DCR_STREAM) from the monitoring deployment"
        return failed(NAME, answer.message, answer.fix or fix, target)
    detail = answer.describe()
    if answer.no_token:
        return failed(
            NAME, detail, "run where the app's managed identity (or a signed-in identity) is available", target
        )
    if answer.unreachable:
        return failed(
            NAME, detail, "check CERTLC_DCE_ENDPOINT (output dceLogsIngestionEndpoint) and the network", target
        )
    code = answer.code.lower()
    if answer.status in (400, 404) and "stream" in code:
        return failed(
            NAME,
            f"the rule does not declare stream {seen.stream} ({detail})",
            "set CERTLC_DCR_STREAM to the rule's stream (Custom-CertlcStatus_CL in infra/monitoring.json)",
            target,
        )
    if answer.status == 404 or (answer.status == 400 and "datacollectionrule" in code):
        return failed(
            NAME,
            f"no data collection rule {seen.rule_id} behind this endpoint ({detail})",
            "set CERTLC_DCR_IMMUTABLE_ID to the monitoring deployment's output dcrImmutableId (dcr-...)",
            target,
        )
    if answer.status == 403:
        return failed(
            NAME,
            detail,
            f"assign the app's identity '{PUBLISHER_ROLE}' on the data collection rule "
            "(infra/monitoring.json does when ingestionPrincipalId is set); check CERTLC_DCR_IMMUTABLE_ID too",
            target,
        )
    if answer.status == 401:
        return failed(NAME, detail, "the endpoint refused the token: use the app's managed identity", target)
    if answer.status == 400 or answer.ok:
        return passed(NAME, f"endpoint, rule {seen.rule_id} and stream {seen.stream} accept the identity", target)
    return failed(NAME, detail, "the endpoint answered unexpectedly; check CERTLC_DCE_ENDPOINT", target)
