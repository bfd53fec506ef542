"""On the local stack (function_app.py's renew function, the Functions host's worker rules): a plain renewal's audit
steps reach the Logs emulator in one upload, all of them once its invocation has ended."""

from __future__ import annotations

from typing import Any

from ingestion.history import STREAM_DEFAULT, history_row
from renewal import handlers
from renewal.messages import RenewalRequest
from tests.pipeline.helpers import audit, deliver, seed, settle, unique


def history_uploads(stack: Any) -> list[dict[str, Any]]:
    return [r for r in stack.logs.requests() if r["path"].endswith(f"/streams/{STREAM_DEFAULT}")]


def uploads_holding(stack: Any, name: str) -> list[int]:
    """How many of ``name``'s rows each upload held that held any: the stream's stored rows, cut in the order and
    sizes of the accepted uploads (other renewals of the session may upload meanwhile)."""
    rows, held, start = stack.logs.rows(STREAM_DEFAULT), [], 0
    for upload in history_uploads(stack):
        part = rows[start : start + upload["rows"]]
        start += upload["rows"]
        if mine := sum(r["CertName"] == name for r in part):
            held.append(mine)
    return held


def test_a_plain_renewals_audit_steps_reach_the_history_in_one_upload(stack):
    """The history buffer is the process's: any invocation that ends uploads it. So the host takes no other message
    while this renewal runs (an earlier test's delayed retry ending half-way would upload part of its rows)."""
    settle(stack)  # nothing of an earlier test left in flight
    name = unique("one-upload")
    seed(stack, name, days_left=400, lifetime_days=500)  # not due: only this request renews it
    stack.host.pause()
    try:
        assert stack.host.wait_idle(timeout=60)
        handlers.reset_runtime()  # the functions' runtime as the stack's settings make it
        before = len(history_uploads(stack))
        deliver(stack, RenewalRequest("kv1", name, "manual", force=True).to_json())  # function_app's renew

        records = audit(stack, name)
        assert "merged" in [r["event"] for r in records]
        rows = [r for r in stack.logs.rows(STREAM_DEFAULT) if r["CertName"] == name]
        assert rows == [history_row(r) for r in records]  # every step, in order, once the invocation ended
        assert uploads_holding(stack, name) == [len(records)]  # one call, was one per step
        assert {u["status"] for u in history_uploads(stack)[before:]} == {204}
    finally:
        stack.host.resume()
