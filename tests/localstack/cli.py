"""Running the ``certlc`` command in a child process, as a user would, with none of this process's settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_certlc(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTLC_") or k == "CERTLC_STACK_DIR"}
    return subprocess.run(
        [sys.executable, "-m", "certlc", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
