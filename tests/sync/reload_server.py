"""The reload command in the sync tests: logs the call, then SIGHUPs the server.

Usage: python reload_server.py PID CALL_LOG FAIL_MARKER; while FAIL_MARKER exists the call removes it
and fails instead (a config test that rejects the new files once).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path


def main(pid: int, call_log: Path, fail_marker: Path) -> int:
    with call_log.open("a") as log:
        log.write("reload\n")
    if fail_marker.exists():
        fail_marker.unlink()
        print("config test failed: the new certificate was rejected", file=sys.stderr)
        return 1
    os.kill(pid, signal.SIGHUP)
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
