"""Running the ``certlc`` command in a child process, as a user would, with none of this process's settings."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.environment import without_certlc_settings

REPO = Path(__file__).resolve().parents[2]


def run_certlc(
    *args: str, timeout: float = 240, cwd: Path = REPO, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``certlc ARGS`` from ``cwd`` (the repository), with ``env`` added to the user's environment."""
    return subprocess.run(
        [sys.executable, "-m", "certlc", *args],
        cwd=cwd,
        env=without_certlc_settings() | dict(env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
