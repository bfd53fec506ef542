"""Running the installed ``certlc`` script from any folder, as a user without an activated virtualenv does."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from tests.environment import without_certlc_settings

CERTLC = Path(sys.executable).parent / "certlc"  # the console script pip installed beside this Python


def certlc_in(
    cwd: Path, *args: str, timeout: float = 120, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``certlc ARGS`` run in ``cwd`` with none of this process's certlc settings (``env`` adds some); output through
    files, since ``local up`` leaves a server running."""
    own = without_certlc_settings()
    env = {**own, **(env or {})}  # the test session's stack folder stays: never the developer's own
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        done = subprocess.run(
            [str(CERTLC), *args], cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL, timeout=timeout
        )
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(done.args, done.returncode, out.read(), err.read())
