"""The renewal lock's blob container exists and the app's identity can read it.

gather: ``get_container_properties`` on the container ``CERTLC_LOCK_CONTAINER`` names, through the same
connection as the queues (``CertlcStorage`` or ``CertlcStorage__blobServiceUri``, resolved by
``renewal.clients.blob_container_client``). It is a read; the container is never created here (the runtime
would create it on first use; the doctor reports it missing instead), and no lease is taken.
decide: ``judge_lock_container`` tells a missing container from a refused identity from an unreachable endpoint.

What a read cannot show: taking a lease needs ``blobs/write``, which only a write would test. An identity with
Storage Blob Data Reader passes this check and still cannot lock.
"""

from __future__ import annotations

from collections.abc import Mapping

from certlc.doctor.net import answer_from_sdk_error, sdk_options
from certlc.doctor.result import Answer, CheckResult, failed, passed

LOCK_ROLE = "Storage Blob Data Contributor"  # what infra/main.json assigns the app's identity on the container
BAD_SIGNATURE = "Server failed to authenticate the request"  # the message of a wrong account key or SAS


def lock_container_name(env: Mapping[str, str]) -> str:
    from renewal.ledger import CONTAINER_DEFAULT

    return (env.get("CERTLC_LOCK_CONTAINER") or "").strip() or CONTAINER_DEFAULT


def _connection(env: Mapping[str, str]) -> str:
    from renewal.clients import QUEUE_CONNECTION_DEFAULT

    return env.get("CERTLC_QUEUE_CONNECTION", QUEUE_CONNECTION_DEFAULT)


def missing_blob_endpoint(env: Mapping[str, str]) -> str:
    """Why a connection string cannot reach the blobs the queues sit beside, or ''.

    A connection string that lists its endpoints (the emulator's do) but no ``BlobEndpoint`` makes the SDK
    guess ``<account>.blob.core.windows.net``: a public address, not the emulator next to the queues.
    """
    connection = _connection(env)
    parts = {key.strip().lower() for key, _, _ in (part.partition("=") for part in env.get(connection, "").split(";"))}
    if "queueendpoint" in parts and "blobendpoint" not in parts:
        return f"{connection} names a QueueEndpoint but no BlobEndpoint: the renewal lock is a blob container"
    return ""


def probe_lock_container(env: Mapping[str, str], name: str, timeout: float) -> tuple[Answer, str]:
    """What ``get_container_properties`` answered, and the container's URL (empty when the settings name none)."""
    from azure.core.exceptions import AzureError

    from renewal.clients import blob_container_client
    from renewal.errors import ConfigError

    problem = missing_blob_endpoint(env)
    if problem:
        return Answer(code="Config", message=problem), ""
    try:
        client = blob_container_client(env, name)
    except (ConfigError, ValueError) as exc:
        return Answer(code="Config", message=str(exc)), ""
    with client:
        try:
            client.get_container_properties(**sdk_options(timeout))  # per call: the helper takes no options
        except (AzureError, OSError) as exc:
            return answer_from_sdk_error(exc, timeout), client.url
    return Answer(status=200), client.url


def judge_lock_container(name: str, answer: Answer, url: str, connection: str = "CertlcStorage") -> CheckResult:
    check = f"lock container {name}"
    if answer.code == "Config":
        return failed(
            check,
            answer.message,
            f"set {connection} (a connection string with a BlobEndpoint) or {connection}__blobServiceUri "
            "as infra/main.json does",
            url,
        )
    if answer.ok:
        return passed(check, "exists; the identity can read it", url)
    detail = answer.describe()
    if answer.no_token:
        return failed(check, detail, "run where the app's managed identity (or a signed-in identity) is available", url)
    if answer.unreachable:
        return failed(
            check, detail, f"check {connection} / {connection}__blobServiceUri and that this network reaches it", url
        )
    if answer.status == 404 or answer.code == "ContainerNotFound":
        return failed(
            check,
            f"does not exist ({detail})",
            f"deploy infra/main.json (it creates {name}), or: az storage container create --auth-mode login "
            f"--name {name} --account-name <storage account>",
            url,
        )
    if answer.status == 403 and (
        answer.code in ("AuthenticationFailed", "InvalidAuthenticationInfo")
        or answer.message.startswith(BAD_SIGNATURE)  # Azurite's blob service answers AuthorizationFailure with it
    ):
        return failed(check, detail, "the storage key or SAS in the connection string is wrong or expired", url)
    if answer.status in (401, 403):
        return failed(
            check,
            detail,
            f"assign the app's identity '{LOCK_ROLE}' on container {name} (infra/main.json does), "
            "and allow the app's network in the storage firewall",
            url,
        )
    return failed(check, detail, "the blob endpoint answered unexpectedly; check the storage connection setting", url)


def check_lock_container(env: Mapping[str, str], name: str, timeout: float) -> CheckResult:
    return judge_lock_container(name, *probe_lock_container(env, name, timeout), connection=_connection(env))
