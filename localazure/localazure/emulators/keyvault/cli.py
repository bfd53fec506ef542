"""``certlc emulator keyvault``: run the Key Vault emulator in the foreground until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from renewal.signals import wait_for_signal

from . import DEFAULT_PENDING_VERSION, PENDING_VERSION_MODES

DEFAULT_STATE = Path(".local") / "keyvault"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port",
        type=int,
        action="append",
        default=None,
        help="listening port, once per vault in --vault order (default: free ports)",
    )
    parser.add_argument(
        "--state", type=Path, default=DEFAULT_STATE, help=f"state folder: keys, certificates, TLS ({DEFAULT_STATE})"
    )
    parser.add_argument(
        "--vault", action="append", default=None, help="vault name; repeat for several vaults (default kv1)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON line with url, ca_bundle, admin_url, token, vaults"
    )
    parser.add_argument(
        "--pending-version",
        choices=PENDING_VERSION_MODES,
        default=DEFAULT_PENDING_VERSION,
        help="what a pending manual create shows as the newest version: a disabled placeholder without a "
        f"certificate, or the previous version until the merge (default {DEFAULT_PENDING_VERSION})",
    )


def run(args: argparse.Namespace) -> int:
    from . import start

    vaults = args.vault or ["kv1"]
    try:
        emulator = start(args.state, vaults=vaults, ports=args.port, pending_version=args.pending_version)
    except (OSError, ValueError) as exc:
        print(f"certlc emulator keyvault: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if args.json:
            print(json.dumps(emulator.describe()), flush=True)
        else:
            for name, url in emulator.vault_urls.items():
                print(f"vault {name}: {url}", flush=True)
            print(f"control API: {emulator.admin_url}\nCA bundle: {emulator.ca_bundle}", flush=True)
            print(f"pending versions: {emulator.pending_version}", flush=True)
            print(f"officer token: {emulator.token}  (Ctrl+C stops)", flush=True)
        wait_for_signal(stop)
    finally:
        emulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="certlc emulator keyvault", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
