"""Thin uploader to the Logs Ingestion API (a DCR stream behind a DCE).

Settings: ``CERTLC_DCE_ENDPOINT``, ``CERTLC_DCR_IMMUTABLE_ID``, ``CERTLC_DCR_STREAM``.
Identity: managed identity (DefaultAzureCredential); for the local emulator a static
token (``CERTLC_LOGS_TOKEN``, else ``CERTLC_LOCAL_TOKEN``, loopback only) and the
emulator's CA (``CERTLC_LOGS_CA_BUNDLE``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ingestion.schema import STREAM_DEFAULT
from renewal.errors import ConfigError
from renewal.trust import ca_bundle

# The service refuses calls over 1 MiB. The SDK sizes chunks without the JSON array's
# separators, so chunks are cut here, on the exact serialized size, with some headroom.
MAX_BODY_BYTES = 1024 * 1024
CHUNK_BUDGET_BYTES = MAX_BODY_BYTES - 16 * 1024
# Deadlines of each call (seconds): a DCE that does not answer must not hold a timer or a renewal for minutes.
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 30


class IngestionConfigError(ConfigError):
    """The Logs Ingestion settings cannot be used as written."""


@dataclass(frozen=True)
class LogsTarget:
    endpoint: str
    rule_id: str
    stream: str


@dataclass
class UploadResult:
    rows: int = 0
    calls: int = 0
    failed_rows: int = 0
    errors: list[str] = field(default_factory=list)


def target_from_env(env: Mapping[str, str]) -> LogsTarget:
    endpoint = env.get("CERTLC_DCE_ENDPOINT", "").strip().rstrip("/")
    rule_id = env.get("CERTLC_DCR_IMMUTABLE_ID", "").strip()
    missing = [n for n, v in (("CERTLC_DCE_ENDPOINT", endpoint), ("CERTLC_DCR_IMMUTABLE_ID", rule_id)) if not v]
    if missing:
        raise IngestionConfigError(
            f"{' and '.join(missing)} not set: use the monitoring deployment's outputs "
            "(dceLogsIngestionEndpoint, dcrImmutableId)"
        )
    if not endpoint.startswith("https://"):
        raise IngestionConfigError(f"CERTLC_DCE_ENDPOINT must be an https:// URL, got {endpoint!r}")
    return LogsTarget(endpoint, rule_id, env.get("CERTLC_DCR_STREAM", "").strip() or STREAM_DEFAULT)


def logs_ingestion_client(env: Mapping[str, str], **client_options: Any) -> Any:
    """The SDK client with certlc's identity, deadlines and (locally) the emulator's CA; ``client_options``
    go to the SDK as well (the history sink asks for fewer retries)."""
    from azure.monitor.ingestion import LogsIngestionClient

    from renewal.clients import credential_for

    endpoint = target_from_env(env).endpoint
    token_env = {"CERTLC_LOCAL_TOKEN": env.get("CERTLC_LOGS_TOKEN", "") or env.get("CERTLC_LOCAL_TOKEN", "")}
    options: dict[str, Any] = {"connection_timeout": CONNECT_TIMEOUT, "read_timeout": READ_TIMEOUT, **client_options}
    bundle = ca_bundle(env, "CERTLC_LOGS_CA_BUNDLE", IngestionConfigError)
    if bundle:
        options["connection_verify"] = bundle
    return LogsIngestionClient(endpoint, credential_for(endpoint, token_env), **options)


def chunks(rows: Sequence[Mapping[str, Any]], budget: int = CHUNK_BUDGET_BYTES) -> Iterator[list[Any]]:
    """Split rows so each chunk's JSON array (as the SDK serializes it) fits the budget."""
    chunk: list[Any] = []
    size = 2  # "[]"
    for row in rows:
        row_size = len(json.dumps(row).encode("utf-8"))
        extra = row_size + (2 if chunk else 0)  # ", " separator
        if chunk and size + extra > budget:
            yield chunk
            chunk, size, extra = [], 2, row_size
        chunk.append(row)
        size += extra
    if chunk:
        yield chunk


def upload_rows(client: Any, target: LogsTarget, rows: Sequence[Mapping[str, Any]]) -> UploadResult:
    """Upload every chunk; a failed chunk is reported and the others still go."""
    from azure.core.exceptions import AzureError

    result = UploadResult()
    for chunk in chunks(rows):
        result.calls += 1
        try:
            client.upload(rule_id=target.rule_id, stream_name=target.stream, logs=chunk)
        except AzureError as error:
            result.failed_rows += len(chunk)
            status = getattr(error, "status_code", None)
            message = (getattr(error, "message", None) or str(error)).strip().splitlines()
            result.errors.append(
                f"upload of {len(chunk)} rows failed"
                + (f" (HTTP {status})" if status else "")
                + (f": {message[0]}" if message else "")
            )
            continue
        result.rows += len(chunk)
    return result
