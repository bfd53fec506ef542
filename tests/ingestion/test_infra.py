"""The ARM template, the workbook and the code agree on one schema."""

import json
from pathlib import Path

import pytest

from ingestion import heartbeat, history
from ingestion.schema import COLUMNS, STREAM_DEFAULT, TABLE_NAME

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = json.loads((ROOT / "infra" / "monitoring.json").read_text())
WORKBOOK = json.loads((ROOT / "infra" / "workbook.json").read_text())


def resource(kind: str) -> dict:
    (found,) = [r for r in TEMPLATE["resources"] if r["type"].lower() == kind.lower()]
    return found


STREAMS = [
    (STREAM_DEFAULT, TABLE_NAME, COLUMNS),
    (history.STREAM_DEFAULT, history.TABLE_NAME, history.COLUMNS),
    (heartbeat.STREAM_DEFAULT, heartbeat.TABLE_NAME, heartbeat.COLUMNS),
]
STREAM_IDS = ["status", "history", "heartbeat"]


@pytest.mark.parametrize(("stream", "table", "columns"), STREAMS, ids=STREAM_IDS)
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


@pytest.mark.parametrize(("stream", "table", "columns"), STREAMS, ids=STREAM_IDS)
def test_table_has_the_code_columns(stream, table, columns):
    tables = [r for r in TEMPLATE["resources"] if r["type"] == "Microsoft.OperationalInsights/workspaces/tables"]
    (schema,) = [t["properties"]["schema"] for t in tables if t["properties"]["schema"]["name"] == table]
    assert [(c["name"], c["type"], c["description"]) for c in schema["columns"]] == list(columns)


def test_outputs_give_the_app_settings():
    outputs = TEMPLATE["outputs"]
    assert {"dceLogsIngestionEndpoint", "dcrImmutableId", "dcrStreamName", "dcrHistoryStreamName"} <= set(outputs)
    assert TEMPLATE["variables"]["streamName"] == STREAM_DEFAULT
    assert TEMPLATE["variables"]["historyStreamName"] == history.STREAM_DEFAULT
    assert TEMPLATE["variables"]["heartbeatStreamName"] == heartbeat.STREAM_DEFAULT
    assert {"heartbeatTableName", "dcrHeartbeatStreamName"} <= set(outputs)
    for name, spec in TEMPLATE["parameters"].items():
        assert spec["metadata"]["description"], name


def test_role_assignment_is_monitoring_metrics_publisher_on_the_rule_only():
    assignment = resource("Microsoft.Authorization/roleAssignments")
    assert assignment["scope"].startswith("[format('Microsoft.Insights/dataCollectionRules/")
    assert TEMPLATE["variables"]["monitoringMetricsPublisherRoleId"] == "3913510d-42f4-4e42-8a64-420c390055eb"


def test_embedded_workbook_is_the_workbook_file():
    from infra.embed import main, serialized_workbook

    embedded = resource("Microsoft.Insights/workbooks")["properties"]["serializedData"]
    assert embedded == serialized_workbook()
    assert json.loads(embedded) == WORKBOOK
    assert main(["--check"]) == 0


ITEMS = {i["name"]: i for i in WORKBOOK["items"]}


def formatter(item: str, column: str) -> dict:
    (found,) = [f for f in ITEMS[item]["content"]["gridSettings"]["formatters"] if f["columnMatch"] == column]
    return found


def thresholds(item: str, column: str) -> list[tuple]:
    grid = formatter(item, column)["formatOptions"]["thresholdsGrid"]
    return [(t["thresholdValue"], t["representation"]) for t in grid]


@pytest.mark.parametrize("name", ["status-pie", "status-table", "status-tiles"])
def test_status_items_read_only_the_latest_snapshot_of_the_chosen_vaults(name):
    query = ITEMS[name]["content"]["query"]
    assert "summarize max(TimeGenerated)" in query and "where TimeGenerated == snapshot" in query
    assert "KeyVault in ({Vault})" in query


def test_pie_colours_and_the_vault_parameter_are_kept():
    pie = ITEMS["status-pie"]["content"]
    assert pie["visualization"] == "piechart"
    colours = {s["seriesName"]: s["color"] for s in pie["chartSettings"]["seriesLabelSettings"]}
    assert colours == {"Expired": "redBright", "ExpiringSoon": "yellow", "NotExpired": "green"}
    (vault,) = ITEMS["parameters"]["content"]["parameters"]
    assert vault["name"] == "Vault" and vault["multiSelect"]


def test_one_row_per_certificate_says_who_renews_it_and_when():
    content = ITEMS["status-table"]["content"]
    projected = [c.strip() for c in content["query"].split("| project ")[1].split(",")]
    wanted = {"KeyVault", "CertName", "CertIssuer", "RenewedBy", "Managed", "Next", "LastRenewalOutcome"}
    assert wanted | {"RenewalPending", "Expiry", "DaysLeft", "RenewalNote", "Attention"} <= set(projected)
    assert "hierarchySettings" not in content["gridSettings"]  # rows, not groups: one per certificate
    assert "customWidth" not in ITEMS["status-table"]  # the full width
    # readable times: formatted in the query, not raw ISO strings
    assert (
        "format_datetime(NextRenewal, " in content["query"] and "format_datetime(CertExpiration, " in content["query"]
    )


def test_failed_rows_are_red_whatever_their_expiry_and_uncovered_ones_stand_out():
    query = ITEMS["status-table"]["content"]["query"]
    attention = query.split("extend Attention = case(")[1].split("\n")[0]
    # failed is decided first, so an expired or healthy certificate whose renewal failed still shows Failed
    assert attention.startswith("LastRenewalOutcome startswith_cs 'failed', 'Failed', RenewedBy == 'nobody'")
    colours = dict(thresholds("status-table", "Attention"))
    assert colours == {"Failed": "redBright", "Expired": "redBright", "Nobody renews it": "orange",
                       "Expiring soon": "yellow", None: "green"}  # fmt: skip
    assert dict(thresholds("status-table", "RenewedBy"))["nobody"] == "orange"


def test_tiles_count_failed_and_uncovered_certificates():
    tiles = ITEMS["status-tiles"]["content"]
    assert tiles["visualization"] == "tiles"
    query = tiles["query"]
    assert "countif(LastRenewalOutcome startswith_cs 'failed') | extend Tile = 'Failed'" in query
    assert "countif(RenewedBy == 'nobody') | extend Tile = 'Nobody renews it'" in query
    assert tiles["tileSettings"]["leftContent"]["columnMatch"] == "Count"


def test_status_and_history_are_tabs_over_their_own_tables():
    (tabs,) = [i for i in WORKBOOK["items"] if i["type"] == 11]
    assert tabs["content"]["style"] == "tabs"
    assert [(link["cellValue"], link["subTarget"]) for link in tabs["content"]["links"]] == [
        ("Tab", "status"),
        ("Tab", "history"),
    ]
    for name, item in ITEMS.items():
        if item["type"] != 3:
            continue
        tab = item["conditionalVisibility"]["value"]
        table = history.TABLE_NAME if tab == "history" else TABLE_NAME
        assert tab == name.split("-")[0] and item["content"]["query"].startswith(("let", table)), name
        assert table in item["content"]["query"]
    assert {"history-recent", "history-failures", "history-renewals-per-day"} <= set(ITEMS)
    assert "by Reason" in ITEMS["history-failures"]["content"]["query"]
    assert dict(thresholds("history-recent", "Event"))["failed"] == "redBright"
