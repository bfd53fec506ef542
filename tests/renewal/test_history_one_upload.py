"""On the local stack (Event Grid → queue → renew → merge, the Functions host running function_app.py): a plain
renewal's audit steps reach the Logs emulator in one upload, all of them once its invocation has ended."""

from __future__ import annotations

from typing import Any

from ingestion.history import STREAM_DEFAULT, history_row
from tests.pipeline.helpers import audit, drain_until, seed, settle, unique


def history_uploads(stack: Any) -> list[dict[str, Any]]:
    return [r for r in stack.logs.requests() if r["path"].endswith(f"/streams/{STREAM_DEFAULT}")]


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
    uploads = history_uploads(stack)[before:]
    assert [(u["status"], u["rows"]) for u in uploads] == [(204, len(records))]  # one call, was one per step
