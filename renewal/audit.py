"""The audit trail: one JSON line per renewal step, with secrets redacted before it is written.

Lines go to the ``certlc.audit`` logger, which the Functions host forwards to
Application Insights (query ``traces | where message startswith '{"ts"'``), and to
optional sinks: a list in memory for tests and demos, a JSONL file
(``CERTLC_AUDIT_FILE``) for the local stack and the on-premises worker, and the
renewal history table ``CertlcRenewals_CL`` in Log Analytics (``ingestion.history``).

Redaction is by key (anything named like a password, token, secret, key,
authorization, signature or connection string) and by value (PEM private keys,
JWTs, bearer/basic credentials, SAS ``sig=`` and ``AccountKey=``-style parts),
because a field such as an error message can carry a secret under a harmless name.
A failing sink is logged, never raised: the audit trail must not fail a renewal.

Order, for a process that dies: the log line and every unbuffered sink (the file) are written synchronously, in
``Audit.record``, before a buffered sink (``buffered = True``: the history) takes the record. A buffered sink is a
best-effort copy uploaded later (``flush``: at the end of each invocation through ``flush_sinks``, see
``renewal.handlers``); what a killed process loses is that copy's unflushed buffer, never the audit line.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from renewal.clock import iso_utc, utc_now

log = logging.getLogger("certlc.audit")

REDACTED = "[REDACTED]"
RESERVED = frozenset({"ts", "event"})


class AuditEvent(StrEnum):
    RENEWAL_INITIATED = "renewal_initiated"
    CSR_CREATED = "csr_created"
    CSR_REUSED = "csr_reused"
    SUBMITTED = "submitted"
    ISSUED = "issued"
    PENDING = "pending"
    DENIED = "denied"
    MERGED = "merged"
    NOTIFIED = "notified"
    FAILED = "failed"
    RETRIED = "retried"
    SKIPPED = "skipped"
    REJECTED = "rejected"
    TAKEN_OVER = "taken_over"
    WITHDRAWN = "withdrawn"
    # renewal.targets: a reference pinned to the replaced version moved to the new one; the replaced version disabled
    ROLLOUT_UPDATED = "rollout_updated"
    RETIRED = "retired"
    SERVED = "served"  # every target of a prober serves the version a renewal merged: folded under that renewal
    # renewal.compromise: the key turned new for this renewal, the old certificate revoked at its CA (or awaiting a
    # person, or refused), the policy put back, every step done
    KEY_REUSE_OFF = "key_reuse_off"
    REVOKED = "revoked"
    REVOCATION_AWAITING = "revocation_awaiting_person"
    REVOCATION_REFUSED = "revocation_refused"
    REVOCATION_SEEN = "revocation_seen"  # the CA's CRL or OCSP lists a revocation a person had to make
    KEY_REUSE_RESTORED = "key_reuse_restored"
    COMPROMISE_FINISHED = "compromise_finished"
    COMPROMISE_OF_REPLACED = "compromise_of_replaced"  # the compromised version was already replaced
    # someone ran a command that changes what certlc does (certlc.commands.operator)
    OPERATOR_ACTION = "operator_action"
    # certlc sync deployed a version on a server (certlc.sync.agent): its files, the reload, the check that the
    # endpoint serves it, and the previous files put back when it did not
    WRITTEN = "written"
    RELOADED = "reloaded"
    VERIFIED = "verified"
    ROLLED_BACK = "rolled_back"


SECRET_WORDS = frozenset(
    {
        "password", "passwd", "pwd", "passphrase", "secret", "secrets", "token", "tokens", "authorization",
        "credential", "credentials", "cookie", "sig", "signature", "sas", "apikey",
    }
)  # fmt: skip
SECRET_JOINED = ("connectionstring", "connstr", "accountkey", "privatekey", "apikey", "clientsecret")
SECRET_VALUES = (
    (re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END \1PRIVATE KEY-----|\Z)", re.S), REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), rf"\1 {REDACTED}"),
    (
        re.compile(r"(?i)\b(AccountKey|SharedAccessKey|SharedAccessSignature|Password|Pwd)=[^;\s\"'&]+"),
        rf"\1={REDACTED}",
    ),
    (re.compile(r"(?i)\b(sig)=[^&\s;\"'<>]+"), rf"\1={REDACTED}"),
)


def _words(key: str) -> list[str]:
    return re.findall(r"[a-z]+|[0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key).lower())


def is_secret_key(key: str) -> bool:
    """``smtp_password``, ``sasToken``, ``AccountKey``, ``key`` are secret; ``key_type``, ``kv_request_id`` are not."""
    words = _words(key)
    joined = "".join(words)
    return (
        any(w in SECRET_WORDS for w in words)
        or any(j in joined for j in SECRET_JOINED)
        or (bool(words) and words[-1] in ("key", "keys"))
    )


def redact(value: Any) -> Any:
    """A copy of ``value`` with secret-named entries and secret-looking text replaced."""
    if isinstance(value, Mapping):
        return {k: REDACTED if is_secret_key(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v) for v in value]
    if isinstance(value, str):
        for pattern, replacement in SECRET_VALUES:
            value = pattern.sub(replacement, value)
        return value
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value, timespec="milliseconds")
    return str(value)


class AuditSink(Protocol):
    def write(self, record: Mapping[str, Any], line: str) -> None: ...


class MemorySink:
    """Keeps records in a list (tests, the local demo)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def write(self, record: Mapping[str, Any], line: str) -> None:
        self.records.append(json.loads(line))

    def events(self) -> list[str]:
        return [r["event"] for r in self.records]


class JsonlFileSink:
    """Appends one line per record; each write is a single append, safe across threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def write(self, record: Mapping[str, Any], line: str) -> None:
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def is_buffered(sink: AuditSink) -> bool:
    """A sink that keeps records to send later (``buffered = True`` and a ``flush`` method): the history."""
    return bool(getattr(sink, "buffered", False)) and callable(getattr(sink, "flush", None))


class Audit:
    def __init__(self, sinks: Sequence[AuditSink] = (), clock: Callable[[], datetime] = utc_now) -> None:
        # unbuffered sinks first (the file), buffered ones last: a record is on disk before it is only in memory
        self.sinks = tuple(sorted(sinks, key=is_buffered))
        self.clock = clock
        _buffered_sinks.update(s for s in self.sinks if is_buffered(s))

    def flush(self) -> None:
        """Send what the buffered sinks hold; a failure is logged, never raised."""
        for sink in self.sinks:
            if is_buffered(sink):
                _flush_logged(sink)

    def record(
        self,
        event: AuditEvent | str,
        *,
        vault: str,
        name: str,
        correlation_id: str,
        attempt: int | None,
        old_version: str | None = None,
        new_version: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Write one audit line and return it (as written, redacted). ``attempt`` is None for a record that is no
        delivery of a renewal request (an operator's action on the failed store)."""
        try:
            kind = AuditEvent(event)
        except ValueError:
            raise ValueError(
                f"unknown audit event {event!r}; known events: {', '.join(e.value for e in AuditEvent)}"
            ) from None
        clash = RESERVED.intersection(fields)
        if clash:
            raise ValueError(f"audit fields {sorted(clash)} are reserved for the record itself")
        record = redact(
            {
                "ts": iso_utc(self.clock(), timespec="milliseconds"),
                "event": kind.value,
                "vault": vault,
                "name": name,
                "correlation_id": correlation_id,
                "attempt": attempt,
                "old_version": old_version,
                "new_version": new_version,
                **fields,
            }
        )
        line = json.dumps(record, default=_json_default, separators=(",", ":"), ensure_ascii=False)
        written = json.loads(line)  # what every sink gets: times as the line has them, never datetime objects
        log.info(line)  # the trail itself, synchronously; then the file; the buffered history copy last
        for sink in self.sinks:
            try:
                sink.write(written, line)
            except Exception as exc:  # the trail is best effort beyond the log line
                log.warning("audit sink %s failed: %s: %s", type(sink).__name__, type(exc).__name__, exc)
        return written


_buffered_sinks: weakref.WeakSet[Any] = weakref.WeakSet()


def _flush_logged(sink: Any) -> None:
    try:
        sink.flush()
    except Exception as exc:  # the history is best effort
        log.warning("audit sink %s failed: %s: %s", type(sink).__name__, type(exc).__name__, exc)


def flush_sinks() -> None:
    """Flush every buffered sink of this process (the end of a function invocation); cheap when nothing is
    buffered, never raises."""
    for sink in list(_buffered_sinks):
        _flush_logged(sink)


def audit_from_env(env: Mapping[str, str], *, clock: Callable[[], datetime] = utc_now) -> Audit:
    """``CERTLC_AUDIT_FILE`` adds a JSONL file sink; ``CERTLC_DCE_ENDPOINT`` with ``CERTLC_DCR_IMMUTABLE_ID``
    adds the renewal history in Log Analytics (``ingestion.history``, imported only then); the log line is
    always written."""
    sinks: list[AuditSink] = []
    path = env.get("CERTLC_AUDIT_FILE", "").strip()
    if path:
        sinks.append(JsonlFileSink(path))
    if env.get("CERTLC_DCE_ENDPOINT", "").strip() and env.get("CERTLC_DCR_IMMUTABLE_ID", "").strip():
        from ingestion.history import history_sink_from_env

        sinks.append(history_sink_from_env(env))
    return Audit(sinks, clock=clock)
