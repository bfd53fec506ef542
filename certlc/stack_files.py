"""What the operator's commands know of a local stack: the folder it keeps its files in, its settings file, whether
its process still runs, and the placeholder a copied sample holds until a stack fills it in.

Here rather than with the stack (``localazure.stack``), so that every command can refuse a stopped stack's
settings from any folder without importing the stand-ins, which servers do not install.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout: certlc and localazure are installed editable from it
# Absolute, so every command finds the stack from any folder: the repository's, or CERTLC_STACK_DIR (environment only).
DEFAULT_DIR = Path(os.environ.get("CERTLC_STACK_DIR") or REPO_ROOT / ".local" / "stack").resolve()
STACK_SETTINGS = DEFAULT_DIR / "local.settings.json"
# Where certlc demo keeps its state from any folder: the repository's, or CERTLC_DEMO_DIR (environment only).
DEMO_DIR = Path(os.environ.get("CERTLC_DEMO_DIR") or REPO_ROOT / ".local" / "demo").resolve()
PLACEHOLDER = "<from certlc local up>"  # local.settings.sample.json's value for what a stack decides as it starts


def unfilled_settings(path: Path, values: Mapping[str, str]) -> str | None:
    """Why a copied ``local.settings.sample.json`` cannot be used yet: the values only a running stack knows
    (its ports, the Logs emulator's rule id and token) still hold the sample's placeholder. None when filled in."""
    names = [name for name, value in values.items() if value.strip() == PLACEHOLDER]
    if not names:
        return None
    return (
        f"{path} still has the sample's placeholder for {', '.join(names)}: copy those values from "
        f"{STACK_SETTINGS} (certlc local up writes it), or copy that whole file over {path}"
    )


def stack_process_alive(info_path: Path) -> bool:
    """Whether the process a ``stack.json`` names still runs."""
    return process_alive(pid_of(info_path))


def pid_of(info_path: Path) -> Any:
    """The pid a ``stack.json`` names; None when the file is missing or unreadable."""
    try:
        return json.loads(info_path.read_text()).get("pid")
    except (OSError, ValueError, AttributeError):
        return None


def process_alive(pid: Any) -> bool:
    """Whether ``pid`` (anything, as read from a file) names a running process."""
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited == 0
    except ChildProcessError:
        return True
