"""A server installs certlc alone: ``certlc worker``, ``sync`` and ``doctor`` run without the Azure stand-ins and the
local stack (``localazure``); ``local``, ``emulator`` and ``demo`` import them lazily and say how to install them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from certlc.cli import LOCALAZURE_MISSING
from tests.environment import without_certlc_settings

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[1]
# What a server runs: the host (certlc worker), the sync and the doctor, and the command line and commands they share.
SERVER_CODE = [
    "certlc/host",
    "certlc/sync",
    "certlc/doctor",
    "certlc/commands",
    "certlc/cli.py",
    "certlc/stack_files.py",
]
LOCAL_ONLY = {"certlc/commands/local.py"}  # `certlc local`'s command line: it needs localazure, a server never runs it
# In the child: localazure cannot be imported, as on a server; every module of the three is imported, then the command
# builds its parser and prints its help.
WITHOUT_LOCALAZURE = """
import importlib, pkgutil, sys
sys.modules["localazure"] = None
import certlc.doctor, certlc.host, certlc.sync
for package in (certlc.doctor, certlc.host, certlc.sync):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(module.name)
from certlc.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _without_localazure(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_LOCALAZURE, *args],
        cwd=cwd,
        env=without_certlc_settings(),
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )


def _imported(path: Path) -> set[str]:
    """Every absolute import in a file, lazy ones included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def test_the_server_code_never_imports_localazure() -> None:
    files = [
        p
        for entry in SERVER_CODE
        for p in ([ROOT / entry] if entry.endswith(".py") else (ROOT / entry).rglob("*.py"))
        if str(p.relative_to(ROOT)) not in LOCAL_ONLY
    ]
    assert len(files) > 30
    offending = {str(p.relative_to(ROOT)): m for p in files for m in _imported(p) if m.split(".")[0] == "localazure"}
    assert offending == {}


@pytest.mark.parametrize("command", ["worker", "sync", "doctor"])
def test_server_commands_run_without_localazure(command: str, tmp_path: Path) -> None:
    done = _without_localazure(tmp_path, command, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: certlc {command}")


@pytest.mark.parametrize("args", [["local", "down"], ["emulator", "keyvault", "--help"], ["demo", "--dir", "demo"]])
def test_the_local_commands_say_how_to_install_localazure(args: list[str], tmp_path: Path) -> None:
    done = _without_localazure(tmp_path, *args)
    assert (done.returncode, done.stderr) == (2, f"certlc: {LOCALAZURE_MISSING}\n")
