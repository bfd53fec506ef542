"""One server process: started with its output in a log file, polled until ready, stopped cleanly."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from localazure.ports import poll_until

T = TypeVar("T")
STOP_GRACE_SECONDS = 5.0
START_ATTEMPTS = 3


class ServerStartError(RuntimeError):
    """A server did not come up; the message carries the end of its log."""


class AddressInUse(ServerStartError):
    """The port chosen was taken between picking it and binding it; starting again helps."""


class ManagedProcess:
    """A child process whose stdout/stderr go to ``log_path``."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log:
            self._popen = subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
            )

    @property
    def pid(self) -> int:
        return self._popen.pid

    def running(self) -> bool:
        return self._popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, probe: Callable[[], bool], timeout: float = 30.0) -> None:
        """Polls ``probe`` until true; fails fast (with the log) if the process exits first. Stopped on any failure,
        Ctrl-C included: the caller never gets a handle to stop it with (a leaked Azurite under pid 1)."""

        def ready() -> bool:
            if not self.running():
                tail = self.log_tail()
                error = AddressInUse if "address already in use" in tail.lower() else ServerStartError
                raise error(
                    f"{self.name} exited with code {self._popen.returncode} before it was ready "
                    f"(log {self.log_path}):\n{tail}"
                )
            return probe()

        try:
            poll_until(ready, timeout=timeout, what=f"{self.name} readiness")
        except TimeoutError as exc:
            self.stop()
            raise ServerStartError(f"{exc} (log {self.log_path}):\n{self.log_tail()}") from exc
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Terminate, wait, then kill if it does not go."""
        if self._popen.poll() is not None:
            return
        self._popen.terminate()
        try:
            self._popen.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            self._popen.wait()


def start_with_retry(start: Callable[[], T], attempts: int = START_ATTEMPTS) -> T:
    """Runs ``start`` again (it picks new ports) when a port was taken under it."""
    for _ in range(attempts - 1):
        try:
            return start()
        except AddressInUse:
            continue
    return start()
