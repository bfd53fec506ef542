"""``certlc emulator logs``: run the local Logs Ingestion API until interrupted."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from certlc.stack_files import DEFAULT_DIR as DEFAULT_STATE_DIR  # where `certlc local up` keeps its state
from renewal.signals import wait_for_signal


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="where rows, CA and settings live")
    parser.add_argument("--template", type=Path, default=None, help="ARM template with the DCR (infra/monitoring.json)")
    parser.add_argument("--port", type=int, default=0, help="loopback port (default: a free one)")
    parser.add_argument(
        "--token", default=None, help="bearer token to accept (default: generated, kept in the state dir)"
    )


def run(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    from localazure.emulators.logs import start

    emulator = start(args.state_dir, args.template, port=args.port, token=args.token)
    print(f"Logs Ingestion emulator on {emulator.endpoint}; rows in {emulator.rows_path}")
    print("App settings for ingestion:")
    for name, value in emulator.settings().items():
        shown = "(in " + str(Path(args.state_dir) / "logs" / "dcr.json") + ")" if name == "CERTLC_LOGS_TOKEN" else value
        print(f"  {name}={shown}")
    try:
        wait_for_signal(stop or threading.Event())
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0
