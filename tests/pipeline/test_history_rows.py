"""A renewal on the local stack leaves its audit trail in Log Analytics too: one CertlcRenewals_CL row per record."""

from __future__ import annotations

from ingestion.history import STREAM_DEFAULT, history_row
from tests.pipeline.helpers import audit, drain_until, seed, unique


def test_a_renewals_audit_records_arrive_as_history_rows(stack):
    name = unique("hist")
    seed(stack, name, days_left=20)  # the emulator sends NearExpiry: event → queue → renew → merge
    # a delivery the busy webhook could not take comes again later, as Event Grid retries: wait for the outcome
    drain_until(stack, lambda: any(r["event"] == "merged" for r in audit(stack, name)), names=(name,))

    records = audit(stack, name)
    assert [r["event"] for r in records][:1] == ["renewal_initiated"] and "merged" in [r["event"] for r in records]
    rows = [r for r in stack.logs.rows(STREAM_DEFAULT) if r["CertName"] == name]
    assert rows == [history_row(r) for r in records]  # same records, same order, every column typed
    (merged,) = [r for r in rows if r["Event"] == "merged"]
    assert merged["KeyVault"] == "kv1" and merged["NewVersion"] and merged["OldVersion"]
    assert {r["CorrelationId"] for r in rows} == {records[0]["correlation_id"]}
