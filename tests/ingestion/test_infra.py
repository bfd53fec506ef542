"""The ARM template, the workbook and the code agree on one schema."""

import json
import re
from pathlib import Path

import pytest

from ingestion import history
from ingestion.schema import COLUMNS, STREAM_DEFAULT, TABLE_NAME

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = json.loads((ROOT / "infra" / "monitoring.json").read_text())
WORKBOOK = json.loads((ROOT / "infra" / "workbook.json").read_text())

# KQL operators and functions the workbook uses; anything else must be a table column.
KQL_WORDS = {
    "let", "toscalar", "where", "ago", "summarize", "max", "by", "order", "asc", "desc", "in", "or", "and",
    "count", "project", "d", "h", "m", "s", "not", "extend", "sort", "take", "top", "render", "piechart",
}  # fmt: skip


def resource(kind: str) -> dict:
    (found,) = [r for r in TEMPLATE["resources"] if r["type"].lower() == kind.lower()]
    return found


def kql_queries(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["query"]] if isinstance(node.get("query"), str) else []
        return found + [q for v in node.values() for q in kql_queries(v)]
    if isinstance(node, list):
        return [q for v in node for q in kql_queries(v)]
    return []


def referenced_columns(query: str) -> set[str]:
    text = re.sub(r"'[^']*'|\"[^\"]*\"|\{[^}]*\}", " ", query)  # strings and workbook parameters
    defined = set(re.findall(r"\blet\s+(\w+)", text)) | set(re.findall(r"\b(\w+)\s*=(?!=)", text))
    words = set(re.findall(r"\b[A-Za-z_]\w*\b", text))
    return words - KQL_WORDS - defined - {TABLE_NAME}


STREAMS = [(STREAM_DEFAULT, TABLE_NAME, COLUMNS), (history.STREAM_DEFAULT, history.TABLE_NAME, history.COLUMNS)]


@pytest.mark.parametrize(("stream", "table", "columns"), STREAMS, ids=["status", "history"])
def test_dcr_stream_declares_exactly_the_code_columns_and_flows_to_its_table(stream, table, columns):
    dcr = resource("Microsoft.Insights/dataCollectionRules")["properties"]
    declared = dcr["streamDeclarations"][stream]["columns"]
    assert [(c["name"], c["type"]) for c in declared] == [(n, t) for n, t, _ in columns]
    (flow,) = [f for f in dcr["dataFlows"] if f["streams"] == [stream]]
    assert flow["outputStream"] == f"Custom-{table}"
    assert flow["transformKql"] == "source"
    assert flow["destinations"] == [d["name"] for d in dcr["destinations"]["logAnalytics"]]
    assert len(dcr["dataFlows"]) == len(dcr["streamDeclarations"]) == len(STREAMS)
    depends = resource("Microsoft.Insights/dataCollectionRules")["dependsOn"]
    assert sum("workspaces/tables" in d for d in depends) == len(STREAMS)  # each table exists before its flow


@pytest.mark.parametrize(("stream", "table", "columns"), STREAMS, ids=["status", "history"])
def test_table_has_the_code_columns(stream, table, columns):
    tables = [r for r in TEMPLATE["resources"] if r["type"] == "Microsoft.OperationalInsights/workspaces/tables"]
    (schema,) = [t["properties"]["schema"] for t in tables if t["properties"]["schema"]["name"] == table]
    assert [(c["name"], c["type"], c["description"]) for c in schema["columns"]] == list(columns)


def test_outputs_give_the_app_settings():
    outputs = TEMPLATE["outputs"]
    assert {"dceLogsIngestionEndpoint", "dcrImmutableId", "dcrStreamName", "dcrHistoryStreamName"} <= set(outputs)
    assert TEMPLATE["variables"]["streamName"] == STREAM_DEFAULT
    assert TEMPLATE["variables"]["historyStreamName"] == history.STREAM_DEFAULT
    for name, spec in TEMPLATE["parameters"].items():
        assert spec["metadata"]["description"], name


def test_role_assignment_is_monitoring_metrics_publisher_on_the_rule_only():
    assignment = resource("Microsoft.Authorization/roleAssignments")
    assert assignment["scope"].startswith("[format('Microsoft.Insights/dataCollectionRules/")
    assert TEMPLATE["variables"]["monitoringMetricsPublisherRoleId"] == "3913510d-42f4-4e42-8a64-420c390055eb"


def test_embedded_workbook_is_the_workbook_file():
    from infra.embed_workbook import main, serialized_workbook

    embedded = resource("Microsoft.Insights/workbooks")["properties"]["serializedData"]
    assert embedded == serialized_workbook()
    assert json.loads(embedded) == WORKBOOK
    assert main(["--check"]) == 0


def test_every_column_the_workbook_queries_name_is_in_the_table():
    table_columns = {n for n, _, _ in COLUMNS}
    queries = kql_queries(WORKBOOK)
    assert len(queries) == 3
    used = set().union(*(referenced_columns(q) for q in queries))
    assert used - table_columns == set()
    wanted = {"KeyVault", "CertName", "CertSubject", "CertExpiration", "DaysLeft", "CertRecipient"}
    assert wanted | {"CertThumbprint", "LastRenewalOutcome", "ExpiryStatus", "TimeGenerated", "RenewalPending"} <= used


def test_the_column_check_catches_an_unknown_column():
    assert referenced_columns("CertlcStatus_CL | project Bogus, x = count() | where 'A' in ({Vault})") == {"Bogus"}


@pytest.mark.parametrize("name", ["status-pie", "status-table"])
def test_data_items_read_only_the_latest_snapshot_of_the_chosen_vaults(name):
    (item,) = [i for i in WORKBOOK["items"] if i.get("name") == name]
    query = item["content"]["query"]
    assert "summarize max(TimeGenerated)" in query and "where TimeGenerated == snapshot" in query
    assert "KeyVault in ({Vault})" in query


def test_pie_colours_and_grouped_table():
    items = {i["name"]: i["content"] for i in WORKBOOK["items"]}
    pie = items["status-pie"]
    assert pie["visualization"] == "piechart"
    colours = {s["seriesName"]: s["color"] for s in pie["chartSettings"]["seriesLabelSettings"]}
    assert colours == {"Expired": "redBright", "ExpiringSoon": "yellow", "NotExpired": "green"}
    grid = items["status-table"]["gridSettings"]
    assert grid["hierarchySettings"]["groupBy"] == ["ExpiryStatus"]
    assert "RenewalPending" in items["status-table"]["query"].split("| project ")[1].split("\n")[0]
    (pending,) = [f for f in grid["formatters"] if f["columnMatch"] == "RenewalPending"]
    shown = [(t["thresholdValue"], t["text"]) for t in pending["formatOptions"]["thresholdsGrid"]]
    assert shown == [("true", "renewal pending"), (None, "")]
    assert {"columnId": "RenewalPending", "label": "Renewal"} in grid["labelSettings"]
    (vault,) = items["parameters"]["parameters"]
    assert vault["name"] == "Vault" and vault["multiSelect"]
