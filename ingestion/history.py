"""The renewal history: each audit record as one row of ``CertlcRenewals_CL``, through the Logs Ingestion API.

The status table says what will happen; this one says what happened, so the workbook can show recent renewals
and failures by reason. The columns live here (the one place in code; infra/monitoring.json declares the same,
tests/ingestion holds them together). The sink is best effort: ``renewal.audit.Audit`` logs a failing sink and
carries on, and after one failure this sink drops rows for ``QUIET_SECONDS`` instead of costing every later
audit line a timeout. The log line (Application Insights) keeps every record either way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from ingestion.upload import LogsTarget, logs_ingestion_client, target_from_env

TABLE_NAME = "CertlcRenewals_CL"
STREAM_DEFAULT = "Custom-CertlcRenewals_CL"
STREAM_SETTING = "CERTLC_DCR_HISTORY_STREAM"
QUIET_SECONDS = 300.0
RETRIES = 1  # one retry for a blip; a service that is down is the quiet period's job

# (name, Log Analytics type, description, the audit record's key)
COLUMN_SPECS: tuple[tuple[str, str, str, str], ...] = (
    ("TimeGenerated", "datetime", "When the step happened (the audit record's ts)", "ts"),
    ("KeyVault", "string", "Name of the key vault that holds the certificate", "vault"),
    ("CertName", "string", "Key Vault certificate name", "name"),
    ("Event", "string", "Audit event: renewal_initiated, submitted, issued, merged, failed, retried, ...", "event"),
    ("Trigger", "string", "What started the renewal: event, sweep, manual, ...", "trigger"),
    ("CorrelationId", "string", "One renewal's id across its steps and retries", "correlation_id"),
    ("Attempt", "int", "Delivery attempt of the renewal request (1 on the first)", "attempt"),
    ("OldVersion", "string", "Version being replaced, empty if the record has none", "old_version"),
    ("NewVersion", "string", "Version merged, empty if the record has none", "new_version"),
    ("Reason", "string", "Stable reason code of a skip, retry, rejection or failure", "reason"),
    ("Detail", "string", "One line on what happened (redacted like the audit trail)", "detail"),
    ("Ca", "string", "CA adapter that handled the request", "ca"),
    ("Profile", "string", "CA profile or template", "profile"),
    ("CaRequestId", "string", "The CA's own id of the request, once the CA took one", "ca_request_id"),
    ("OldExpiresOn", "datetime", "On merged: when the replaced version expires (the renewal's lead time)",
     "old_expires_on"),
    ("TriggeredAt", "datetime", "When what started the renewal happened (event, sweep, operator), if recorded",
     "triggered_at"),
    ("Action", "string", "Operator action: failed_retry, failed_remove, failed_purge, renew_force, ...", "action"),
    ("OperatorUser", "string", "Account that ran the operator action", "user"),
    ("OperatorHost", "string", "Host the operator action ran on", "host"),
)  # fmt: skip
COLUMNS: tuple[tuple[str, str, str], ...] = tuple((n, t, d) for n, t, d, _ in COLUMN_SPECS)


def history_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """One row from one audit record: strings empty when the record has no such field, ``Attempt`` an int, times
    null when the record has none (a lead time or trigger time nobody recorded is unknown, not zero)."""
    row: dict[str, Any] = {}
    for column, kind, _, key in COLUMN_SPECS:
        value = record.get(key)
        if kind == "int":
            row[column] = int(value) if isinstance(value, int) else None
        elif kind == "datetime":
            row[column] = value
        else:
            row[column] = "" if value is None else str(value)
    return row


def history_target(env: Mapping[str, str]) -> LogsTarget:
    """The status upload's endpoint and rule, with the history stream (``CERTLC_DCR_HISTORY_STREAM``)."""
    return replace(target_from_env(env), stream=env.get(STREAM_SETTING, "").strip() or STREAM_DEFAULT)


class HistoryUploadError(RuntimeError):
    """A history row could not be uploaded; the sink is quiet for a while."""


class LogsHistorySink:
    """An ``AuditSink`` uploading each record as one history row; quiet for a while after a failure."""

    def __init__(
        self,
        target: LogsTarget,
        client_factory: Callable[[], Any],
        *,
        quiet_seconds: float = QUIET_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self._client_factory = client_factory
        self._client: Any = None
        self._quiet_seconds = quiet_seconds
        self._monotonic = monotonic
        self._quiet_until = 0.0
        self._lock = threading.Lock()
        self.dropped = 0  # rows not sent while quiet

    def write(self, record: Mapping[str, Any], line: str) -> None:
        with self._lock:
            if self._monotonic() < self._quiet_until:
                self.dropped += 1
                return
        try:
            client = self._connected()
            client.upload(rule_id=self.target.rule_id, stream_name=self.target.stream, logs=[history_row(record)])
        except Exception as exc:
            with self._lock:
                self._quiet_until = self._monotonic() + self._quiet_seconds
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise HistoryUploadError(  # Audit logs it once; rows of the quiet period are dropped without a call
                f"{self.target.stream}: {type(exc).__name__}: {first}; history rows are not sent for the next "
                f"{self._quiet_seconds:.0f} s (the certlc.audit log keeps every record)"
            ) from exc

    def _connected(self) -> Any:
        """The client, built on first use: no SDK import or credential at start-up."""
        with self._lock:
            if self._client is None:
                self._client = self._client_factory()
            return self._client


def history_sink_from_env(env: Mapping[str, str]) -> LogsHistorySink:
    """The sink ``renewal.audit.audit_from_env`` adds when the DCE endpoint and rule id are set."""
    target = history_target(env)  # settings checked now, the client built on the first record
    return LogsHistorySink(target, lambda: logs_ingestion_client(env, retry_total=RETRIES))
