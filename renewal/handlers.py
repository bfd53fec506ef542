"""Function bodies: parse the trigger input, hand over to the workflow or the sweep, log the outcome.

A message that can never succeed goes to the failed store and the function returns
normally; only an unexpected error escapes, so the host retries it and, after
``maxDequeueCount`` attempts, moves it to the poison queue. Nothing is silently dropped.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # the runtime pulls in the SDKs and cryptography: built on the first invocation, not at start-up
    from renewal.runtime import Runtime
    from renewal.workflow import Result

log = logging.getLogger("certlc.functions")
F = TypeVar("F", bound=Callable[..., Any])

_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def runtime() -> Runtime:
    """The process-wide runtime, built once on first use from the app settings (a cold start's first batch runs
    several invocations at once: they share one runtime, its clients and its per-certificate locks)."""
    global _runtime
    if _runtime is None:
        with _runtime_lock:
            if _runtime is None:
                from renewal.runtime import build_runtime

                _runtime = build_runtime(os.environ)
    return _runtime


def reset_runtime(value: Runtime | None = None) -> None:
    """Forget (or replace) the cached runtime: after settings change, and in tests."""
    global _runtime
    _runtime = value


def invocation(function: F) -> F:
    """The end of every invocation (queue message, event, timer; in Azure, in ``certlc dev`` and ``certlc worker``
    alike): whatever it returns or raises, the audit's buffered history copy is uploaded before it ends, in one
    call for all its records (``ingestion.history``). The audit log line and file were written as each step
    happened; the upload never sits between a renewal's steps and never fails the invocation."""

    @functools.wraps(function)
    def ended(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        finally:
            from renewal.audit import flush_sinks

            flush_sinks()

    return ended  # type: ignore[return-value]


@invocation
def on_event_grid_event(event: Any) -> list[str]:
    """One Event Grid event in, at most one queue message out; invalid events are logged, not retried."""
    from renewal.events import Ignored, RejectedEvent, from_functions_event, outcome, parse_event

    rt = runtime()
    try:
        parsed = parse_event(from_functions_event(event), rt.settings.vaults)
    except RejectedEvent as exc:
        log.warning("event %s rejected: %s", getattr(event, "id", "?"), exc)
        return []
    result = outcome(parsed)
    if isinstance(result, Ignored):
        log.info("event %s ignored: %s", parsed.event_id, result.message)
        return []
    log.info(
        "event %s: %s for %s/%s version %s queued",
        parsed.event_id,
        parsed.short_type,
        parsed.vault.name,
        parsed.name,
        parsed.version,
    )
    return [result.to_json()]


@invocation
def on_queue_message(body: bytes | str, *, dequeue_count: int = 1, message_id: str | None = None) -> Result | None:
    from renewal.events import IgnoredQueueMessage, InvalidQueueMessage, parse_queue_message

    rt = runtime()
    text = body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else body
    try:
        request = parse_queue_message(text, rt.settings.vaults)
    except IgnoredQueueMessage as exc:
        log.info("queue message %s ignored: %s", message_id, exc)
        return None
    except InvalidQueueMessage as exc:
        log.warning("queue message %s rejected: %s", message_id, exc)
        rt.failed.add(None, text, exc.reason, str(exc), rt.clock())
        rt.reporter.rejected(exc.reason, str(exc), text)
        return None
    result = rt.workflow.handle(request)
    log_result(result, dequeue_count)
    return result


@invocation
def on_sweep_timer(*, past_due: bool = False) -> Any:
    """One sweep run, then its heartbeat (``renewal.heartbeat``): the trace an alert and ``certlc doctor`` look for."""
    from renewal.heartbeat import heartbeat_of, write_heartbeat
    from renewal.sweep import sweep

    rt = runtime()
    report = sweep(
        rt.settings.vaults,
        rt.keyvault,
        rt.renewals.send,
        rt.reporter.expiring,
        rt.settings.window,
        rt.clock(),
        rt.workflow.ledger,
        rt.settings.canary,
        ca_for=rt.workflow.ca_for,
        revocation=rt.workflow.revocation,
    )
    log.info(
        "sweep%s: %d queued (%d revoked by their CA), %d orphaned pending operations taken over, %d in flight, "
        "%d warned, %d errors",
        " (past due)" if past_due else "",
        len(report.enqueued),
        len(report.revoked),
        len(report.taken_over),
        len(report.in_flight),
        len(report.warned),
        len(report.errors),
    )
    for key, error in report.errors.items():
        log.error("sweep could not check %s: %s", key, error)
    check_targets_after_sweep(rt, report.listed)
    write_heartbeat(rt.env, heartbeat_of(report, rt.clock(), past_due=past_due))  # logs its own failure
    return report


def check_targets_after_sweep(rt: Any, listed: Any = None) -> Any:
    """Where each certificate is served (``renewal.targets``): never a reason for the sweep to fail. ``listed``: the
    sweep's listing of each vault, so the check does not list the vaults again."""
    from renewal.targets.wiring import run_target_check

    try:
        report = run_target_check(rt, rt.clock(), listed)
    except Exception:
        log.exception("the target check failed; the sweep's own work is done")
        return None
    log.info(
        "targets: %d certificates, %d of %d targets serve the current version, %d moved, %d alerts, %d retired",
        report.certificates,
        report.serving_current,
        report.targets,
        len(report.updated),
        len(report.alerts),
        len(report.retired),
    )
    for problem in report.problems:
        log.warning("targets: %s", problem)
    return report


def log_result(result: Result, dequeue_count: int = 1) -> None:
    level = logging.ERROR if result.status in ("failed", "rejected") else logging.INFO
    log.log(
        level,
        "renewal %s/%s attempt %d: %s (%s) %s",
        result.request.vault,
        result.request.name,
        result.request.attempt,
        result.status,
        result.reason,
        result.message,
        extra={"dequeue_count": dequeue_count, "correlation_id": result.request.correlation_id},
    )
