"""A small Azure Functions host that runs a FunctionApp's own functions (``certlc dev``, ``certlc worker``).

Core Tools cannot run here, so this host indexes the app exactly as deployed, holds it to the Python
worker's load rules, and builds every trigger value and output with ``azure.functions``' own converters
(``bindings``, ``workerrules``). Only transport and scheduling are its own: the Event Grid webhook with
its handshakes, queue polling per ``host.json``, and NCRONTAB timers. App settings come from a mapping
(``local.settings.json`` ``Values`` in ``certlc dev``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Collection, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions.meta import Datum

from certlc.commands.common import sdk_logging
from certlc.host import workerrules
from certlc.host.bindings import BindingError, HostedFunction, Invoker, hosted_functions
from certlc.host.eventgrid import EventGridWebhook
from certlc.host.queue_poller import QueueOptions, QueuePoller, raw_queue_pair
from certlc.host.timers import TimerRunner
from renewal.signals import wait_for_signal

log = logging.getLogger("certlc.host")

EVENTGRID, QUEUE, TIMER = "eventGridTrigger", "queueTrigger", "timerTrigger"
ALL_TRIGGERS = frozenset({EVENTGRID, QUEUE, TIMER})
DEFAULT_PORT = 7071  # the port Core Tools uses
DRAIN_POLL_INTERVAL = 0.02


class FunctionsHost:
    """Runs the functions of ``app``; use as a context manager or ``start()``/``stop()``.

    ``triggers`` limits which functions are hosted (the on-premises worker hosts queue triggers only; default:
    all, and a trigger the host cannot run is an error);
    ``schedule_timers=False`` keeps timers callable through ``trigger_timer`` without scheduling them.
    """

    def __init__(
        self,
        app: func.FunctionApp,
        env: Mapping[str, str],
        host_json: Path,
        *,
        port: int = 0,
        triggers: Collection[str] | None = None,
        schedule_timers: bool = True,
        max_polling_interval: float | None = None,
    ) -> None:
        self._env = dict(env)
        self.functions = hosted_functions(app, self._env, triggers)
        unsupported = {f.name: f.trigger_type for f in self.functions.values() if f.trigger_type not in ALL_TRIGGERS}
        if unsupported:
            raise BindingError(f"the local host does not support these triggers: {unsupported}")
        options = QueueOptions.from_host_json(host_json)
        self._invoker = Invoker(self._env, options.message_encoding)
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

    def _dispatch_event(self, function_name: str, event: Any) -> None:
        """One delivered event, sent to the worker as the host does: its JSON, one invocation per event."""
        self._invoker.invoke(self.functions[function_name], Datum(type="json", value=json.dumps(event)), {})

    def _ensure_queues(self) -> None:
        if not self._queues_ready:
            for poller in self._pollers:
                poller.ensure_queues()
            self._queues_ready = True

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=target, args=(self._stop,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _start_triggering(self) -> None:
        self._stop.clear()
        for poller in self._pollers:
            run_poller = partial(poller.run, max_polling_interval=self._max_polling_interval)
            self._spawn(f"poll-{poller.queue_name}", run_poller)
        if self._schedule_timers:
            for name, timer in self._timers.items():
                self._spawn(f"timer-{name}", timer.run)

    def _stop_triggering(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    @property
    def queue_names(self) -> list[str]:
        return [poller.queue_name for poller in self._pollers]

    @property
    def queue_urls(self) -> list[str]:
        return [poller.queue_url for poller in self._pollers]

    def start(self) -> FunctionsHost:
        """Create the queues, open the webhook, start polling and the timers; a failure undoes what started."""
        try:
            self._ensure_queues()
            if self._webhook:
                self._webhook.start()
            self._start_triggering()
        except BaseException:
            self.stop()
            raise
        log.info("Host started: %s", ", ".join(f"{f.name} ({f.trigger_type})" for f in self.functions.values()))
        return self

    def stop(self, grace: float | None = None) -> bool:
        """Stop triggering and close the webhook port, then wait for the invocations in flight; True once all finished.

        With ``grace``, queue invocations still running after that many seconds are abandoned: their messages are
        handed back to the queue (never deleted, retried or poisoned by them) and False is returned; the caller
        exits the process. Also releases a host that was never started (its webhook port is bound on construction).
        """
        self._stop.set()
        if self._webhook:
            self._webhook.stop()
        self._stop_triggering()
        if not self.wait_idle(grace):
            handed_back = sum(poller.hand_back() for poller in self._pollers)
            log.warning("Still running after %gs: %d queue message(s) handed back to their queue", grace, handed_back)
            return False
        for poller in self._pollers:
            poller.close()
        return True

    def pause(self) -> None:
        """Stop taking queue messages and firing timers; invocations in flight go on (``wait_idle``), ``resume``."""
        self._stop_triggering()

    def resume(self) -> None:
        self._start_triggering()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no invocation runs and every leased message is settled; False if not within ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        return all(poller.wait_settled(left()) for poller in self._pollers) and self._invoker.wait_idle(left())

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
            if not leased:  # another thread holds the work: ask again shortly
                time.sleep(DRAIN_POLL_INTERVAL)


def load_app(script_root: Path) -> func.FunctionApp:
    """Import ``function_app.py`` from ``script_root`` and return its FunctionApp, as the Python worker does."""
    try:
        return workerrules.import_app(script_root)
    except FileNotFoundError as exc:
        raise ValueError(f"{exc}; pass --script-root") from None
    except ImportError as exc:
        raise ValueError(str(exc)) from None


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--settings",
        default=argparse.SUPPRESS,
        help="a Functions local.settings.json whose Values become app settings (environment variables win; "
        "default: ./local.settings.json if present)",
    )
    parser.add_argument(
        "--script-root",
        type=Path,
        default=None,
        help="folder with function_app.py and host.json (default: the current folder if it has one, else the "
        "folder certlc was installed from)",
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


def script_root(given: Path | None) -> Path:
    """``--script-root``, else the current folder as ``func start`` has it, else certlc's own app (any folder)."""
    if given is not None:
        return given
    here = Path(".")
    return here if (here / "function_app.py").is_file() else Path(__file__).resolve().parents[2]


def prepare(args: argparse.Namespace) -> tuple[func.FunctionApp, dict[str, str]]:
    """App and app settings for a host started from the command line; the settings also go to ``os.environ``.

    ``certlc`` puts the settings in ``args.env``; called on its own, ``--settings`` is read here.
    """
    env = getattr(args, "env", None)
    if env is None:
        from certlc.cli import load_settings

        env = load_settings(getattr(args, "settings", None))
    os.environ.update(env)  # the functions read their settings from the process environment
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sdk_logging(debug=getattr(args, "debug", False))
    root = logging.getLogger()
    root.addFilter(_not_http_auth_level)
    try:
        return load_app(script_root(args.script_root)), dict(env)
    finally:
        root.removeFilter(_not_http_auth_level)


def _not_http_auth_level(record: logging.LogRecord) -> bool:
    """azure.functions warns, while indexing, that an app without HTTP functions has no auth level to apply: true
    of every app this host runs (it runs no HTTP trigger), and a line before the host's own."""
    return not str(record.msg).startswith("Auth level is not applied to non http function app")


def quiet_http_logging() -> None:
    """The SDKs log every HTTP request and its headers at INFO: hundreds of lines an idle minute, which drown
    the functions' own lines (and fill a pipe nobody reads). Their warnings and errors still show."""
    sdk_logging()


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
RELOAD_SIGNAL = getattr(signal, "SIGHUP", None)  # POSIX only
RELOAD_POLL_INTERVAL = 0.1


def serve_until_signal(
    host: FunctionsHost, *, grace: float | None = None, reload: Callable[[], FunctionsHost] | None = None
) -> bool:
    """Run ``host`` in the foreground until SIGINT or SIGTERM, then stop it (``FunctionsHost.stop(grace)``).

    With ``reload``, SIGHUP swaps in the started host it returns, between messages (``_reloaded``). The handlers
    only record the signal; this thread acts. Returns False when invocations were abandoned after ``grace``.
    """
    asked: set[int] = set()
    wake = threading.Event()

    def record(signum: int, _frame: object) -> None:
        asked.add(signum)
        wake.set()

    def stopping() -> bool:
        return not asked.isdisjoint(STOP_SIGNALS)

    handled = [*STOP_SIGNALS, *([RELOAD_SIGNAL] if reload and RELOAD_SIGNAL is not None else [])]
    previous = {sig: signal.signal(sig, record) for sig in handled}
    try:
        host.start()
        while not stopping():
            wait_for_signal(wake)
            wake.clear()
            if reload and RELOAD_SIGNAL in asked and not stopping():
                asked.discard(RELOAD_SIGNAL)
                host = _reloaded(host, reload, stopping)
        host.pause()
        log.info(
            "Stopping: no new messages; waiting for invocations in flight%s",
            "" if grace is None else f" (up to {grace:g}s)",
        )
        return host.stop(grace)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _reloaded(host: FunctionsHost, reload: Callable[[], FunctionsHost], stopping: Callable[[], bool]) -> FunctionsHost:
    """The host serving after SIGHUP: ``host`` stops taking messages and the ones running finish under the settings
    they began with; then ``reload`` builds and starts the new host. A reload that fails (a typo in the settings
    file, a service that does not answer) is one line, and ``host`` goes on with the previous settings."""
    host.pause()
    log.info("Reloading the settings: no new messages until the invocations running finish")
    while not host.wait_idle(RELOAD_POLL_INTERVAL):
        if stopping():  # a stop asked for meanwhile wins: the paused host stops as usual
            return host
    try:
        new = reload()
    except Exception as exc:
        log.warning("settings not reloaded, keeping the previous ones: %s", _first_line(exc))
        host.resume()
        return host
    host.stop()
    log.info("settings reloaded")
    return new


def run_command(
    command: str,
    args: argparse.Namespace,
    build: Callable[[func.FunctionApp, dict[str, str]], FunctionsHost],
    serve: Callable[[FunctionsHost, Callable[[], FunctionsHost]], int],
) -> int:
    """Build a host from the command line and serve it; setup and storage errors become one line and an exit code.

    Before any message is taken, every setting is checked by building the functions' runtime once (with the
    default CA adapter) and every queue and service is dialled with a short deadline: a broken setting is
    exit 2, a service that does not answer exit 1, and nothing is taken from the queue either way. ``serve`` also
    gets a ``reload`` that reads the settings again and returns a started host checked the same way."""
    from azure.core.exceptions import AzureError

    from certlc.cli import StackNotRunning, UserError
    from certlc.commands.common import Unreachable

    environ_at_start = dict(os.environ)
    timeout = getattr(args, "timeout", None)
    try:
        app, env = prepare(args)
        host, runtime = _checked_host(app, env, build, timeout)
        _use_runtime(runtime)
        return serve(host, partial(_reload, args, app, build, environ_at_start))
    except (BindingError, ValueError, OSError, UserError) as exc:
        print(f"certlc {command}: {_first_line(exc)}", file=sys.stderr)
        return 2
    except (AzureError, TimeoutError, Unreachable, StackNotRunning) as exc:
        print(f"certlc {command}: {_first_line(exc)}", file=sys.stderr)
        return 1


def _checked_host(
    app: func.FunctionApp,
    env: dict[str, str],
    build: Callable[[func.FunctionApp, dict[str, str]], FunctionsHost],
    timeout: float | None,
) -> tuple[FunctionsHost, Any]:
    """A host on ``env`` whose settings were checked and services dialled, and the renewal runtime its functions
    will share (None for an app without certlc's renewal functions). Nothing is started."""
    from certlc.commands.common import checked_runtime

    host = build(app, env)
    try:
        runtime = checked_runtime(env, timeout=_reach_timeout(timeout)) if _runs_renewals(host) else None
        _check_queues(host, timeout)
    except BaseException:
        host.stop()
        raise
    return host, runtime


def _use_runtime(runtime: Any) -> None:
    """A runtime built now, not on the first invocation: a ConfigError is a host that refuses to start (or a
    refused reload), not one that fails every invocation and moves waiting renewals to poison."""
    if runtime is not None:
        from renewal import handlers

        handlers.reset_runtime(runtime)


def _reload(
    args: argparse.Namespace,
    app: func.FunctionApp,
    build: Callable[[func.FunctionApp, dict[str, str]], FunctionsHost],
    environ_at_start: Mapping[str, str],
) -> FunctionsHost:
    """A started host on the settings read again as at start: the settings file under the process's own
    environment (which still wins). Called with nothing running; on any error the environment is put back."""
    from certlc.cli import load_settings

    previous = dict(os.environ)
    try:
        _replace_environ(environ_at_start)
        env = load_settings(getattr(args, "settings", None))
        _replace_environ(env)  # the functions and the SDKs' credentials read the process environment
        host, runtime = _checked_host(app, env, build, getattr(args, "timeout", None))
        host.start()
    except BaseException:
        _replace_environ(previous)
        raise
    _use_runtime(runtime)
    return host


def _replace_environ(values: Mapping[str, str]) -> None:
    for key in set(os.environ) - set(values):
        del os.environ[key]
    os.environ.update(values)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _reach_timeout(timeout: float | None) -> float:
    from certlc.commands.common import REACH_TIMEOUT_SECONDS

    return min(REACH_TIMEOUT_SECONDS, timeout) if timeout else REACH_TIMEOUT_SECONDS


def _runs_renewals(host: FunctionsHost) -> bool:
    """Whether the host runs certlc's renewal functions (it runs any app)."""
    return any(f.loaded.user_function.__module__.startswith("renewal.") for f in host.functions.values())


def _check_queues(host: FunctionsHost, timeout: float | None) -> None:
    """The host's own trigger queues (their connection may differ from the functions' one)."""
    from certlc.commands.common import Endpoint, require_reachable

    require_reachable(
        [Endpoint(f"queue {url.rsplit('/', 1)[-1]}", url, "the trigger's connection") for url in host.queue_urls],
        _reach_timeout(timeout),
    )


def _serve_dev(host: FunctionsHost, _reload: Callable[[], FunctionsHost]) -> int:
    for name, function in host.functions.items():
        where = host.eventgrid_url(name) if function.trigger_type == EVENTGRID else function.trigger_type
        print(f"  {name}: {where}", flush=True)
    serve_until_signal(host)
    return 0


def run(args: argparse.Namespace) -> int:
    """``certlc dev``: host every function of function_app.py until SIGINT/SIGTERM."""

    def build(app: func.FunctionApp, env: dict[str, str]) -> FunctionsHost:
        return FunctionsHost(
            app,
            env,
            script_root(args.script_root) / "host.json",
            port=args.port,
            schedule_timers=not args.no_timers,
            max_polling_interval=args.max_polling_interval,
        )

    return run_command("dev", args, build, _serve_dev)
