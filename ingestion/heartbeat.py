"""The sweep's heartbeat as one ``CertlcHeartbeat_CL`` row per run, through the Logs Ingestion API.

The columns live here (the one place in code; infra/monitoring.json declares the same stream and table, and
tests/ingestion holds them together). The heartbeat alert in infra/alerts.json fires when no row has come for two
sweep intervals. The record itself and when a heartbeat is late: ``renewal.heartbeat``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ingestion.upload import LogsTarget, logs_ingestion_client, target_from_env
from renewal.clock import iso_utc

if TYPE_CHECKING:
    from renewal.heartbeat import Heartbeat

TABLE_NAME = "CertlcHeartbeat_CL"
STREAM_DEFAULT = "Custom-CertlcHeartbeat_CL"
RETRIES = 1  # the sweep waits for this row: one retry for a blip, no more

# (name, Log Analytics type, description)
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("TimeGenerated", "datetime", "When the sweep run ended"),
    ("Host", "string", "Host name of the instance that ran the sweep"),
    ("Queued", "int", "Renewals the run queued"),
    ("TakenOver", "int", "Pending operations nobody owned that the run queued a takeover for"),
    ("InFlight", "int", "Due certificates left alone because a renewal is in flight"),
    ("Warned", "int", "Expiry warnings the run sent"),
    ("Errors", "int", "Certificates or vaults the run could not check"),
    ("PastDue", "boolean", "The run started late (the host was down or busy at its scheduled time)"),
)


def heartbeat_row(heartbeat: Heartbeat) -> dict[str, Any]:
    return {
        "TimeGenerated": iso_utc(heartbeat.at),
        "Host": heartbeat.host,
        "Queued": heartbeat.queued,
        "TakenOver": heartbeat.taken_over,
        "InFlight": heartbeat.in_flight,
        "Warned": heartbeat.warned,
        "Errors": heartbeat.errors,
        "PastDue": heartbeat.past_due,
    }


def heartbeat_target(env: Mapping[str, str]) -> LogsTarget:
    """The status upload's endpoint and rule, with the heartbeat's stream (one name, the template's)."""
    return replace(target_from_env(env), stream=STREAM_DEFAULT)


def upload_heartbeat(env: Mapping[str, str], heartbeat: Heartbeat) -> None:
    """One row; the SDK's error (with the service's message) propagates to the caller, which logs it."""
    target = heartbeat_target(env)
    client = logs_ingestion_client(env, retry_total=RETRIES)
    with client:
        client.upload(rule_id=target.rule_id, stream_name=target.stream, logs=[heartbeat_row(heartbeat)])
