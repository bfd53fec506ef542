"""Runs the operator's reload command: no shell, a time limit, and a failure that says why."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess

from certlc.sync.errors import SyncConfigError, SyncError


def parse_command(command: str) -> list[str]:
    """The command as argv (``shlex`` rules); a shell is used only when the operator writes ``sh -c '...'``.

    Its program must be there and executable now: found missing only after the files are written, the round
    would be rolled back for a typo."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise SyncConfigError(f"--reload {command!r} cannot be split into arguments: {exc}") from exc
    if not argv:
        raise SyncConfigError("--reload is empty: give the command that makes the server re-read its files")
    program = argv[0]
    if shutil.which(program) is None:
        if os.sep in program and os.path.isfile(program):
            raise SyncConfigError(f"--reload: {program!r} is not executable: chmod +x it or name its interpreter")
        raise SyncConfigError(f"--reload: {program!r} was not found: give its full path or put it on PATH")
    return argv


def run_reload(argv: list[str], timeout: float) -> None:
    """Raises SyncError when the command cannot start, exits non-zero or outlives ``timeout`` seconds."""
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise SyncError(f"reload command {argv[0]!r} was not found") from exc
    except PermissionError as exc:
        raise SyncError(f"reload command {argv[0]!r} is not executable: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise SyncError(f"reload command {shlex.join(argv)!r} did not finish within {timeout:g} s") from exc
    if result.returncode != 0:
        output = (result.stderr.strip() or result.stdout.strip()).splitlines()
        detail = f": {output[-1][:200]}" if output else ""
        raise SyncError(f"reload command {shlex.join(argv)!r} exited with {result.returncode}{detail}")
