"""A small Azure Functions host that runs a FunctionApp's own functions (``certlc dev``).

Core Tools cannot run here, so this host indexes the app exactly as deployed and gives its triggers the
real host's semantics: the Event Grid webhook with its handshakes, queue polling per ``host.json``, and
NCRONTAB timers. App settings come from a mapping (``local.settings.json`` ``Values`` in ``certlc dev``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Collection, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import azure.functions as func

from certlc.localstack.bindings import BindingError, HostedFunction, Invoker, hosted_functions
from certlc.localstack.eventgrid import EventGridWebhook
from certlc.localstack.queue_poller import QueueOptions, QueuePoller, raw_queue_pair
from certlc.localstack.timers import TimerRunner

log = logging.getLogger("certlc.host")

EVENTGRID, QUEUE, TIMER = "eventGridTrigger", "queueTrigger", "timerTrigger"
ALL_TRIGGERS = frozenset({EVENTGRID, QUEUE, TIMER})
DEFAULT_PORT = 7071  # the port Core Tools uses


class FunctionsHost:
    """Runs the functions of ``app``; use as a context manager or ``start()``/``stop()``.

    ``triggers`` limits which functions are hosted (the on-premises worker hosts queue triggers only);
    ``schedule_timers=False`` keeps timers callable through ``trigger_timer`` without scheduling them.
    """

    def __init__(
        self,
        app: func.FunctionApp,
        env: Mapping[str, str],
        host_json: Path,
        *,
        port: int = 0,
        triggers: Collection[str] = ALL_TRIGGERS,
        schedule_timers: bool = True,
        max_polling_interval: float | None = None,
    ) -> None:
        self._env = dict(env)
        self.functions = hosted_functions(app, self._env, triggers)
        unsupported = {f.name: f.trigger_type for f in self.functions.values() if f.trigger_type not in ALL_TRIGGERS}
        if unsupported:
            raise BindingError(f"the local host does not support these triggers: {unsupported}")
        options = QueueOptions.from_host_json(host_json)
        self._invoker = Invoker(self._env)
        self._pollers = [
            QueuePoller(
                *raw_queue_pair(self._env, f.trigger.get("connection", ""), f.trigger["queueName"]),
                handler=partial(self._invoker.invoke, f),
                options=options,
            )
            for f in self._of_type(QUEUE)
        ]
        self._timers = {f.name: TimerRunner(f, self._invoker.invoke) for f in self._of_type(TIMER)}
        eventgrid = frozenset(f.name for f in self._of_type(EVENTGRID))
        self._webhook = EventGridWebhook(eventgrid, self._dispatch_event, port) if eventgrid else None
        self._schedule_timers = schedule_timers
        self._max_polling_interval = max_polling_interval
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._queues_ready = False

    def _of_type(self, trigger_type: str) -> list[HostedFunction]:
        return [f for f in self.functions.values() if f.trigger_type == trigger_type]

    def _dispatch_event(self, function_name: str, event: func.EventGridEvent) -> None:
        self._invoker.invoke(self.functions[function_name], event)

    def _ensure_queues(self) -> None:
        if not self._queues_ready:
            for poller in self._pollers:
                poller.ensure_queues()
            self._queues_ready = True

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=target, args=(self._stop,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    @property
    def queue_names(self) -> list[str]:
        return [poller.queue_name for poller in self._pollers]

    def start(self) -> FunctionsHost:
        self._ensure_queues()
        if self._webhook:
            self._webhook.start()
        for poller in self._pollers:
            self._spawn(
                f"poll-{poller.queue_name}", partial(poller.run, max_polling_interval=self._max_polling_interval)
            )
        if self._schedule_timers:
            for name, timer in self._timers.items():
                self._spawn(f"timer-{name}", timer.run)
        log.info("Host started: %s", ", ".join(f"{f.name} ({f.trigger_type})" for f in self.functions.values()))
        return self

    def stop(self) -> None:
        """Stop triggering; returns once every invocation in flight has finished."""
        self._stop.set()
        if self._webhook:
            self._webhook.stop()
        for thread in self._threads:
            thread.join()
        for poller in self._pollers:
            poller.close()
        self._invoker.wait_idle()

    def __enter__(self) -> FunctionsHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def eventgrid_url(self, function_name: str) -> str:
        function = self.functions.get(function_name)
        if function is None or function.trigger_type != EVENTGRID or self._webhook is None:
            raise KeyError(f"{function_name!r} is not an Event Grid triggered function of this host")
        return self._webhook.url(function_name)

    def trigger_timer(self, function_name: str) -> None:
        """Run a timer function now, in this thread; its exception propagates."""
        timer = self._timers.get(function_name)
        if timer is None:
            raise KeyError(f"{function_name!r} is not a timer triggered function of this host")
        timer.fire(past_due=False)

    def _idle(self) -> bool:
        return (
            self._invoker.running == 0
            and not any(poller.busy for poller in self._pollers)
            and not any(poller.has_visible_messages() for poller in self._pollers)
        )

    def drain(self, timeout: float) -> int:
        """Process queue messages until none is visible and nothing runs; returns messages processed.

        Messages made invisible by a failure (``visibilityTimeout``) or sent with a delay are not waited for.
        """
        self._ensure_queues()
        deadline = time.monotonic() + timeout
        before = sum(poller.processed for poller in self._pollers)
        while True:
            leased = sum(poller.poll_once() for poller in self._pollers)
            if not leased and self._idle():
                return sum(poller.processed for poller in self._pollers) - before
            if time.monotonic() > deadline:
                raise TimeoutError(f"queues {self.queue_names} still busy after {timeout:g}s")
            if not leased:  # another thread holds the work: give it a moment before asking again
                self._stop.wait(0.02)


def load_settings(path: Path) -> dict[str, str]:
    """The ``Values`` of a Functions ``local.settings.json``."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read settings file {path}: {exc}") from None
    values = document.get("Values", {})
    if not isinstance(values, dict):
        raise ValueError(f"{path}: 'Values' must be an object of setting names to strings")
    return {str(key): str(value) for key, value in values.items()}


def settings_env(settings: Path | None) -> dict[str, str]:
    """The environment with the settings file's values under it: a variable already set wins."""
    values = load_settings(settings) if settings else {}
    return {**values, **os.environ}


def load_app(script_root: Path) -> func.FunctionApp:
    """Import ``function_app.py`` from ``script_root`` and return its FunctionApp, as the worker does."""
    root = str(script_root.resolve())
    if not (script_root / "function_app.py").is_file():
        raise ValueError(f"no function_app.py in {root}; pass --script-root")
    if root not in sys.path:
        sys.path.insert(0, root)
    module = importlib.import_module("function_app")
    for value in vars(module).values():
        if isinstance(value, func.FunctionApp):
            return value
    raise ValueError(f"{module.__file__} defines no azure.functions.FunctionApp")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--settings",
        type=Path,
        help="a local.settings.json whose Values become app settings (environment variables win); "
        "default: local.settings.json in the script root, if present",
    )
    parser.add_argument(
        "--script-root", type=Path, default=Path("."), help="folder with function_app.py and host.json (default: .)"
    )
    parser.add_argument(
        "--max-polling-interval",
        type=float,
        metavar="SECONDS",
        help="cap on the empty-queue back-off (default: host.json extensions.queues.maxPollingInterval)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"Event Grid webhook port on 127.0.0.1 (default {DEFAULT_PORT})"
    )
    parser.add_argument("--no-timers", action="store_true", help="do not run timer triggers on their schedules")
    add_common_arguments(parser)


def prepare(args: argparse.Namespace) -> tuple[func.FunctionApp, dict[str, str]]:
    """App and settings for a host started from the command line; settings also go to ``os.environ``."""
    settings = args.settings
    if settings is None and (args.script_root / "local.settings.json").is_file():
        settings = args.script_root / "local.settings.json"
    env = settings_env(settings)
    os.environ.update(env)  # the functions read their settings from the process environment
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return load_app(args.script_root), env


def serve_until_signal(host: FunctionsHost) -> None:
    """Run ``host`` in the foreground until SIGINT or SIGTERM, then stop it gracefully."""
    stopping = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with host:
            stopping.wait()
            log.info("Stopping: waiting for invocations in flight")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(args: argparse.Namespace) -> int:
    """``certlc dev``: host every function of function_app.py until interrupted."""
    try:
        app, env = prepare(args)
        host = FunctionsHost(
            app,
            env,
            args.script_root / "host.json",
            port=args.port,
            schedule_timers=not args.no_timers,
            max_polling_interval=args.max_polling_interval,
        )
    except (BindingError, ValueError, OSError) as exc:
        print(f"certlc dev: {exc}", file=sys.stderr)
        return 2
    for name, function in host.functions.items():
        where = host.eventgrid_url(name) if function.trigger_type == EVENTGRID else function.trigger_type
        print(f"  {name}: {where}")
    serve_until_signal(host)
    return 0
