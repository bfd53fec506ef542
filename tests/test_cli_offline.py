"""Every command that reaches a service, with nothing listening: one line on stderr, no traceback, the exit code
of the README's rule, and quickly (the storage SDK alone would retry a refused connection for 80 s)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.environment import without_certlc_settings

REPO = Path(__file__).resolve().parents[1]
DEADLINE_SECONDS = 15
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody else takes it), never listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def stack_values(port: int, ca_dir: Path) -> dict[str, str]:
    """What `certlc local up` writes, with every service on a port nothing listens on."""
    base = f"http://127.0.0.1:{port}/devstoreaccount1"
    storage = (
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
        f"QueueEndpoint={base};BlobEndpoint={base}"
    )
    return {
        "AzureWebJobsStorage": storage,
        "CertlcStorage": storage,
        "CERTLC_QUEUE_NAME": "certlc-renewals",
        "CERTLC_VAULTS": f"kv1=https://127.0.0.1:{port}",
        "CERTLC_LOCAL_TOKEN": "token",
        "CERTLC_CLOCK_URL": f"https://127.0.0.1:{port}/clock",
        "CERTLC_CA": "local",
        "CERTLC_LOCAL_CA_DIR": str(ca_dir),
        "CERTLC_SWEEP_SCHEDULE": "0 0 * * * *",
        "CERTLC_INGEST_SCHEDULE": "0 30 * * * *",
    }


@pytest.fixture
def dead_settings(tmp_path: Path, dead_port: int) -> Path:
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": stack_values(dead_port, tmp_path / "ca")}))
    return path


def certlc(cwd: Path, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, float]:
    clean = without_certlc_settings()
    clean["CERTLC_STACK_DIR"] = str(cwd / ".local" / "stack")  # never the repository's own stack
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "certlc", *args],
        cwd=cwd,
        env={**clean, **(env or {}), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=DEADLINE_SECONDS + 15,
        stdin=subprocess.DEVNULL,
    )
    return result, time.monotonic() - started


COMMANDS = [
    ["renew", "web", "--vault", "kv1"],
    ["renew", "web", "--vault", "kv1", "--dry-run"],
    ["renew", "--all"],
    ["renew", "--all", "--dry-run", "-o", "json"],
    ["failed", "list"],
    ["failed", "retry", "--all"],
    ["failed", "remove", "abc"],
    ["failed", "purge", "--yes"],
    ["sweep"],
    ["status"],
    ["status", "web"],
    ["worker", "--drain", "--timeout", "10", "--script-root", str(REPO)],
    ["dev", "--no-timers", "--port", "0", "--script-root", str(REPO)],
]


@pytest.mark.timeout(DEADLINE_SECONDS * len(COMMANDS) + 30)
@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_dead_service_is_one_line_and_exit_1_within_the_deadline(tmp_path, dead_settings, dead_port, args):
    result, seconds = certlc(tmp_path, "--settings", str(dead_settings), *args)
    assert seconds < DEADLINE_SECONDS, f"{seconds:.1f} s: {result.stderr}"
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(dead_port) in lines[0]
    if args != ["status"]:  # status lists what it could read and names each vault it could not
        assert f"127.0.0.1:{dead_port}" in lines[0]
        assert "cannot reach" in lines[0] and "certlc local up" in lines[0], lines[0]


def stopped_stack(directory: Path, port: int, *, marked: bool) -> Path:
    """A `certlc local up` state folder whose process is gone; the settings file marked by `local down` or not."""
    directory.mkdir()
    body: dict = {"IsEncrypted": False, "Values": stack_values(port, directory / "ca")}
    if marked:
        body["CertlcLocalStack"] = "stopped"
    (directory / "local.settings.json").write_text(json.dumps(body))
    return directory / "local.settings.json"


def a_dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.timeout(60)
def test_local_down_marks_the_settings_file_and_commands_say_the_stack_is_not_running(tmp_path, dead_port):
    directory = tmp_path / "stack"
    settings = stopped_stack(directory, dead_port, marked=False)
    (directory / "stack.json").write_text(json.dumps({"pid": a_dead_pid()}))
    down, _ = certlc(tmp_path, "local", "down", "--dir", str(directory))
    assert down.returncode == 0, down.stderr
    assert json.loads(settings.read_text())["CertlcLocalStack"] == "stopped"
    assert not (directory / "stack.json").exists()
    for args in (["renew", "web", "--vault", "kv1", "--dry-run"], ["failed", "list"], ["sweep"], ["status"]):
        result, seconds = certlc(tmp_path, "--settings", str(settings), *args)
        assert seconds < DEADLINE_SECONDS
        assert result.returncode == 1, result.stderr
        assert result.stderr.strip() == "certlc: the local stack is not running: run certlc local up", args


@pytest.mark.timeout(60)
def test_the_default_settings_of_a_stopped_stack_are_refused_too(tmp_path, dead_port):
    """No ./local.settings.json: certlc falls back to the one `certlc local up` wrote in .local/stack."""
    (tmp_path / ".local").mkdir()
    stopped_stack(tmp_path / ".local" / "stack", dead_port, marked=True)
    result, _ = certlc(tmp_path, "failed", "list")
    assert result.returncode == 1
    assert result.stderr.strip() == "certlc: the local stack is not running: run certlc local up"


@pytest.mark.timeout(60)
def test_a_stack_killed_without_local_down_is_not_running_either(tmp_path, dead_port):
    """stack.json still names the process, which is gone: the file was never marked."""
    directory = tmp_path / "stack"
    settings = stopped_stack(directory, dead_port, marked=False)
    (directory / "stack.json").write_text(json.dumps({"pid": a_dead_pid()}))
    result, _ = certlc(tmp_path, "--settings", str(settings), "sweep")
    assert result.returncode == 1
    assert result.stderr.strip() == "certlc: the local stack is not running: run certlc local up"


@pytest.mark.timeout(60)
def test_local_up_is_not_refused_by_a_stopped_stacks_settings(tmp_path, dead_port):
    """`local down` and the other commands that never read app settings still run."""
    directory = tmp_path / ".local" / "stack"
    directory.parent.mkdir()
    stopped_stack(directory, dead_port, marked=True)
    result, _ = certlc(tmp_path, "local", "down")
    assert result.returncode == 0, result.stderr
    assert "no local stack is running" in result.stdout


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["status"], {}, "CERTLC_VAULTS is not set"),
        (["renew", "web", "--vault", "kv1"], {}, "CERTLC_VAULTS is not set"),
        (["sweep"], {}, "CERTLC_VAULTS is not set"),
        (["failed", "list"], {}, "CERTLC_VAULTS is not set"),
        (["failed", "purge"], {"CERTLC_VAULTS": "kv1", "CertlcStorage": "UseDevelopmentStorage=true"}, "--yes"),
        (["failed", "retry", "x", "--all"], {"CERTLC_VAULTS": "kv1"}, "not both"),
    ],
)
def test_a_missing_setting_or_a_usage_mistake_is_exit_2_from_every_command(tmp_path, args, env, message):
    result, _ = certlc(tmp_path, *args, env=env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


@pytest.mark.timeout(90)
@pytest.mark.parametrize("command", ["worker", "dev"])
def test_worker_and_dev_refuse_to_start_on_a_broken_setting(tmp_path, dead_settings, command):
    """Checked before any service is dialled or any message taken: exit 2, one line."""
    values = json.loads(dead_settings.read_text())["Values"] | {"CERTLC_MAX_ATTEMPTS": "many"}
    dead_settings.write_text(json.dumps({"Values": values}))
    extra = ["--drain", "--timeout", "10"] if command == "worker" else ["--no-timers", "--port", "0"]
    result, seconds = certlc(tmp_path, "--settings", str(dead_settings), command, *extra, "--script-root", str(REPO))
    assert seconds < DEADLINE_SECONDS
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "CERTLC_MAX_ATTEMPTS" in lines[0], result.stderr
