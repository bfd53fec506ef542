"""The renewal metrics and the renewals grouped by correlation id, from history rows (certlc.dashboard.metrics)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from certlc.dashboard import metrics
from certlc.dashboard.metrics import group_renewals, summarize

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WORKBOOK = Path(__file__).resolve().parents[2] / "infra" / "workbook.json"


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def row(minutes: float, event: str, cid: str, **columns: Any) -> dict[str, Any]:
    """A CertlcRenewals_CL row as ingestion.history writes it; ``minutes`` after T0."""
    base = {"TimeGenerated": iso(T0 + timedelta(minutes=minutes)), "KeyVault": "kv1", "CertName": f"cert-{cid}",
            "Event": event, "Trigger": "sweep", "CorrelationId": cid, "Attempt": 1, "Reason": "", "Detail": "",
            "CaRequestId": "", "OldExpiresOn": None, "TriggeredAt": None, "Action": ""}  # fmt: skip
    return base | columns


def expires(minutes: float, days: float) -> str:
    return iso(T0 + timedelta(minutes=minutes, days=days))


FORCED = [  # an operator's renew --force: its record is the renewal's first step and its trigger time
    row(0, "operator_action", "forced", Action="renew_force", Trigger="manual", Attempt=None),
    row(1, "renewal_initiated", "forced", Trigger="manual"),
    row(4, "pending", "forced", Trigger="manual", CaRequestId="42"),
    row(5, "merged", "forced", Trigger="manual", CaRequestId="42", OldExpiresOn=expires(5, 10)),
]
EVENT = [  # the event happened 30 minutes before the first record; merged twice (a redelivery after a crash)
    row(10, "renewal_initiated", "event", Trigger="near_expiry", TriggeredAt=iso(T0 - timedelta(minutes=20))),
    row(40, "merged", "event", Trigger="near_expiry", OldExpiresOn=expires(40, 30)),
    row(50, "merged", "event", Trigger="near_expiry"),
]
DENIED = [
    row(20, "renewal_initiated", "denied"),
    row(21, "denied", "denied", Detail="policy"),
    row(21.01, "failed", "denied", Reason="ca_denied"),
]
REJECTED = [row(30, "rejected", "rejected")]
SKIPPED = [row(35, "skipped", "skipped", Reason="not_due"), row(35.5, "notified", "skipped")]
PENDING = [row(36, "renewal_initiated", "pending"), row(37, "pending", "pending", CaRequestId="77")]
RETRIED = [
    row(60, "operator_action", "op1", Action="failed_retry", CertName="a", Attempt=None),
    row(60, "operator_action", "op1", Action="failed_retry", CertName="b", Attempt=None),
]
RECOVERED = [row(70, "failed", "late", Reason="retries_exhausted"), row(80, "merged", "late")]
SYNCED = [row(90, "written", "sync", Trigger="sync"), row(90.1, "reloaded", "sync"), row(90.2, "verified", "sync")]


@pytest.mark.parametrize(
    ("steps", "outcome", "reason", "ca_request", "actions"),
    [
        (FORCED, "renewed", "", "42", ("renew_force",)),
        (EVENT, "renewed", "", "", ()),
        (DENIED, "failed", "ca_denied", "", ()),
        (REJECTED, "failed", "rejected", "", ()),
        (SKIPPED, "skipped", "not_due", "", ()),
        (PENDING, "in_progress", "", "77", ()),
        (RETRIED, "operator", "failed_retry", "", ("failed_retry", "failed_retry")),
        (RECOVERED, "renewed", "", "", ()),
        (SYNCED, "deployment", "", "", ()),  # a certlc sync round renews nothing: not a renewal in progress
    ],
    ids=["forced", "event", "denied", "rejected", "skipped", "pending", "operator", "merged-after-failure", "sync"],
)
def test_one_renewal_per_correlation_id_and_its_outcome(steps, outcome, reason, ca_request, actions):
    (renewal,) = group_renewals(list(reversed(steps)))  # any order in, the steps oldest first out
    assert (renewal.outcome, renewal.reason, renewal.ca_request_id, renewal.actions) == (
        outcome,
        reason,
        ca_request,
        actions,
    )
    assert [s["Event"] for s in renewal.steps] == [s["Event"] for s in steps]
    first, last = (datetime.fromisoformat(steps[i]["TimeGenerated"]) for i in (0, -1))
    assert (renewal.started, renewal.ended, renewal.duration_seconds) == (first, last, (last - first).total_seconds())


@pytest.mark.parametrize(
    ("steps", "lead_days", "to_merged_minutes", "trigger"),
    [
        (FORCED, 10.0, 5.0, "manual"),  # from the operator's record, the first step
        (EVENT, 30.0, 60.0, "near_expiry"),  # from TriggeredAt; the first merge counts, the redelivery does not
        (RECOVERED, None, 10.0, "sweep"),  # no OldExpiresOn recorded: the lead time is unknown, not zero
        (DENIED, None, None, "sweep"),
    ],
    ids=["forced", "event", "no-expiry-recorded", "failed"],
)
def test_lead_time_and_trigger_to_merged(steps, lead_days, to_merged_minutes, trigger):
    (renewal,) = group_renewals(steps)
    assert (renewal.lead_days, renewal.trigger, renewal.trigger_to_merged_minutes) == (
        lead_days,
        trigger,
        to_merged_minutes,
    )


ALL = [*FORCED, *EVENT, *DENIED, *REJECTED, *SKIPPED, *PENDING, *RETRIED, *RECOVERED]


def test_the_summary_over_a_history():
    summary = summarize(ALL)
    assert (summary.renewals, summary.renewed, summary.failed, summary.in_progress, summary.skipped) == (7, 3, 2, 1, 1)
    assert summary.success_rate == 60.0  # 3 renewed of 5 finished: the skipped and the pending one are not finished
    assert (summary.lead_days_avg, summary.lead_days_min) == (20.0, 10.0)
    assert (summary.trigger_to_merged_minutes_avg, summary.trigger_to_merged_minutes_max) == (25.0, 60.0)
    assert summary.failures_by_cause == {"ca_denied": 1, "rejected": 1}
    assert (summary.interventions, summary.interventions_total) == ({"failed_retry": 2, "renew_force": 1}, 3)


def test_the_window_drops_rows_before_it_then_groups():
    since = T0 + timedelta(minutes=40)  # strictly after, as KQL's TimeGenerated > ago(30d)
    summary = summarize(ALL, since)
    assert summary.since == since
    # EVENT keeps only its second merge: still renewed, its trigger now that merge's own record
    assert (summary.renewals, summary.renewed, summary.failed) == (2, 2, 0)
    assert summary.interventions == {"failed_retry": 2}
    nothing = summarize(ALL, T0 + timedelta(days=1))
    assert (nothing.renewals, nothing.success_rate, nothing.lead_days_avg, nothing.failures_by_cause) == (
        0,
        None,
        None,
        {},
    )


def test_newest_renewal_first_and_rows_without_a_time_last():
    order = [r.correlation_id for r in group_renewals([*ALL, row(0, "skipped", "no-time", TimeGenerated="")])]
    assert order == ["late", "op1", "pending", "skipped", "rejected", "denied", "event", "forced", "no-time"]


def test_the_workbook_counts_the_same_failure_events_and_outcomes():
    """The KQL says in words what metrics.py says in code; a failure event added to one must reach the other."""
    text = WORKBOOK.read_text()
    lists = {frozenset(re.findall(r"'(\w+)'", group)) for group in re.findall(r"Event in \(([^)]*)\)", text)}
    failures = frozenset(metrics.FAILURE_EVENTS)
    assert failures in lists
    assert all(events == failures for events in lists if "denied" in events and "pending" not in events)
    idle = {frozenset(re.findall(r"'(\w+)'", g)) for g in re.findall(r"Event !in \(([^)]*)\)", text)}
    assert idle == {frozenset({*metrics.IDLE_EVENTS, "operator_action"})}


def test_the_workbook_shows_one_row_per_renewal_and_the_metrics_tiles():
    items = {i["name"]: i for i in json.loads(WORKBOOK.read_text())["items"]}
    renewals = items["history-renewals"]["content"]["query"]
    assert "by CorrelationId, KeyVault, CertName" in renewals and "order by Start desc" in renewals
    projected = [c.split("=")[0].strip() for c in renewals.split("| project ")[1].split(", ")]
    assert {"Started", "Trigger", "TriggeredAt", "Outcome", "Ended", "Duration", "CaRequestId", "Steps"} <= set(
        projected
    )
    tiles = items["history-metrics"]["content"]
    names = re.findall(r"Tile = '([^']+)'", tiles["query"])
    assert tiles["visualization"] == "tiles" and names == [
        "Success rate (%)", "Renewed", "Failed", "Lead time, average (days)", "Lead time, shortest (days)",
        "Trigger to merged, average (min)", "Trigger to merged, longest (min)", "Trigger to served, average (min)",
        "Trigger to served, longest (min)", "Manual interventions",
    ]  # fmt: skip
    assert "by Action" in items["history-interventions"]["content"]["query"]
    assert "history-recent" in items  # every event stays reachable


def test_trigger_to_served_counts_to_the_last_prober_that_saw_every_target_serve_it():
    steps = [
        row(10, "renewal_initiated", "rolled", TriggeredAt=iso(T0 + timedelta(minutes=5))),
        row(20, "merged", "rolled"),
        row(65, "served", "rolled"),  # the app's targets
        row(125, "served", "rolled"),  # an on-premises prober's, later: served everywhere from then
    ]
    (renewal,) = group_renewals(steps)
    assert renewal.outcome == "renewed" and renewal.trigger_to_served_minutes == 120
    assert summarize(steps).trigger_to_served_minutes_max == 120
