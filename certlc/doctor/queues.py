"""The renewal, failed and poison queues exist and the app's identity can reach them.

gather: ``get_queue_properties`` on each queue, the lightest read the Queue service has; a queue is never
created here (the runtime would create one on first use; the doctor reports it missing instead).
decide: ``judge_queue`` tells a missing queue from a refused identity from an unreachable endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping

from certlc.doctor.net import answer_from_sdk_error, sdk_options
from certlc.doctor.result import Answer, CheckResult, failed, passed

QUEUE_ROLE = "Storage Queue Data Contributor"  # what infra/main.json assigns the app's identity


def probe_queue(env: Mapping[str, str], name: str, timeout: float) -> tuple[Answer, str]:
    """What ``get_queue_properties`` answered, and the queue's URL (empty when the settings name none)."""
    from azure.core.exceptions import AzureError

    from renewal.clients import queue_client
    from renewal.errors import ConfigError

    try:
        client = queue_client(env, name, **sdk_options(timeout))
    except (ConfigError, ValueError) as exc:
        return Answer(code="Config", message=str(exc)), ""
    with client:
        try:
            properties = client.get_queue_properties()
        except (AzureError, OSError) as exc:
            return answer_from_sdk_error(exc, timeout), client.url
    return Answer(status=200, body={"approximate_message_count": properties.approximate_message_count}), client.url


def judge_queue(name: str, answer: Answer, url: str) -> CheckResult:
    check = f"queue {name}"
    if answer.code == "Config":
        return failed(check, answer.message, "set the queue connection as infra/main.json does", url)
    if answer.ok:
        count = (answer.body or {}).get("approximate_message_count")
        return passed(check, f"exists ({count} message(s) waiting)", url)
    detail = answer.describe()
    if answer.no_token:
        return failed(check, detail, "run where the app's managed identity (or a signed-in identity) is available", url)
    if answer.unreachable:
        return failed(
            check, detail, "check CertlcStorage / CertlcStorage__queueServiceUri and that this network reaches it", url
        )
    if answer.status == 404 or answer.code == "QueueNotFound":
        return failed(
            check,
            f"does not exist ({detail})",
            f"deploy infra/main.json (it creates {name}), or: az storage queue create --auth-mode login "
            f"--name {name} --account-name <storage account>",
            url,
        )
    if answer.status == 403 and answer.code in ("AuthenticationFailed", "InvalidAuthenticationInfo"):
        return failed(check, detail, "the storage key or SAS in the connection string is wrong or expired", url)
    if answer.status in (401, 403):
        return failed(
            check,
            detail,
            f"assign the app's identity '{QUEUE_ROLE}' on the storage account (infra/main.json does), "
            "and allow the app's network in the storage firewall",
            url,
        )
    return failed(check, detail, "the queue endpoint answered unexpectedly; check the queue connection setting", url)
