"""``certlc sync``: keep a server's PEM files in step with a Key Vault certificate."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from certlc.sync.agent import RoundResult, SyncConfig

EPILOG = """\
Key Vault access: managed identity (DefaultAzureCredential); the vault must be listed in CERTLC_VAULTS.
Exit codes: 0 up to date or updated, 1 rolled back or failed, 2 a mistake to fix (vault not allowed,
unknown certificate, a folder that cannot be written)."""


def _positive(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number of seconds")
    return number


def _non_negative(value: str) -> float:
    number = float(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--vault", required=True, help="vault name (must be in CERTLC_VAULTS)")
    parser.add_argument("--name", required=True, help="certificate name in Key Vault")
    parser.add_argument("--cert", required=True, type=Path, help="leaf certificate PEM file (0644)")
    parser.add_argument("--key", required=True, type=Path, help="private key PEM file, PKCS#8 (0600)")
    parser.add_argument("--chain", type=Path, help="intermediate certificates PEM file (0644)")
    parser.add_argument("--fullchain", type=Path, help="leaf + intermediates PEM file (0644)")
    parser.add_argument("--reload", metavar="CMD", help="command that makes the server re-read its files (no shell)")
    parser.add_argument("--reload-timeout", type=_positive, default=60.0, metavar="S", help="default 60")
    parser.add_argument("--verify", metavar="HOST:PORT", help="TLS endpoint that must serve the new certificate")
    parser.add_argument("--verify-sni", metavar="NAME", help="server name to send when verifying (default HOST)")
    parser.add_argument("--verify-timeout", type=_positive, default=30.0, metavar="S", help="default 30")
    parser.add_argument("--daemon", action="store_true", help="keep running: one round every --interval")
    parser.add_argument("--interval", type=_positive, default=3600.0, metavar="S", help="default 3600")
    parser.add_argument("--jitter", type=_non_negative, default=300.0, metavar="S", help="up to S more; default 300")


def _config(args: argparse.Namespace) -> SyncConfig:
    from certlc.sync.agent import SyncConfig
    from certlc.sync.fetch import resolve_vault
    from certlc.sync.files import Targets, check_writable
    from certlc.sync.reload import parse_command
    from certlc.sync.verify import parse_endpoint
    from renewal.audit import audit_from_env

    targets = Targets(cert=args.cert, key=args.key, chain=args.chain, fullchain=args.fullchain)
    check_writable(targets)
    return SyncConfig(
        vault=resolve_vault(args.vault, args.name, args.env),
        name=args.name,
        targets=targets,
        env=args.env,
        reload=parse_command(args.reload) if args.reload is not None else None,
        reload_timeout=args.reload_timeout,
        verify=parse_endpoint(args.verify, args.verify_sni) if args.verify else None,
        verify_timeout=args.verify_timeout,
        audit=audit_from_env(args.env),
    )


def _reporter(as_json: bool) -> Callable[[RoundResult], None]:
    def report(result: RoundResult) -> None:
        if as_json:
            line = json.dumps(
                {
                    "vault": result.vault,
                    "name": result.name,
                    "version": result.version,
                    "thumbprint": result.thumbprint,
                    "action": result.action,
                    "reason": result.reason,
                }
            )
        else:
            where = f"{result.vault}/{result.name}" + (f" {result.version}" if result.version else "")
            line = f"{where}: {result.action.replace('_', ' ')}: {result.reason}"
        print(line, flush=True)

    return report


@contextlib.contextmanager
def _progress_to_stderr() -> Iterator[None]:
    """The agent's own progress lines on this run's stderr; the SDKs keep their default (warnings only)."""
    log = logging.getLogger("certlc.sync")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)


def run(args: argparse.Namespace) -> int:
    from certlc.sync.agent import sync_once
    from certlc.sync.loop import run_daemon

    config = _config(args)
    report = _reporter(args.output == "json")  # -o json (or --json): one JSON line per round
    with _progress_to_stderr():
        if not args.daemon:
            result = sync_once(config)
            report(result)
            return 0 if result.ok else 1
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        run_daemon(config, report, stop, args.interval, args.jitter)
    return 0
