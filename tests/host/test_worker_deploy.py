"""The worker's systemd unit and settings sample, offline: systemd's own checker, the real ``certlc worker`` parser
for ExecStart, and the app's own binding resolution for the settings."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from certlc.cli import parse
from tests.test_settings_sample import IDENTITY_FORMS, names_in_code

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "systemd" / "certlc-worker.service"
SAMPLE = REPO / "deploy" / "systemd" / "worker.settings.sample.json"
DOCS = REPO / "docs" / "worker.md"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")
# DefaultAzureCredential's environment credential: how a server outside Azure signs in as the worker's identity
IDENTITY_ENVIRONMENT = {"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_CERTIFICATE_PATH"}


def unit() -> dict[str, dict[str, list[str]]]:
    """Section → key → values, in order (systemd allows a key more than once)."""
    sections: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    section = ""
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        sections[section][key.strip()].append(value.strip())
    return sections


def service(key: str) -> str:
    [value] = unit()["Service"][key]
    return value


def exec_start() -> list[str]:
    return shlex.split(service("ExecStart"))


def test_exec_start_is_accepted_by_the_real_certlc_worker_parser() -> None:
    program, *argv = exec_start()
    assert program.endswith("/bin/certlc")
    args = parse(argv)
    assert args.command == "worker"
    assert not args.drain  # polls until stopped
    assert args.settings == "/etc/certlc/worker.settings.json"
    assert args.script_root == Path("/opt/certlc/app")


def test_systemd_stops_the_worker_only_after_its_grace() -> None:
    args = parse(exec_start()[1:])
    assert service("KillSignal") == "SIGTERM"
    assert service("KillMode") == "mixed"  # SIGTERM to the worker alone; SIGKILL only once TimeoutStopSec is up
    assert float(service("TimeoutStopSec")) >= args.grace + 15  # room to hand messages back after the grace
    assert service("ExecReload") == "/bin/kill -HUP $MAINPID"


def test_the_unit_restarts_on_failure_logs_to_the_journal_and_is_hardened() -> None:
    expected = {
        "Type": "simple",
        "User": "certlc",
        "Restart": "on-failure",
        "RestartPreventExitStatus": "2",  # a wrong setting (certlc's exit 2) waits for the operator
        "StandardOutput": "journal",
        "StandardError": "journal",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
    }
    assert {key: service(key) for key in expected} == expected
    assert float(service("RestartSec")) > 0
    assert service("WorkingDirectory") in unit()["Service"]["ReadWritePaths"]  # the only place it writes
    assert service("WorkingDirectory") == f"/var/lib/{service('StateDirectory')}"


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    """In a root of its own, with the programs the unit runs (verify checks that they are executable; the installed
    certlc stands in as ``true``), and systemd's own units its dependencies name."""
    from localazure.tools import SYSTEMD, ToolMissing

    from tests.fixtures.servers import unavailable

    try:
        SYSTEMD.ensure()
    except ToolMissing as exc:
        unavailable("systemd-analyze", str(exc))
    root = tmp_path / "root"
    shutil.copytree(SYSTEM_UNITS, root / SYSTEM_UNITS.relative_to("/"), symlinks=True)
    for program, source in ((exec_start()[0], "true"), ("/bin/kill", "kill")):
        target = root / program.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(shutil.which(source) or source, target)
    units = root / "etc" / "systemd" / "system"
    units.mkdir(parents=True)
    shutil.copy2(UNIT, units)
    output = tmp_path / "verify.txt"
    with output.open("w") as out:
        returncode = subprocess.run(
            ["systemd-analyze", "verify", f"--root={root}", "--man=no", UNIT.name],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=60,
            check=False,
        ).returncode
    assert (returncode, output.read_text()) == (0, "")  # warnings (an unknown key, a bad value) are output too


def test_the_settings_sample_builds_the_worker_as_it_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    from certlc.host.host import load_app
    from certlc.host.worker import build_worker
    from renewal.settings import settings_from_env

    values = json.loads(SAMPLE.read_text())["Values"]
    assert set(values) - names_in_code() - set(IDENTITY_FORMS) == IDENTITY_ENVIRONMENT
    # DefaultAzureCredential reads the identity from the environment, and its certificate file is the server's
    monkeypatch.setattr(os, "environ", {k: v for k, v in values.items() if k not in IDENTITY_ENVIRONMENT})
    assert settings_from_env(values).queue_name == "certlc-renewals"
    host = build_worker(load_app(REPO), values, REPO / "host.json")
    try:
        assert host.queue_urls == ["https://stcertlcprod.queue.core.windows.net/certlc-renewals"]
    finally:
        host.stop()


def test_the_docs_install_the_files_the_unit_names() -> None:
    docs = DOCS.read_text()
    for text in (
        "deploy/systemd/certlc-worker.service",
        "deploy/systemd/worker.settings.sample.json",
        "/etc/certlc/worker.settings.json",
        "/opt/certlc/venv",
        "/opt/certlc/app",
        "systemctl enable --now certlc-worker",
        "systemctl reload certlc-worker",
        "journalctl -u certlc-worker",
    ):
        assert text in docs, text
