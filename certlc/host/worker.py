"""``certlc worker``: the renewal queue drained on-premises, next to a CA only the corporate network reaches.

It runs only the queue-triggered functions of function_app.py, with the local host's queue poller and
``host.json`` semantics, against the real Azure queue over outbound HTTPS. The connection is identity-based
(``<Conn>__queueServiceUri`` with ``DefaultAzureCredential``) or a connection string in ``<Conn>``.

As a service (``deploy/systemd``, ``docs/worker.md``): SIGTERM (or SIGINT) stops taking messages and gives the
renewals running ``--grace`` seconds to finish; the messages of those that do not are handed back to the queue,
never deleted, and the process exits 0. SIGHUP reads the settings again and applies them between messages.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import azure.functions as func

from certlc.host.host import (
    QUEUE,
    FunctionsHost,
    add_common_arguments,
    run_command,
    script_root,
    serve_until_signal,
)

DRAIN_TIMEOUT = 3600.0
STOP_GRACE = 60.0  # below the unit's TimeoutStopSec, so systemd never has to kill a renewal


def build_worker(
    app: func.FunctionApp, env: dict[str, str], host_json: Path, max_polling_interval: float | None = None
) -> FunctionsHost:
    """A host with the app's queue-triggered functions only (no webhook, no timers)."""
    host = FunctionsHost(app, env, host_json, triggers={QUEUE}, max_polling_interval=max_polling_interval)
    if not host.queue_names:
        raise ValueError("function_app.py has no queue-triggered function for a worker to run")
    return host


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument(
        "--drain",
        action="store_true",
        help="process the messages visible now, then exit (for a scheduled task) instead of polling until stopped",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DRAIN_TIMEOUT,
        metavar="SECONDS",
        help=f"with --drain: give up (exit 1) after this long (default {DRAIN_TIMEOUT:g})",
    )
    parser.add_argument(
        "--grace",
        type=_seconds,
        default=STOP_GRACE,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT: how long renewals in flight may take to finish; the messages of those that do not "
        f"go back to the queue (default {STOP_GRACE:g})",
    )


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds (0 or more)")
    return value


def run(args: argparse.Namespace) -> int:
    """Poll the queue(s) until SIGINT/SIGTERM (SIGHUP reloads the settings), or once through with ``--drain``."""

    def build(app: func.FunctionApp, env: dict[str, str]) -> FunctionsHost:
        return build_worker(app, env, script_root(args.script_root) / "host.json", args.max_polling_interval)

    def serve(host: FunctionsHost, reload: Callable[[], FunctionsHost]) -> int:
        print(f"certlc worker: polling {', '.join(host.queue_urls)}", flush=True)
        if args.drain:
            print(f"certlc worker: processed {host.drain(args.timeout)} message(s)", flush=True)
            return 0
        if not serve_until_signal(host, grace=args.grace, reload=reload):
            _exit_leaving_invocations()
        return 0

    return run_command("worker", args, build, serve)


def _exit_leaving_invocations() -> None:
    """Exit 0 now: the interpreter would otherwise wait for the invocations still running on their threads. Their
    messages were handed back to the queue, and the per-certificate lock they hold lapses with its lease."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
