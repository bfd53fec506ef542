"""The renewal history: each audit record as one row of ``CertlcRenewals_CL``, through the Logs Ingestion API.

The status table says what will happen; this one says what happened, so the workbook can show recent renewals
and failures by reason. The columns live here (the one place in code; infra/monitoring.json declares the same,
tests/ingestion holds them together).

The history is a best-effort copy of the audit trail, off the renewal's path. ``renewal.audit.Audit`` writes the
``certlc.audit`` log line (Application Insights) and ``CERTLC_AUDIT_FILE`` synchronously first; only then does
this sink take the record, and all it does on the renewal's path is turn it into a row and buffer it in memory.
The rows go up in one upload (in chunks under the 1 MB limit, ``ingestion.upload.chunks``):

- at the end of every function invocation (queue ``renew``, ``event``, the ``sweep`` timer:
  ``renewal.handlers``), which makes a renewal's steps one Logs Ingestion call instead of one per step;
- from a background thread once the oldest buffered row is ``FLUSH_SECONDS`` old or ``FLUSH_ROWS`` are
  buffered (``certlc worker``, ``certlc dev``, anything long-running between invocations);
- at process exit (``atexit``), best effort.

A process that dies loses at most the rows still buffered: those of the invocations running at that moment, on a
healthy DCE at most ``FLUSH_SECONDS`` of records, and never more than ``MAX_BUFFERED_ROWS`` (beyond that cap the
oldest rows are dropped, counted and logged). The audit line and file are never among them. After a failed upload
the sink drops rows for ``QUIET_SECONDS`` instead of costing every later flush a timeout.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from ingestion.upload import LogsTarget, chunks, logs_ingestion_client, target_from_env

log = logging.getLogger("certlc.audit")

TABLE_NAME = "CertlcRenewals_CL"
STREAM_DEFAULT = "Custom-CertlcRenewals_CL"
STREAM_SETTING = "CERTLC_DCR_HISTORY_STREAM"
QUIET_SECONDS = 300.0
RETRIES = 1  # one retry for a blip; a service that is down is the quiet period's job
FLUSH_SECONDS = 5.0  # the background thread uploads once the oldest buffered row is this old
FLUSH_ROWS = 500  # ... or once this many rows are buffered
MAX_BUFFERED_ROWS = 2000  # the cap on memory: beyond it the oldest rows are dropped (counted, logged)
TICK_SECONDS = 1.0  # how often the background thread looks at the buffers

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
    """History rows could not be uploaded; the sink is quiet for a while."""


class LogsHistorySink:
    """An ``AuditSink`` buffering each record as one history row, uploaded by ``flush`` (at the end of each
    invocation, from a background thread, at exit); quiet for a while after a failed upload."""

    buffered = True  # renewal.audit.Audit writes the log line and every unbuffered sink before this one

    def __init__(
        self,
        target: LogsTarget,
        client_factory: Callable[[], Any],
        *,
        quiet_seconds: float = QUIET_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        max_rows: int = MAX_BUFFERED_ROWS,
        flush_rows: int = FLUSH_ROWS,
        flush_seconds: float | None = FLUSH_SECONDS,
    ) -> None:
        self.target = target
        self._client_factory = client_factory
        self._client: Any = None
        self._quiet_seconds = quiet_seconds
        self._monotonic = monotonic
        self._quiet_until = 0.0
        self._max_rows = max_rows
        self._flush_rows = flush_rows
        self._flush_seconds = flush_seconds  # None: no background upload (flush, invocation end and exit only)
        self._rows: deque[dict[str, Any]] = deque()
        self._oldest_at: float | None = None  # when the oldest buffered row was buffered
        self._unreported_overflow = 0
        self._lock = threading.Lock()  # the buffer and the counters
        self._upload_lock = threading.Lock()  # one upload at a time, rows in the order they were written
        self.dropped = 0  # rows not sent while quiet
        self.overflowed = 0  # oldest rows dropped because the buffer was full
        self.failed = 0  # rows of uploads that failed
        self.uploads = 0  # Logs Ingestion calls made
        _live.add(self)

    @property
    def pending(self) -> int:
        """Rows buffered, not uploaded yet."""
        with self._lock:
            return len(self._rows)

    def write(self, record: Mapping[str, Any], line: str) -> None:
        """Buffer the record's row: no call, no wait on the renewal's path."""
        row = history_row(record)
        with self._lock:
            if self._monotonic() < self._quiet_until:
                self.dropped += 1
                return
            full = len(self._rows) >= self._max_rows
            if full:
                self._rows.popleft()
                self.overflowed += 1
                self._unreported_overflow += 1
            if not self._rows:
                _pending.add(self)  # held until flushed: a sink its Audit let go of still sends its rows
            self._rows.append(row)
            if self._oldest_at is None:
                self._oldest_at = self._monotonic()
            size_due = len(self._rows) >= self._flush_rows
            first_overflow = full and self._unreported_overflow == 1
        if first_overflow:
            log.warning(
                "%s: history buffer full (%d rows): dropping the oldest rows until the next upload "
                "(the certlc.audit log keeps every record)",
                self.target.stream,
                self._max_rows,
            )
        if self._flush_seconds is not None:
            _start_flusher()
            if size_due:
                _wake.set()

    def due(self) -> bool:
        """Whether the background thread should upload now: enough rows, or the oldest old enough."""
        with self._lock:
            if not self._rows or self._flush_seconds is None:
                return False
            return len(self._rows) >= self._flush_rows or (
                self._oldest_at is not None and self._monotonic() - self._oldest_at >= self._flush_seconds
            )

    def flush(self) -> int:
        """Upload every buffered row (one call per chunk under the 1 MB limit); the number of rows sent. Raises
        ``HistoryUploadError`` when a call fails: that upload's rows are lost and the sink is quiet for a while
        (rows buffered in a quiet period are dropped here without a call)."""
        with self._upload_lock:
            with self._lock:
                rows = list(self._rows)
                self._rows.clear()
                _pending.discard(self)
                self._oldest_at = None
                overflowed, self._unreported_overflow = self._unreported_overflow, 0
                quiet = self._monotonic() < self._quiet_until
                if quiet:
                    self.dropped += len(rows)
            if overflowed:
                log.warning(
                    "%s: %d history rows dropped, the oldest, while the buffer was full (%d rows); "
                    "the certlc.audit log keeps every record",
                    self.target.stream,
                    overflowed,
                    self._max_rows,
                )
            if quiet or not rows:
                return 0
            sent = 0
            try:
                client = self._connected()
                for chunk in chunks(rows):  # the SDK sizes its own chunks without the separators: cut them here
                    with self._lock:
                        self.uploads += 1
                    client.upload(rule_id=self.target.rule_id, stream_name=self.target.stream, logs=chunk)
                    sent += len(chunk)
            except Exception as exc:
                with self._lock:
                    self._quiet_until = self._monotonic() + self._quiet_seconds
                    self.failed += len(rows) - sent
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise HistoryUploadError(  # logged once; rows of the quiet period are dropped without a call
                    f"{self.target.stream}: {type(exc).__name__}: {first}; history rows are not sent for the next "
                    f"{self._quiet_seconds:.0f} s; {len(rows) - sent} rows of this upload are lost "
                    "(the certlc.audit log keeps every record)"
                ) from exc
            return sent

    def _connected(self) -> Any:
        """The client, built on first use: no SDK import or credential at start-up."""
        with self._lock:
            if self._client is None:
                self._client = self._client_factory()
            return self._client


def flush_logged(sink: Any) -> int:
    """``sink.flush()``, its failure logged as ``renewal.audit.Audit`` logs a failing sink, never raised."""
    try:
        return int(sink.flush() or 0)
    except Exception as exc:  # the history is best effort
        log.warning("audit sink %s failed: %s: %s", type(sink).__name__, type(exc).__name__, exc)
        return 0


def flush_all() -> int:
    """Upload what every history sink of this process buffered (at exit); failures logged. Rows sent."""
    return sum(flush_logged(sink) for sink in list(_live))


_live: weakref.WeakSet[LogsHistorySink] = weakref.WeakSet()
_pending: set[LogsHistorySink] = set()  # the sinks holding rows (changed under the sink's lock)
_wake = threading.Event()
_flusher: threading.Thread | None = None
_flusher_lock = threading.Lock()


def _start_flusher() -> None:
    """The background thread, started with the first buffered row (a process that audits nothing has none)."""
    global _flusher
    if _flusher is not None and _flusher.is_alive():
        return
    with _flusher_lock:
        if _flusher is None or not _flusher.is_alive():  # not alive: never started, or a forked child
            _flusher = threading.Thread(target=_flush_when_due, name="certlc-history-flush", daemon=True)
            _flusher.start()


def _flush_when_due() -> None:
    while True:
        _wake.wait(TICK_SECONDS)
        _wake.clear()
        for sink in list(_live):
            if sink.due():
                flush_logged(sink)


atexit.register(flush_all)  # best effort: a process that exits normally sends what it buffered


def history_sink_from_env(env: Mapping[str, str]) -> LogsHistorySink:
    """The sink ``renewal.audit.audit_from_env`` adds when the DCE endpoint and rule id are set."""
    target = history_target(env)  # settings checked now, the client built on the first upload
    return LogsHistorySink(target, lambda: logs_ingestion_client(env, retry_total=RETRIES))
