"""localazure is a library certlc's command line uses, never the other way round: ``certlc local``'s command line is
``certlc/commands/local.py``, and nothing under ``localazure/`` imports ``certlc.cli`` or ``certlc.commands``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
COMMAND_LINE = ("certlc.cli", "certlc.commands")


def _imported(path: Path) -> set[str]:
    """Every module a file imports, function-local imports included; ``from certlc import cli`` names certlc.cli."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _is_command_line(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in COMMAND_LINE)


def test_nothing_under_localazure_imports_certlcs_command_line() -> None:
    files = sorted((ROOT / "localazure").rglob("*.py"))
    assert ROOT / "localazure" / "localazure" / "stack.py" in files
    offending = {
        str(path.relative_to(ROOT)): sorted(m for m in _imported(path) if _is_command_line(m))
        for path in files
        if any(_is_command_line(m) for m in _imported(path))
    }
    assert offending == {}


def test_importing_the_stack_leaves_the_command_line_unloaded() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, localazure.stack; print(sorted(m for m in sys.modules if m.startswith(('certlc.cli', "
            "'certlc.commands'))))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
