"""Ctrl-C during `certlc demo` stops every process it started, then exits 130 with one line saying so.

Interrupted while Azurite starts (a server not yet handed to the code that stops it: it used to be left running,
reparented to pid 1) and once the stack runs. The signal goes to the demo's process alone, not to its process group
as a terminal's Ctrl-C does, so no server stops on its own signal: the demo must stop each one.

What it started: every process seen below it while it ran, and any process carrying this run's mark in its
environment (inherited by whatever it starts) or the run's folder on its command line.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli import REPO
from tests.environment import without_certlc_settings

pytestmark = pytest.mark.timeout(240)

MARK = "CERTLC_DEMO_INTERRUPT_TEST"
DEADLINE = 120.0  # seconds for the moment to come, and again for the demo to exit
GONE_WITHIN = 5.0  # seconds for what it stopped to leave the process table after it exited


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    started: str  # clock ticks after boot: with the pid, names one process even once the pid is reused
    zombie: bool
    command: str
    marked: bool  # this run's mark is in its environment


def _processes(mark: bytes) -> dict[int, Process]:
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        try:
            marked = mark in (entry / "environ").read_bytes().split(b"\0")
        except OSError:  # another user's
            marked = False
        fields = stat.rpartition(")")[2].split()  # after the command's name, which may hold spaces
        pid = int(entry.name)
        found[pid] = Process(pid, int(fields[1]), fields[19], fields[0] == "Z", command, marked)
    return found


def _below(root: int, table: dict[int, Process]) -> set[Process]:
    children: dict[int, list[Process]] = {}
    for process in table.values():
        children.setdefault(process.ppid, []).append(process)
    seen, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            seen.add(child)
            todo.append(child.pid)
    return seen


def _survivors(started: set[Process], mark: bytes, folder: Path, own: int) -> list[Process]:
    table = _processes(mark)
    ours = {p for p in table.values() if p.marked or str(folder) in p.command} - {table.get(own)}
    alive = {p for p in started if table.get(p.pid) == p} | ours
    return sorted((p for p in alive if not p.zombie), key=lambda p: p.pid)


def _azurite_starting(folder: Path, below: set[Process]) -> bool:
    return any("azurite" in p.command for p in below)


def _stack_running(folder: Path, below: set[Process]) -> bool:
    return (folder / "audit.jsonl").exists()  # the stack is up and has renewed or synced something


@pytest.mark.parametrize("moment", [_azurite_starting, _stack_running], ids=["azurite-starting", "stack-running"])
def test_ctrl_c_stops_everything_the_demo_started(
    tmp_path: Path, azurite: object, moment: Callable[[Path, set[Process]], bool]
) -> None:
    folder, token = tmp_path / "demo", secrets.token_hex(8)
    mark = f"{MARK}={token}".encode()
    demo = subprocess.Popen(
        [sys.executable, "-m", "certlc", "demo", "--dir", str(folder)],
        cwd=REPO,
        env=without_certlc_settings() | {MARK: token},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a group of its own: nothing here signals it but the test
    )
    started: set[Process] = set()
    try:
        deadline = time.monotonic() + DEADLINE
        while demo.poll() is None and time.monotonic() < deadline:
            below = _below(demo.pid, _processes(mark))
            started |= below
            if moment(folder, below):
                break
            time.sleep(0.02)
        assert demo.poll() is None, f"the demo ended before the moment came: {demo.communicate()}"
        assert time.monotonic() < deadline, f"no {moment.__name__} within {DEADLINE:g} s"
        assert any("azurite" in p.command for p in started), started

        os.kill(demo.pid, signal.SIGINT)  # the process alone: its servers get no signal of their own
        out, err = demo.communicate(timeout=DEADLINE)

        assert demo.returncode == 130, out + err
        assert err.count("\n") == 1 and err.startswith("certlc demo: interrupted"), err
        gone_by = time.monotonic() + GONE_WITHIN
        while (left := _survivors(started, mark, tmp_path, os.getpid())) and time.monotonic() < gone_by:
            time.sleep(0.1)
        assert left == [], "\n".join(f"{p.pid}: {p.command}" for p in left)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
        for process in _survivors(started, mark, tmp_path, os.getpid()):  # never leak them into the session
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
