"""Running the ``certlc`` command in a child process, as a user would, with none of this process's settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.environment import without_certlc_settings

REPO = Path(__file__).resolve().parents[2]


def run_certlc(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = without_certlc_settings()
    return subprocess.run(
        [sys.executable, "-m", "certlc", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
