"""A newcomer's first hour with the ``certlc`` command, each in its own process as a user runs it: mistakes are one
line and exit 2 (never a traceback), a reader that stops early (``| head``) is no error, and every command's
``--help`` is clean and ends with examples."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from certlc.cli import DELEGATED, EMULATORS
from tests.environment import without_certlc_settings
from tests.test_cli_options import ROWS, SNAPSHOT

REPO = Path(__file__).resolve().parents[1]
PYTHON_TEXT = ("object has no attribute", "indices must be", "Traceback")  # Python's words, not the user's
DEAD_VAULT = {"CERTLC_VAULTS": "kv1=https://127.0.0.1:1"}  # refused at once: nothing listens on port 1
BAD_STORAGE = {**DEAD_VAULT, "CERTLC_QUEUE_NAME": "certlc-renewals"}


def certlc(cwd: Path, *args: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()):
    clean = without_certlc_settings() | {"PYTHONPATH": str(REPO)}
    return subprocess.run(
        [*prefix, sys.executable, "-m", "certlc", *args],
        cwd=cwd,
        env=clean | (env or {}),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def one_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert not any(words in lines[0] for words in PYTHON_TEXT), lines[0]
    return lines[0]


@pytest.fixture
def rows(tmp_path: Path) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({**r, "TimeGenerated": SNAPSHOT}) + "\n" for r in ROWS))
    return path


# -- 1. what used to be a traceback: one line, exit 2 -------------------------------------------------------------


def test_dashboard_out_naming_a_folder(tmp_path, rows):
    result = certlc(tmp_path, "dashboard", "--rows", str(rows), "--history", str(rows), "--out", str(tmp_path))
    assert result.returncode == 2
    assert "is a folder" in one_line(result)


def test_dashboard_ca_bundle_pointing_nowhere(tmp_path):
    result = certlc(tmp_path, "dashboard", "--logs-url", "https://127.0.0.1:1", "--ca-bundle", "/nowhere/ca.pem")
    assert result.returncode == 2
    assert "--ca-bundle: cannot read the file /nowhere/ca.pem" in one_line(result)


def test_keyvault_ca_bundle_pointing_nowhere(tmp_path):
    env = {**DEAD_VAULT, "CERTLC_KEYVAULT_CA_BUNDLE": "/nowhere/ca.pem"}
    result = certlc(tmp_path, "status", env=env)
    assert result.returncode == 2
    assert "CERTLC_KEYVAULT_CA_BUNDLE" in one_line(result)


@pytest.mark.parametrize(
    ("connection", "why"),
    [
        ("not a connection string", "malformed"),
        ("QueueEndpoint=http://127.0.0.1:1/devstoreaccount1;BlobEndpoint=http://127.0.0.1:1/devstoreaccount1", "key"),
    ],
)
@pytest.mark.parametrize("command", [["sweep"], ["failed", "list"], ["renew", "web"]])
def test_a_storage_connection_string_the_sdk_refuses(tmp_path, connection, why, command):
    result = certlc(tmp_path, *command, env={**BAD_STORAGE, "CertlcStorage": connection})
    assert result.returncode == 2
    line = one_line(result)
    assert line.startswith("certlc: CertlcStorage cannot be used") and why in line, line


def test_a_settings_path_that_is_a_folder(tmp_path):
    result = certlc(tmp_path, "--settings", str(tmp_path), "status")
    assert result.returncode == 2
    assert f"settings file {tmp_path} is a folder" in one_line(result)


def _cannot_here(why: str) -> None:
    """Skipped on a machine that cannot make the case; a failure in CI (CI set), whose image can."""
    pytest.fail(why) if os.environ.get("CI") else pytest.skip(why)


def test_a_stack_folder_the_user_cannot_read(tmp_path):
    """Run as root (the tests' container), a mode-000 folder is still readable: the command then runs without the
    capabilities that let root read anything (``setpriv``), so the read fails as it does for any other user."""
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            _cannot_here("running as root without setpriv: a folder root cannot read cannot be made")
        prefix = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search")
    locked = tmp_path / "stack"
    locked.mkdir()
    (locked / "local.settings.json").write_text(json.dumps({"Values": DEAD_VAULT}))
    locked.chmod(0)
    try:
        result = certlc(tmp_path, "status", env={"CERTLC_STACK_DIR": str(locked)}, prefix=prefix)
    finally:
        locked.chmod(0o700)
    if result.returncode == 1 and "setpriv" in result.stderr:
        _cannot_here(f"this container does not let setpriv drop capabilities: {result.stderr.strip()}")
    assert result.returncode == 2
    assert "cannot read the settings file" in one_line(result) and "Permission denied" in result.stderr


@pytest.mark.parametrize("body", [{"Values": ["CERTLC_VAULTS=kv1"]}, {"IsEncrypted": False}, ["CERTLC_VAULTS"]])
def test_a_settings_file_without_a_values_object(tmp_path, body):
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps(body))
    result = certlc(tmp_path, "--settings", str(path), "status")
    assert result.returncode == 2
    assert 'needs a "Values" object' in one_line(result)


# -- 2. a reader that stops early -----------------------------------------------------------------------------------


@pytest.mark.parametrize("output", [["-o", "json"], []])
def test_a_reader_gone_before_the_listing_is_no_error(tmp_path, rows, output):
    """``certlc status -o json | head -c 10``: the reader closes the pipe here before certlc writes, so the
    write always fails as it does when ``head`` has had its lines."""
    listing = subprocess.Popen(
        [sys.executable, "-m", "certlc", "status", "--rows", str(rows), *output],
        cwd=tmp_path,
        env=without_certlc_settings() | {"PYTHONPATH": str(REPO)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    listing.stdout.close()
    errors = listing.stderr.read()
    assert listing.wait(timeout=60) == 1
    assert errors == ""


# -- 4. --vault naming a vault certlc does not manage ---------------------------------------------------------------


@pytest.mark.parametrize("extra", [[], ["--summary", "--history", "/dev/null"]])
def test_status_of_a_vault_not_configured(tmp_path, extra):
    result = certlc(tmp_path, "status", "--vault", "kv2", *extra, env=DEAD_VAULT)
    assert result.returncode == 2
    assert one_line(result) == "certlc: vault 'kv2' is not in CERTLC_VAULTS (kv1)"


def test_status_with_the_vault_down_says_so_in_one_line_at_once(tmp_path):
    """As every other command does: not an empty table and a ServiceRequestError after the SDK's retries."""
    import time

    started = time.monotonic()
    result = certlc(tmp_path, "status", env=DEAD_VAULT)
    assert result.returncode == 1 and result.stdout == ""
    assert one_line(result).startswith("certlc: cannot reach vault kv1 at https://127.0.0.1:1 (connection refused)")
    assert time.monotonic() - started < 20  # the interpreter's start included; the dial itself is 3 s at most


# -- 3. a name Key Vault cannot have, before anything is built --------------------------------------------------


def test_renew_of_a_name_key_vault_cannot_have(tmp_path):
    result = certlc(tmp_path, "renew", "bad name!", env={"CERTLC_VAULTS": "kv1"})
    assert result.returncode == 2
    assert "'bad name!' cannot be a Key Vault certificate name" in one_line(result)


# -- 7. help ----------------------------------------------------------------------------------------------------


COMMANDS = [[name] for name, *_ in DELEGATED] + [["emulator"]] + [["emulator", name] for name, *_ in EMULATORS]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_commands_help_ends_with_examples(command):
    result = certlc(REPO, *command, "--help")
    assert result.returncode == 0, result.stderr
    assert "SUPPRESS" not in result.stdout
    _, _, examples = result.stdout.partition("\nexamples:\n")
    assert examples, result.stdout
    lines = [line for line in examples.splitlines() if line.startswith("  certlc ")]
    assert 1 <= len(lines) <= 3 and all(line.startswith(f"  certlc {command[0]}") for line in lines), examples


def test_help_lists_the_commands_a_newcomer_meets_first_first():
    top = certlc(REPO, "--help").stdout
    listed = [match[1] for line in top.splitlines() if (match := re.match(r"    (\w+) ", line))]
    assert listed == [
        "demo",
        "local",
        "status",
        "targets",
        "renew",
        "revoke",
        "issue",
        "adopt",
        "sweep",
        "failed",
        "ingest",
        "dashboard",
        "doctor",
        "sync",
        "worker",
        "dev",
        "emulator",
    ]


def test_local_help_hides_its_internal_action_and_describes_the_others():
    local = certlc(REPO, "local", "--help").stdout
    assert "serve" not in local and "SUPPRESS" not in local
    for action, says in (("up", "start the local stack"), ("down", "stop the local stack")):
        _, _, rest = certlc(REPO, "local", action, "--help").stdout.partition("\n\n")
        assert rest.startswith(says), rest


def test_renew_help_does_not_say_one_certificate_only():
    description = certlc(REPO, "renew", "--help").stdout.split("\n\n")[1]
    assert "one certificate" not in description and "--all" in description


@pytest.mark.parametrize(
    "args",
    [
        ["dashboard", "-o", "json"],
        ["local", "add", "web", "--days", "5", "-o", "json"],
        ["failed", "retry", "--all", "--json"],
        ["failed", "remove", "entry-1", "-o", "json"],
        ["-o", "json", "--version"],
        ["--version", "--json"],
    ],
    ids=" ".join,
)
def test_json_output_is_refused_where_a_command_prints_text_only(tmp_path, args):
    result = certlc(tmp_path, *args)
    assert result.returncode == 2 and result.stdout == ""
    assert "-o json" in one_line(result)
