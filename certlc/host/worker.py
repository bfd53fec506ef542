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
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
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
PROBE_EVERY_MINUTES = 60.0  # as the app's sweep: the target check for this machine's endpoints
HISTORY_AT_EXIT_SECONDS = 5.0  # a worker stopping past its grace sends the buffered renewal history this long at most


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
        "--probe-every",
        type=_minutes,
        default=PROBE_EVERY_MINUTES,
        metavar="MINUTES",
        help="with CERTLC_PROBER_NAME set: run the target check for the endpoints CERTLC_PROBER gives this machine "
        f"(those only it reaches) at start and every MINUTES; 0 never (default {PROBE_EVERY_MINUTES:g}). "
        "With --drain: once, after the queue",
    )
    parser.add_argument(
        "--grace",
        type=_seconds,
        default=STOP_GRACE,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT: how long renewals in flight may take to finish; the messages of those that do not "
        f"go back to the queue (default {STOP_GRACE:g})",
    )


def _minutes(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a number of minutes (0 or more)")
    return value


def _check_targets() -> None:
    """The app's target check, for this machine's endpoints (``renewal.targets``; it logs its own outcome)."""
    from renewal import handlers

    handlers.check_targets_after_sweep(handlers.runtime())


def _prober_name() -> str:
    """This machine's name in ``CERTLC_PROBER``, from the settings the host applied (none: the worker only drains)."""
    return (os.environ.get("CERTLC_PROBER_NAME") or "").strip()


@contextlib.contextmanager
def _probing(every_minutes: float) -> Iterator[None]:
    """While the worker serves: the target check at start and every ``every_minutes``, on a thread of its own, when
    this machine is a named prober; stopped with the worker."""
    if every_minutes <= 0 or not _prober_name():
        yield
        return
    stop = threading.Event()

    def loop() -> None:
        while True:
            _check_targets()
            if stop.wait(every_minutes * 60):
                return

    thread = threading.Thread(target=loop, name="certlc-probe", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()


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
            if args.probe_every > 0 and _prober_name():
                _check_targets()
            return 0
        with _probing(args.probe_every):
            if not serve_until_signal(host, grace=args.grace, reload=reload):
                _exit_leaving_invocations()
        return 0

    return run_command("worker", args, build, serve)


def _exit_leaving_invocations() -> None:
    """Exit 0 now: the interpreter would otherwise wait for the invocations still running on their threads. Their
    messages were handed back to the queue, and the per-certificate lock they hold lapses with its lease. The renewal
    history buffered so far is sent first, for a few seconds at most (``os._exit`` skips the exit flush)."""
    from renewal.audit import flush_sinks

    sending = threading.Thread(target=flush_sinks, name="history-at-exit", daemon=True)
    sending.start()
    sending.join(HISTORY_AT_EXIT_SECONDS)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
