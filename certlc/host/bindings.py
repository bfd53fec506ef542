"""Indexing a FunctionApp and invoking its functions with the Functions host's binding semantics.

The app is indexed with ``get_functions()`` so the local host runs the deployed wiring (a second call on the
same app object raises, hence the per-app cache), and every function passes the Python worker's load rules
(``workerrules``) before anything runs: one refused function loads nothing, as in Azure. Each invocation
gets its trigger value from ``azure.functions``' own converter, decoding the wire payload the host would
send, and its outputs are encoded by the same registry before the host writes them to their queues.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
import weakref
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from azure.functions import meta

from certlc.host.workerrules import FunctionLoadError, LoadedFunction, load_function
from renewal.queue import ensure_queue

log = logging.getLogger("certlc.host")

DEFAULT_CONNECTION = "AzureWebJobsStorage"
_SETTING = re.compile(r"%([^%]+)%")
_INDEX: weakref.WeakKeyDictionary[func.FunctionApp, list[Any]] = weakref.WeakKeyDictionary()
_INDEX_LOCK = threading.Lock()


class BindingError(ValueError):
    """A binding the host cannot resolve (missing app setting, unsupported binding type, a load-rule failure)."""


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


def queue_texts(datum: meta.Datum) -> list[str]:
    """The queue messages a queue output's encoded value stands for: one, or one per item of a JSON array."""
    if datum.type is None or datum.value is None:
        return []
    if datum.type == "string":
        return [datum.value]
    if datum.type == "bytes":
        return [bytes(datum.value).decode("utf-8")]
    if datum.type == "json":
        value = json.loads(datum.value)
        items = value if isinstance(value, list) else [value]
        return [item if isinstance(item, str) else json.dumps(item) for item in items]
    raise BindingError(f"a queue output cannot carry TypedData of type {datum.type!r}")


@dataclass(frozen=True)
class QueueOutput:
    name: str
    queue_name: str
    connection: str

    def send(self, datum: meta.Datum, env: Mapping[str, str], message_encoding: str = "base64") -> None:
        """Write each message as the host does for host.json's ``messageEncoding``."""
        from certlc.host.queue_poller import encode_message

        texts = queue_texts(datum)
        if not texts:
            return
        raw = {"message_encode_policy": None, "message_decode_policy": None}
        client = connection_queue(env, self.connection, self.queue_name, **raw)
        from azure.core.exceptions import ResourceNotFoundError

        for text in (encode_message(t, message_encoding) for t in texts):
            try:
                client.send_message(text)
            except ResourceNotFoundError:  # the host creates an output queue on first use
                ensure_queue(client).send_message(text)


@dataclass(frozen=True)
class HostedFunction:
    """One function of the app with its bindings resolved against the app settings."""

    name: str
    trigger_type: str
    trigger: Mapping[str, Any]
    outputs: tuple[QueueOutput, ...]
    loaded: LoadedFunction

    def call(self, datum: meta.Datum, metadata: Mapping[str, meta.Datum]) -> dict[str, meta.Datum]:
        """Decode the trigger, run the function, encode what it set on its outputs (as the worker does)."""
        value = self.loaded.decode_trigger(datum, metadata)
        outs = {name: OutBinding() for name in self.loaded.outputs}
        self.loaded.user_function(**{self.loaded.trigger.name: value}, **outs)
        return {name: self.loaded.encode_output(name, out.get()) for name, out in outs.items() if out.get() is not None}


def _resolved_binding(binding: Mapping[str, Any], env: Mapping[str, str], where: str) -> dict[str, Any]:
    return {k: resolve(v, env, where) if isinstance(v, str) else v for k, v in binding.items()}


def _trigger_type(bindings: list[Mapping[str, Any]]) -> str | None:
    return next((b["type"] for b in bindings if b["type"].endswith("Trigger")), None)


def hosted_functions(
    app: func.FunctionApp, env: Mapping[str, str], triggers: Collection[str] | None = None
) -> dict[str, HostedFunction]:
    """Index ``app`` and resolve the bindings of the functions with one of ``triggers`` (default: all).

    Raises ``BindingError`` naming a function the Python worker would refuse (and then nothing is hosted, as
    in Azure), a missing app setting or an unsupported binding.
    """
    indexed = functions_of(app)
    try:
        loaded = [load_function(function) for function in indexed]
    except FunctionLoadError as exc:
        raise BindingError(f"{exc}; the Python worker would load no function of this app") from None
    hosted: dict[str, HostedFunction] = {}
    for function, worker_view in zip(indexed, loaded, strict=True):
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
        hosted[name] = HostedFunction(name, trigger["type"], trigger, tuple(outputs), worker_view)
    return hosted


class Invoker:
    """Runs functions one invocation at a time per call, logs one line each, counts what is in flight."""

    def __init__(self, env: Mapping[str, str], message_encoding: str = "base64") -> None:
        self._env = env
        self._message_encoding = message_encoding
        self._idle = threading.Condition()
        self._running = 0

    @property
    def running(self) -> int:
        with self._idle:
            return self._running

    def invoke(self, function: HostedFunction, datum: meta.Datum, metadata: Mapping[str, meta.Datum]) -> None:
        """Run one invocation from the trigger's wire payload, then send its outputs; exceptions propagate."""
        invocation_id = str(uuid.uuid4())
        with self._idle:
            self._running += 1
        started = time.monotonic()
        outcome = "Failed"
        try:
            encoded = function.call(datum, metadata)
            for output in function.outputs:
                if output.name in encoded:
                    output.send(encoded[output.name], self._env, self._message_encoding)
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
