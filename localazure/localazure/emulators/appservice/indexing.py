"""What App Service lists after a publish: the functions the Python worker indexes from the code's function_app.py.

The emulator never takes a list of functions from its caller: it runs the local host's indexing
(``certlc/host/workerrules.py``, the worker's load rules over ``azure.functions``' ``get_functions()``) on the
published folder, in a process of its own as Azure's worker is, and lists what that found. The worker indexes all or
nothing: an import error or one refused function leaves the app with no function, as in Azure, and the reason is
kept for the caller to read.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from certlc.host import workerrules

INDEX_TIMEOUT = 120.0


@dataclass(frozen=True)
class IndexedFunction:
    name: str
    bindings: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Code:
    """One publish: the folder, the functions indexed from it, and why none were (empty when some were)."""

    script_root: Path | None
    functions: tuple[IndexedFunction, ...] = ()
    error: str = ""


NOTHING_PUBLISHED = Code(None, error="no code has been published")


def index(script_root: Path) -> Code:
    """Index ``script_root`` as the Python worker does after a publish."""
    root = Path(script_root).resolve()
    if not (root / "function_app.py").is_file():
        return Code(root, error=f"no function_app.py in {root}")
    done = subprocess.run(
        [sys.executable, workerrules.__file__, str(root)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=INDEX_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        return Code(root, error=lines[-1] if lines else f"the worker's indexing exited {done.returncode}")
    described = json.loads(done.stdout)["functions"]
    return Code(root, tuple(IndexedFunction(f["name"], tuple(f["bindings"])) for f in described))
