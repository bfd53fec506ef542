"""The heartbeat alert (infra/alerts.json): wired by main.json, its query checked as deployed, firing when the
sweep heartbeat or the status snapshot stops and when neither ever came, on the configured intervals."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from certlc.doctor.heartbeat import schedule_interval
from ingestion import heartbeat, schema
from tests.infra.template import MAIN, ROOT, evaluated, scope
from tests.infra.test_kql import check, node_path  # noqa: F401  (node_path is a fixture)

ALERTS = json.loads((ROOT / "infra" / "alerts.json").read_text(encoding="utf-8"))
RULES = "Microsoft.Insights/scheduledQueryRules"
PLACEHOLDERS = ("{SweepMinutes}", "{IngestMinutes}")


def deployed_rules(**parameters: object) -> dict[str, dict]:
    return {rule["name"]: rule for rule in evaluated(RULES, scope(**parameters))}


def heartbeat_rule(**parameters: object) -> dict:
    return deployed_rules(**parameters)[f"{scope(**parameters).parameter('appName')}-heartbeat"]


def test_main_deploys_both_alerts_and_the_heartbeat_one_by_its_own_name():
    app = scope().parameter("appName")
    assert set(deployed_rules()) == {f"{app}-uncovered-certificates", f"{app}-heartbeat"}
    assert "heartbeatAlertName" in ALERTS["parameters"]
    assert "heartbeatAlertResourceId" in ALERTS["outputs"]


def test_it_is_scoped_to_the_workspace_notifies_the_action_group_and_resolves_itself():
    group = "/subscriptions/s/resourceGroups/g/providers/x/actionGroups/pki"
    rules = deployed_rules(alertActionGroupId=group)
    rule = heartbeat_rule(alertActionGroupId=group)
    (coverage,) = [r for name, r in rules.items() if name.endswith("-uncovered-certificates")]
    properties = rule["properties"]
    assert properties["scopes"] == coverage["properties"]["scopes"]  # the monitoring deployment's workspace
    assert properties["scopes"][0].endswith(f"/workspaces/{scope().parameter('appName')}-logs")
    assert properties["actions"]["actionGroups"] == ["/subscriptions/s/resourceGroups/g/providers/x/actionGroups/pki"]
    assert properties["enabled"] is True and properties["autoMitigate"] is True
    (criterion,) = properties["criteria"]["allOf"]
    assert (criterion["operator"], criterion["threshold"], criterion["timeAggregation"]) == ("GreaterThan", 0, "Count")
    assert [d["name"] for d in criterion["dimensions"]] == ["Source"]  # one alert for the sweep, one for ingest
    assert "identity" not in rule


def test_the_deployed_query_carries_the_intervals_main_passes():
    query = heartbeat_rule(sweepIntervalMinutes=90, ingestIntervalMinutes=15)["properties"]["criteria"]["allOf"][0]
    text = query["query"]
    assert not any(p in text for p in PLACEHOLDERS)
    assert "let sweepEvery = toint(90) * 1m;" in text and "let ingestEvery = toint(15) * 1m;" in text
    assert "LastSeen < ago(2 * Every)" in text  # two intervals


def test_it_fires_when_the_tables_are_empty():
    """A summarize over no rows can come back empty (a window with no data): a ``print`` row per source is always
    there, with no time, so a sweep or an ingest that never ran counts as stale."""
    query = ALERTS["variables"]["heartbeatAlert"]["query"]
    union = query[query.index("union") : query.index("| summarize LastSeen = max(LastSeen)")]
    prints = re.findall(r"\(print Source = '([^']+)', LastSeen = datetime\(null\)", union)
    reads = re.findall(r"\((\w+_CL) \| summarize LastSeen = max\(TimeGenerated\) \| extend Source = '([^']+)'", union)
    assert sorted(prints) == ["status snapshot", "sweep"]
    assert sorted(reads) == sorted([(heartbeat.TABLE_NAME, "sweep"), (schema.TABLE_NAME, "status snapshot")])
    assert "| where isnull(LastSeen) or LastSeen < ago(2 * Every)" in query


def test_the_window_covers_two_of_the_longest_intervals_allowed():
    properties = heartbeat_rule()["properties"]
    assert (properties["evaluationFrequency"], properties["windowSize"]) == ("PT15M", "P2D")
    for name in ("sweepIntervalMinutes", "ingestIntervalMinutes"):
        for template in (MAIN, ALERTS):
            spec = template["parameters"][name]
            assert (spec["minValue"], spec["maxValue"]) == (1, 1440), name
            assert 2 * timedelta(minutes=spec["maxValue"]) <= timedelta(days=2)  # P2D: older rows are not seen


@pytest.mark.parametrize(("interval", "schedule"), [("sweepIntervalMinutes", "sweepSchedule"),
                                                    ("ingestIntervalMinutes", "ingestSchedule")])  # fmt: skip
def test_the_default_intervals_are_the_default_schedules(interval, schedule):
    every = schedule_interval(MAIN["parameters"][schedule]["defaultValue"], datetime(2026, 1, 1, tzinfo=UTC))
    assert timedelta(minutes=MAIN["parameters"][interval]["defaultValue"]) == every
    assert ALERTS["parameters"][interval]["defaultValue"] == MAIN["parameters"][interval]["defaultValue"]
    assert schedule in MAIN["parameters"][interval]["metadata"]["description"]


def test_the_query_as_deployed_parses_and_binds(node_path, tmp_path):  # noqa: F811
    rule = heartbeat_rule(sweepIntervalMinutes=60, ingestIntervalMinutes=30)
    path = tmp_path / "deployed.json"
    path.write_text(json.dumps({"query": rule["properties"]["criteria"]["allOf"][0]["query"]}))
    code, report, stderr = check(node_path, path)
    assert [q["errors"] for q in report["queries"]] == [[]]
    assert (code, stderr) == (0, "")


def test_the_checker_skips_an_arm_expression_only_when_it_fills_a_checked_query(node_path, tmp_path):  # noqa: F811
    """The rule's own query is an ARM expression (placeholders filled in); the checker must see the literal."""
    (rule,) = [r for r in ALERTS["resources"] if r["name"] == "[parameters('heartbeatAlertName')]"]
    expression = rule["properties"]["criteria"]["allOf"][0]["query"]
    assert expression.startswith("[replace(replace(variables('heartbeatAlert').query, ")
    path = tmp_path / "alerts.json"
    broken = json.loads(json.dumps(ALERTS).replace("max(TimeGenerated)", "max(TimeGenrated)"))
    path.write_text(json.dumps(broken))
    code, report, _ = check(node_path, path)
    errors = {q["where"]: q["errors"] for q in report["queries"]}
    assert code == 1 and any("TimeGenrated" in e for e in errors["/variables/heartbeatAlert/query"])
    assert not any(where.endswith("heartbeatAlertName')]]/properties/criteria/allOf/0/query") for where in errors)
