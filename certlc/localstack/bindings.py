"""Indexing a FunctionApp and invoking its functions with the Functions host's binding semantics.

The app is indexed with ``get_functions()`` so the local host runs the deployed wiring; a second call on
the same app object raises, hence the per-app cache.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import azure.functions as func

from renewal.queue import ensure_queue

log = logging.getLogger("certlc.host")

DEFAULT_CONNECTION = "AzureWebJobsStorage"
_SETTING = re.compile(r"%([^%]+)%")
_INDEX: weakref.WeakKeyDictionary[func.FunctionApp, list[Any]] = weakref.WeakKeyDictionary()
_INDEX_LOCK = threading.Lock()


class BindingError(ValueError):
    """A binding the host cannot resolve (missing app setting, unsupported binding type)."""


def functions_of(app: func.FunctionApp) -> list[Any]:
    """The app's indexed functions; safe to call any number of times for one app object."""
    with _INDEX_LOCK:
        if app not in _INDEX:
            root = logging.getLogger()
            root.addFilter(_not_http_auth_notice)
            try:
                _INDEX[app] = app.get_functions()
            finally:
                root.removeFilter(_not_http_auth_notice)
        return _INDEX[app]


def _not_http_auth_notice(record: logging.LogRecord) -> bool:
    """azure-functions warns about HTTP auth levels on an app without HTTP triggers: noise, not news."""
    return not record.getMessage().startswith("Auth level is not applied to non http function app")


def resolve(value: str, env: Mapping[str, str], where: str) -> str:
    """Replace ``%SETTING%`` expressions with app settings, as the host does when it loads a function."""

    def setting(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env or env[name] == "":
            raise BindingError(f"{where}: app setting {name} is not set (binding expression %{name}%)")
        return env[name]

    return _SETTING.sub(setting, value)


def connection_queue(env: Mapping[str, str], connection: str, queue_name: str, **codecs: Any) -> Any:
    """A QueueClient on a Functions connection: ``<Conn>`` string or ``<Conn>__queueServiceUri``."""
    from renewal.clients import queue_client

    return queue_client({**env, "CERTLC_QUEUE_CONNECTION": connection or DEFAULT_CONNECTION}, queue_name, **codecs)


class OutBinding(func.Out[Any]):
    """The object a function gets for an output binding; the host sends its value after the call."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


@dataclass(frozen=True)
class QueueOutput:
    name: str
    queue_name: str
    connection: str

    def send(self, value: Any, env: Mapping[str, str]) -> None:
        if value is None:
            return
        items = value if isinstance(value, list | tuple) else [value]
        if not items:
            return
        texts = [_as_text(item, self.name) for item in items]
        client = connection_queue(env, self.connection, self.queue_name)
        from azure.core.exceptions import ResourceNotFoundError

        for text in texts:
            try:
                client.send_message(text)
            except ResourceNotFoundError:  # the host creates an output queue on first use
                ensure_queue(client).send_message(text)


def _as_text(item: Any, binding: str) -> str:
    if isinstance(item, bytes):
        return item.decode("utf-8")
    if isinstance(item, str):
        return item
    if isinstance(item, dict | list):
        return json.dumps(item)
    raise BindingError(f"queue output {binding!r}: cannot send a {type(item).__name__}; set a str or list of str")


@dataclass(frozen=True)
class HostedFunction:
    """One function of the app with its bindings resolved against the app settings."""

    name: str
    trigger_type: str
    trigger_arg: str
    trigger: Mapping[str, Any]
    outputs: tuple[QueueOutput, ...]
    call: Callable[..., Any]


def _resolved_binding(binding: Mapping[str, Any], env: Mapping[str, str], where: str) -> dict[str, Any]:
    return {k: resolve(v, env, where) if isinstance(v, str) else v for k, v in binding.items()}


def _trigger_type(bindings: list[Mapping[str, Any]]) -> str | None:
    return next((b["type"] for b in bindings if b["type"].endswith("Trigger")), None)


def hosted_functions(
    app: func.FunctionApp, env: Mapping[str, str], triggers: Collection[str] | None = None
) -> dict[str, HostedFunction]:
    """Index ``app`` and resolve the bindings of the functions with one of ``triggers`` (default: all).

    Raises ``BindingError`` naming a missing app setting or an unsupported binding.
    """
    hosted: dict[str, HostedFunction] = {}
    for function in functions_of(app):
        name = function.get_function_name()
        bindings = json.loads(function.get_function_json())["bindings"]
        if triggers is not None and _trigger_type(bindings) not in triggers:
            continue
        trigger: dict[str, Any] | None = None
        outputs: list[QueueOutput] = []
        for raw in bindings:
            binding = _resolved_binding(raw, env, f"function {name!r}, binding {raw.get('name')!r}")
            if binding["type"].endswith("Trigger"):
                trigger = binding
            elif binding["type"] == "queue" and binding["direction"].upper() == "OUT":
                outputs.append(QueueOutput(binding["name"], binding["queueName"], binding.get("connection", "")))
            else:
                raise BindingError(
                    f"function {name!r}: binding {binding['name']!r} of type {binding['type']!r} "
                    "is not supported by the local host"
                )
        if trigger is None:
            raise BindingError(f"function {name!r} has no trigger")
        hosted[name] = HostedFunction(
            name, trigger["type"], trigger["name"], trigger, tuple(outputs), function.get_user_function()
        )
    return hosted


class Invoker:
    """Runs functions one invocation at a time per call, logs one line each, counts what is in flight."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self._idle = threading.Condition()
        self._running = 0

    @property
    def running(self) -> int:
        with self._idle:
            return self._running

    def invoke(self, function: HostedFunction, trigger_value: Any) -> None:
        """Call the function, then send its outputs; any exception propagates to the trigger."""
        invocation_id = str(uuid.uuid4())
        outs = {output.name: OutBinding() for output in function.outputs}
        with self._idle:
            self._running += 1
        started = time.monotonic()
        outcome = "Failed"
        try:
            function.call(**{function.trigger_arg: trigger_value}, **outs)
            for output in function.outputs:
                output.send(outs[output.name].get(), self._env)
            outcome = "Succeeded"
        except Exception as exc:
            log.error(
                "Function %r failed (Id=%s): %s: %s",
                function.name,
                invocation_id,
                type(exc).__name__,
                exc,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )
            raise
        finally:
            elapsed_ms = (time.monotonic() - started) * 1000
            log.info(
                "Executed 'Functions.%s' (%s, Id=%s, Duration=%dms)", function.name, outcome, invocation_id, elapsed_ms
            )
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._running == 0, timeout)
