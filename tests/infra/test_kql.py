"""Every KQL query the deployment runs (workbook items and parameters, both alerts) parses and binds.

infra/kql_check.js runs Microsoft's Kusto language service (npm, pinned, installed by ``python -m
localazure.tools install kql``) offline, against the tables infra/monitoring.json declares: a typo in a
column name, a wrong type or a syntax error fails here instead of in the portal.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ingestion import heartbeat, history, schema
from localazure import tools
from tests.fixtures.servers import fail_in_ci_else_skip
from tests.infra.template import ROOT

CHECKER = ROOT / "infra" / "kql_check.js"
TEMPLATE = ROOT / "infra" / "monitoring.json"
WORKBOOK = ROOT / "infra" / "workbook.json"
ALERTS = ROOT / "infra" / "alerts.json"
TIMEOUT_SECONDS = 60


@pytest.fixture(scope="module")
def node_path() -> str:
    try:
        package = tools.ensure_kql()
    except tools.ToolMissing as exc:
        fail_in_ci_else_skip(f"*** KUSTO LANGUAGE SERVICE UNAVAILABLE: {exc} ***")
    if shutil.which("node") is None:
        fail_in_ci_else_skip("*** node is not on PATH: install Node.js 20 (apt-get install -y nodejs) ***")
    return str(package.parents[1])  # node_modules, above @kusto/


def check(node_path: str, *files: Path) -> tuple[int, dict[str, Any], str]:
    result = subprocess.run(
        ["node", str(CHECKER), "--tables", str(TEMPLATE), *map(str, files)],
        env={**os.environ, "NODE_PATH": node_path},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout), result.stderr


def test_every_workbook_and_alert_query_parses_and_binds(node_path):
    code, report, stderr = check(node_path, WORKBOOK, ALERTS)
    assert report["tables"] == {
        schema.TABLE_NAME: list(schema.COLUMN_NAMES),
        history.TABLE_NAME: [name for name, _, _ in history.COLUMNS],
        heartbeat.TABLE_NAME: [name for name, _, _ in heartbeat.COLUMNS],
    }
    assert [(q["where"], q["errors"]) for q in report["queries"] if q["errors"]] == []
    assert (code, stderr) == (0, "")
    items = json.loads(WORKBOOK.read_text())["items"]
    with_query = [f"{i}[{item['name']}]" for i, item in enumerate(items) if "query" in item["content"]]
    checked = [q["where"].split("/")[2] for q in report["queries"] if q["file"].endswith("workbook.json")]
    assert checked == ["1[parameters]", *with_query]  # the Vault parameter's query, then every data item
    assert len(with_query) == 9
    alerts = [q["where"] for q in report["queries"] if q["file"].endswith("alerts.json")]
    assert alerts[0] == "/variables/heartbeatAlert/query"  # the heartbeat rule's query before its placeholders
    assert [where.endswith("/criteria/allOf/0/query") for where in alerts[1:]] == [True]  # the coverage rule


def test_the_check_fails_on_an_unknown_column_a_wrong_type_and_bad_syntax(node_path, tmp_path):
    workbook = {
        "items": [
            {"name": "typo", "content": {"query": "CertlcStatus_CL | where RenewdBy == 'nobody'"}},
            {"name": "type", "content": {"query": "CertlcRenewals_CL | where Attempt > ago(1d)"}},
            {"name": "syntax", "content": {"query": "CertlcStatus_CL | where"}},
            {"name": "fine", "content": {"query": "CertlcStatus_CL | where KeyVault in ({Vault}) | count"}},
        ]
    }
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(workbook))
    code, report, stderr = check(node_path, path)
    errors = {q["where"].split("/")[2]: q["errors"] for q in report["queries"]}
    assert code == 1
    assert "RenewdBy" in errors["0[typo]"][0] and "does not refer to any known column" in errors["0[typo]"][0]
    assert "not defined for the operand types int and datetime" in errors["1[type]"][0]
    assert errors["2[syntax]"] and errors["3[fine]"] == []
    assert stderr.count("FAIL ") == 3


def test_the_coverage_alert_lists_latest_rows_nobody_renews_daily_with_least_privilege():
    (rule,) = [
        r
        for r in json.loads(ALERTS.read_text())["resources"]
        if r["type"].endswith("/scheduledQueryRules") and r["name"] == "[parameters('coverageAlertName')]"
    ]
    properties = rule["properties"]
    (criterion,) = properties["criteria"]["allOf"]
    query = criterion["query"]
    assert "arg_max(TimeGenerated, *) by KeyVault, CertName" in query  # latest row per certificate
    assert "where RenewedBy == 'nobody'" in query
    assert (criterion["operator"], criterion["threshold"], criterion["timeAggregation"]) == ("GreaterThan", 0, "Count")
    assert [d["name"] for d in criterion["dimensions"]] == ["KeyVault", "CertName"]  # one alert per certificate
    assert (properties["evaluationFrequency"], properties["windowSize"]) == ("P1D", "P1D")
    assert properties["scopes"] == ["[parameters('workspaceResourceId')]"]
    assert "identity" not in rule  # nothing to grant: the rule reads only the workspace it is scoped to
    assert "parameters('alertActionGroupId')" in properties["actions"]["actionGroups"]


def test_the_language_service_is_pinned_and_found_by_its_package_folder(tmp_path, monkeypatch, capsys):
    assert (tools.KQL.package, tools.KQL.version) == ("@kusto/language-service-next", tools.KUSTO_LANGUAGE_VERSION)
    monkeypatch.setenv("CERTLC_TOOLS_DIR", str(tmp_path))
    assert tools.main(["which", "kql"]) == 1  # which never installs
    assert "kql is not installed" in capsys.readouterr().err
    folder = tmp_path / "node_modules" / "@kusto" / "language-service-next"
    folder.mkdir(parents=True)
    (folder / "package.json").write_text(json.dumps({"version": "12.0.0"}))
    assert tools.KQL.locate() is None  # another version is not the pinned one
    (folder / "package.json").write_text(json.dumps({"version": tools.KUSTO_LANGUAGE_VERSION}))
    assert tools.KQL.locate() == folder
