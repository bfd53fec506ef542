"""checkov on the ARM templates: every failed check is fixed, or skipped here with the reason.

checkov runs offline from its own virtualenv in .tools (``python -m localazure.tools install
checkov``), once per session, on infra/main.json, infra/monitoring.json and infra/alerts.json (about 3 seconds). The
template scan is static: checkov reads the JSON as written and does not evaluate ARM expressions.
"""

from __future__ import annotations

import json
import subprocess
from typing import NamedTuple

import pytest

from localazure import tools
from tests.fixtures.servers import fail_in_ci_else_skip
from tests.infra.template import ROOT

TEMPLATES = ("infra/main.json", "infra/monitoring.json", "infra/alerts.json")
TIMEOUT_SECONDS = 180


class Skip(NamedTuple):
    resource_types: tuple[str, ...]
    reason: str


SITE, APP_SETTINGS = "Microsoft.Web/sites", "Microsoft.Web/sites/config"
STORAGE = "Microsoft.Storage/storageAccounts"
# The one list of checks the templates do not pass, each with why it must stay that way.
SKIPPED = {
    "CKV_AZURE_35": Skip(
        (STORAGE,),
        "default-deny network rules on the storage account would lock out the Flex Consumption app, which "
        "reaches its host storage, code package and queues over the public endpoint unless it has VNet "
        "integration with private endpoints or service endpoints (subnetId is optional); the account takes "
        "no shared keys or SAS (identities only) and trusted Azure services may bypass the rules",
    ),
    "CKV_AZURE_206": Skip(
        (STORAGE,),
        "geo-replication (GRS) is not needed: the account holds the code package (republished), queue "
        "messages (the hourly sweep re-queues any certificate that is due) and dead letters; the outcome "
        "of each renewal is also a tag on the certificate in Key Vault",
    ),
    "CKV_AZURE_43": Skip(
        (STORAGE,),
        "false positive: checkov checks the name expression as text; the name is a parameter (3-24 "
        "characters) whose default is certlc + uniqueString(), 19 lower-case letters and digits",
    ),
    "CKV_AZURE_225": Skip(
        ("Microsoft.Web/serverfarms",),
        "zone redundancy on Flex Consumption keeps at least two always-ready instances billed around the "
        "clock and is not offered in every region; a zone outage delays renewals that start 30 days early",
    ),
    "CKV_AZURE_212": Skip(
        (SITE,),
        "numberOfWorkers does not apply to Flex Consumption, which scales per event from zero; the work is "
        "queue and timer driven and tolerates a cold start",
    ),
    "CKV_AZURE_213": Skip(
        (SITE,),
        "the platform health check (healthCheckPath) is not supported on Flex Consumption, and the app "
        "serves no HTTP endpoint to probe: failures show in Application Insights and the failed queue",
    ),
    "CKV_AZURE_222": Skip(
        (SITE, APP_SETTINGS),
        "Event Grid pushes Key Vault events to the event function over the app's public endpoint (push "
        "delivery does not use private endpoints), and code is published to it from outside; the only "
        "HTTP entry point is the Event Grid webhook, which takes the function's system key",
    ),
    "CKV_AZURE_17": Skip(
        (SITE,),
        "required client certificates would refuse Event Grid's deliveries, which present none; they are "
        "authenticated by the Event Grid extension's system key",
    ),
    "CKV_AZURE_13": Skip(
        (APP_SETTINGS,),
        "App Service Authentication in front of the app would refuse Event Grid's deliveries (no Entra ID "
        "token); the checked resource is the app settings, not authsettings",
    ),
    "CKV_AZURE_63": Skip(
        (APP_SETTINGS,),
        "false positive: checkov reads the appsettings config resource as the web config; HTTP logs to the "
        "file system are an App Service feature Flex Consumption does not offer (Application Insights "
        "records every invocation)",
    ),
    "CKV_AZURE_65": Skip(
        (APP_SETTINGS,),
        "false positive: checkov reads the appsettings config resource as the web config; detailed error "
        "pages are an App Service (IIS) feature, and the app serves no pages",
    ),
    "CKV_AZURE_66": Skip(
        (APP_SETTINGS,),
        "false positive: checkov reads the appsettings config resource as the web config; failed request "
        "tracing is an App Service (IIS) feature Flex Consumption does not offer",
    ),
    "CKV_AZURE_80": Skip(
        (APP_SETTINGS,),
        "false positive: the app is Python (functionAppConfig.runtime), it has no .NET Framework version",
    ),
    "CKV_AZURE_88": Skip(
        (APP_SETTINGS,),
        "Flex Consumption mounts no Azure Files content share; the app keeps no files between runs",
    ),
}


class Failure(NamedTuple):
    check_id: str
    resource: str
    file: str
    name: str

    @property
    def resource_type(self) -> str:
        """``Microsoft.Web/sites`` of ``Microsoft.Web/sites.<name>`` (no dot in a type after its first /)."""
        return self.resource[: self.resource.index(".", self.resource.index("/"))]

    def __str__(self) -> str:
        return f"{self.check_id} {self.resource} ({self.file}): {self.name}"


def failures_of(report: dict | list) -> list[Failure]:
    """Failed checks of checkov's JSON report (one object per framework, or a list of them)."""
    found = []
    for part in report if isinstance(report, list) else [report]:
        for check in part.get("results", {}).get("failed_checks", []):
            found.append(Failure(check["check_id"], check["resource"], check["file_path"], check["check_name"]))
    return found


def problems(failures: list[Failure], skipped: dict[str, Skip] = SKIPPED) -> list[str]:
    """Failures not skipped (or on a resource type the skip does not name), and skips that no longer fail."""
    found = [
        f"failed: {f}"
        for f in failures
        if f.check_id not in skipped or f.resource_type not in skipped[f.check_id].resource_types
    ]
    stale = sorted(set(skipped) - {f.check_id for f in failures})
    return found + [f"{check_id} is skipped but passes now: remove it from SKIPPED" for check_id in stale]


@pytest.fixture(scope="module")
def report() -> dict | list:
    try:
        checkov = tools.ensure_checkov()
    except tools.ToolMissing as exc:
        fail_in_ci_else_skip(f"*** CHECKOV UNAVAILABLE: {exc} (python -m localazure.tools install checkov) ***")
    # Not --quiet: the report then lists the passed checks too, which the tests read.
    command = [str(checkov), "--framework", "arm", "--compact", "--skip-download", "-o", "json"]
    for template in TEMPLATES:
        command += ["-f", template]
    result = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode not in (0, 1) or not result.stdout.strip():  # 1: some check failed
        pytest.fail(f"checkov exited {result.returncode}: {result.stderr.strip()[-2000:]}", pytrace=False)
    return json.loads(result.stdout)


def test_the_templates_pass_checkov_or_the_check_is_skipped_with_a_reason(report):
    parts = report if isinstance(report, list) else [report]
    assert {part["check_type"] for part in parts} == {"arm"}
    assert sum(part["summary"]["parsing_errors"] for part in parts) == 0
    assert sum(part["summary"]["passed"] for part in parts) >= 20  # it really scanned the resources
    assert problems(failures_of(report)) == []


def test_ftp_is_off_and_http2_on(report):
    parts = report if isinstance(report, list) else [report]
    passed = {check["check_id"] for part in parts for check in part["results"]["passed_checks"]}
    assert {"CKV_AZURE_78", "CKV_AZURE_18", "CKV_AZURE_67", "CKV_AZURE_36"} <= passed


def test_every_skip_names_its_resource_types_and_a_reason():
    for check_id, skip in SKIPPED.items():
        assert check_id.startswith("CKV_AZURE_") and skip.resource_types, check_id
        assert len(skip.reason) > 40, f"{check_id}: say why the check must stay failing"


def test_the_report_check_finds_a_new_failure_and_a_stale_skip():
    report = {
        "check_type": "arm",
        "results": {
            "failed_checks": [
                {"check_id": "CKV_AZURE_78", "resource": "Microsoft.Web/sites.[parameters('appName')]",
                 "file_path": "/infra/main.json", "check_name": "Ensure FTP deployments are disabled"},
                {"check_id": "CKV_AZURE_35", "resource": "Microsoft.Web/sites.app",
                 "file_path": "/infra/main.json", "check_name": "storage rule on another type"},
            ]
        },
    }  # fmt: skip
    skipped = {"CKV_AZURE_35": SKIPPED["CKV_AZURE_35"], "CKV_AZURE_17": SKIPPED["CKV_AZURE_17"]}
    assert problems(failures_of(report), skipped) == [
        "failed: CKV_AZURE_78 Microsoft.Web/sites.[parameters('appName')] (/infra/main.json): "
        "Ensure FTP deployments are disabled",
        "failed: CKV_AZURE_35 Microsoft.Web/sites.app (/infra/main.json): storage rule on another type",
        "CKV_AZURE_17 is skipped but passes now: remove it from SKIPPED",
    ]


def test_checkov_is_pinned_in_its_own_virtualenv(tmp_path, monkeypatch, capsys):
    assert tools.CHECKOV.version == tools.CHECKOV_VERSION and tools.CHECKOV_VERSION.count(".") == 2
    monkeypatch.setenv("CERTLC_TOOLS_DIR", str(tmp_path))
    assert tools.CHECKOV.venv() == tmp_path / "venvs" / "checkov"
    assert tools.main(["which", "checkov"]) == 1  # which never installs
    assert "checkov is not installed" in capsys.readouterr().err
