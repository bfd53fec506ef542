"""On the local stack (Event Grid → queue → renew → merge, the Functions host running function_app.py): a plain
renewal's audit steps reach the Logs emulator in one upload, all of them once its invocation has ended."""

from __future__ import annotations

from typing import Any

from ingestion.history import STREAM_DEFAULT, history_row
from tests.pipeline.helpers import audit, drain_until, seed, settle, unique


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
    settle(stack)  # nothing of an earlier test left in flight
    before = len(history_uploads(stack))
    name = unique("one-upload")
    seed(stack, name, days_left=20)  # the emulator sends NearExpiry: event → queue → renew → merge
    drain_until(stack, lambda: any(r["event"] == "merged" for r in audit(stack, name)), names=(name,))

    records = audit(stack, name)
    assert "merged" in [r["event"] for r in records]
    rows = [r for r in stack.logs.rows(STREAM_DEFAULT) if r["CertName"] == name]
    assert rows == [history_row(r) for r in records]  # every step, in order, once the invocation ended
    assert uploads_holding(stack, name) == [len(records)]  # one call, was one per step
    assert {u["status"] for u in history_uploads(stack)[before:]} == {204}
