"""local.settings.sample.json, docs/settings.md's table and the code agree on the settings there are, and the
sample, copied to local.settings.json as Functions users do, works against ``certlc local up`` once filled in."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from certlc.stack_files import PLACEHOLDER, unfilled_settings
from tests.anywhere import certlc_in
from tests.infra.test_template_vs_code import SETTING, binding_settings

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "local.settings.sample.json"
CODE = [
    ROOT / "function_app.py",
    *(p for part in ("renewal", "ingestion", "certlc", "localazure") for p in (ROOT / part).rglob("*.py")),
]

# Names the scan finds that are not settings, and settings one of the three lists leaves out on purpose, with why.
NOT_SETTINGS = {"CertlcLocalStack": "a key beside Values in the local stack's settings file, marking a stopped stack"}
ENVIRONMENT_ONLY = {  # read from the process environment before any settings file, never from Values
    "CERTLC_TOOLS_DIR": "where the tool installers put Azurite and checkov",
    "CERTLC_STACK_DIR": "where the local stack keeps its state, and so where commands find its settings file",
    "CERTLC_DEMO_DIR": "where certlc demo keeps its state when --dir does not say",
    "CERTLC_KEYVAULT_THROTTLE_RETRY_AFTER": "the Key Vault emulator's start-up mode of Retry-After on its 429s",
}
HOST_SETTINGS = {
    "FUNCTIONS_WORKER_RUNTIME": "the Functions host's own setting",
    "AzureWebJobsStorage": "the Functions host's own storage (timers, and the queue trigger's default connection)",
}
IDENTITY_FORMS = {  # read as f"{connection}__queueServiceUri"; locally CertlcStorage is a connection string
    "CertlcStorage__queueServiceUri": "the managed-identity form of CertlcStorage, for Azure",
    "CertlcStorage__blobServiceUri": "the managed-identity form of CertlcStorage, for Azure",
}


def names_in_code() -> set[str]:
    """Every whole string constant naming a setting in the app, its packages, the certlc command and the stand-ins."""
    names = set()
    for path in CODE:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SETTING.fullmatch(node.value):
                names.add(node.value)
    return names | binding_settings()


def settings_read() -> set[str]:
    return names_in_code() - set(NOT_SETTINGS)


def sample_values() -> dict[str, str]:
    return json.loads(SAMPLE.read_text())["Values"]


def documented_settings() -> set[str]:
    """The setting names in the first column of docs/settings.md's table."""
    text = (ROOT / "docs" / "settings.md").read_text()
    rows = [line.split("|")[1] for line in text.splitlines() if line.startswith("| `")]
    return {name for cell in rows for name in re.findall(r"`([^`]+)`", cell) if SETTING.fullmatch(name)}


def test_the_scan_finds_settings_beyond_the_function_packages():
    found = names_in_code()
    assert {"CERTLC_VAULTS", "CertlcStorage", "CERTLC_QUEUE_NAME", "CERTLC_DOCTOR_TIMEOUT", "CERTLC_TOOLS_DIR"} <= found
    assert set(NOT_SETTINGS) <= found, "NOT_SETTINGS names something the code no longer has"
    assert set(ENVIRONMENT_ONLY) <= found, "ENVIRONMENT_ONLY names a setting the code no longer reads"


def test_the_sample_lists_exactly_the_settings_the_code_reads():
    in_sample = set(sample_values()) - set(HOST_SETTINGS)
    wanted = settings_read() - set(ENVIRONMENT_ONLY)
    assert wanted - in_sample == set(), "add these to local.settings.sample.json"
    assert in_sample - wanted == set(), "local.settings.sample.json has settings the code does not read"
    assert set(HOST_SETTINGS) <= set(sample_values())


def test_the_settings_reference_lists_exactly_the_settings_the_code_reads():
    in_table = documented_settings() - set(IDENTITY_FORMS)
    assert settings_read() - in_table == set(), "add these to docs/settings.md's table"
    assert in_table - settings_read() == set(), "docs/settings.md's table names settings the code does not read"
    assert set(IDENTITY_FORMS) <= documented_settings()


def test_the_unfilled_sample_names_exactly_the_values_a_stack_decides():
    values = sample_values()
    placeholders = [name for name, value in values.items() if value == PLACEHOLDER]
    assert placeholders == [
        "AzureWebJobsStorage",
        "CertlcStorage",
        "CERTLC_VAULTS",
        "CERTLC_CLOCK_URL",
        "CERTLC_LOCAL_CA_CRL_URL",
        "CERTLC_DCE_ENDPOINT",
        "CERTLC_DCR_IMMUTABLE_ID",
        "CERTLC_LOGS_TOKEN",
        "CERTLC_TARGET_ARM_ENDPOINT",
        "CERTLC_TARGET_CONNECT",
        "CERTLC_ARM_ENDPOINT",
    ]
    message = unfilled_settings(Path("local.settings.json"), values)
    assert message is not None and message.startswith(
        f"local.settings.json still has the sample's placeholder for {', '.join(placeholders)}: copy those values from "
    )
    assert unfilled_settings(Path("local.settings.json"), values | dict.fromkeys(placeholders, "x")) is None


def test_the_sample_copied_and_filled_in_works_against_a_running_stack(tmp_path, azurite):
    """As a Functions user works: the stack in the app folder's .local/stack, the sample copied beside it, the
    placeholders filled from the stack's settings; every other value is already the stack's."""
    stack_dir = tmp_path / ".local" / "stack"
    up = certlc_in(tmp_path, "local", "up", "--dir", str(stack_dir), "--json")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        stack = json.loads(Path(json.loads(up.stdout)["settings_file"]).read_text())["Values"]
        values = sample_values()
        for name, value in stack.items():
            if values[name] == PLACEHOLDER:
                values[name] = value
            elif values[name] != value:  # a path, relative to the app folder
                assert (tmp_path / values[name]).resolve() == Path(value).resolve(), name
        (tmp_path / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": values}))

        status = certlc_in(tmp_path, "status", "-o", "json")
        assert status.returncode == 0, status.stderr
        assert len(json.loads(status.stdout)["certificates"]) == len(json.loads(up.stdout)["seeded"]) > 0
        doctor = certlc_in(tmp_path, "doctor", "-o", "json")
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        checked = {check["name"] for check in json.loads(doctor.stdout)["checks"]}
        assert {"app functions", "key vault references"} <= checked  # the stack's app, on its App Service emulator
    finally:
        certlc_in(tmp_path, "local", "down", "--dir", str(stack_dir))


def test_a_command_with_the_sample_copied_unfilled_says_which_values_to_fill_in(tmp_path):
    (tmp_path / "local.settings.json").write_text(SAMPLE.read_text())
    status = certlc_in(tmp_path, "status", timeout=30)
    assert status.returncode == 2
    assert status.stderr == f"certlc: {unfilled_settings(Path('local.settings.json'), sample_values())}\n"
