"""The local host holds an app to the Python worker's load rules: one refused function loads nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import typing
from pathlib import Path

import azure.functions as func
import pytest
from azure.functions.meta import Datum

from certlc.host import workerrules
from certlc.host.bindings import BindingError, queue_texts
from certlc.host.host import FunctionsHost

REPO = Path(__file__).resolve().parents[2]


def app_with_event_output(annotation: typing.Any) -> func.FunctionApp:
    """The shape of certlc's ``event`` function, with ``annotation`` on its queue output, plus a healthy timer."""
    app = func.FunctionApp()

    def event(event: func.EventGridEvent, out: typing.Any) -> None:
        out.set(["one", "two"])

    event.__annotations__["out"] = annotation
    app.function_name("event")(
        app.event_grid_trigger(arg_name="event")(
            app.queue_output(arg_name="out", queue_name="q", connection="C")(event)
        )
    )

    @app.function_name("tick")
    @app.timer_trigger(arg_name="timer", schedule="0 0 * * * *")
    def tick(timer: func.TimerRequest) -> None:
        pass

    return app


def test_a_pep585_alias_in_out_is_refused_and_nothing_loads() -> None:
    app = app_with_event_output(func.Out[list[str]])
    with pytest.raises(BindingError) as caught:
        FunctionsHost(app, {"C": "UseDevelopmentStorage=true"}, REPO / "host.json")
    message = str(caught.value)
    assert "cannot load the event function: binding out has invalid non-type annotation" in message
    assert "would load no function of this app" in message  # the healthy timer is not hosted either


@pytest.mark.parametrize(
    "annotation",
    [func.Out[typing.List[str]], func.Out[str], func.Out[bytes]],  # noqa: UP006 (the worker's rule)
    ids=["typing.List[str]", "str", "bytes"],
)
def test_the_annotations_the_worker_accepts_load(annotation: typing.Any) -> None:
    (event, tick) = workerrules.index_app(app_with_event_output(annotation))
    assert (event.name, tick.name) == ("event", "tick")
    assert event.trigger.binding_type == "eventGridTrigger"


def test_an_output_encodes_through_the_registry_as_the_worker_sends_it() -> None:
    (event, _) = workerrules.index_app(app_with_event_output(func.Out[typing.List[str]]))  # noqa: UP006
    datum = event.encode_output("out", ["a", "b"])
    assert (datum.type, json.loads(datum.value)) == ("json", ["a", "b"])
    assert queue_texts(datum) == ["a", "b"]
    with pytest.raises(TypeError, match="unable to encode outgoing TypedData"):
        event.encode_output("out", 42)


def test_str_outputs_use_the_generic_binding_like_the_worker() -> None:
    (event, _) = workerrules.index_app(app_with_event_output(func.Out[str]))
    assert event.outputs["out"].binding_type == "generic"
    assert queue_texts(event.encode_output("out", "hello")) == ["hello"]


def test_mismatched_parameters_and_annotations_are_refused() -> None:
    missing = func.FunctionApp()

    @missing.function_name("renew")
    @missing.queue_trigger(arg_name="msg", queue_name="q", connection="C")
    def renew(message: func.QueueMessage) -> None:  # the binding says msg
        pass

    with pytest.raises(workerrules.FunctionLoadError, match=r"declared in Python but not in function\.json"):
        workerrules.index_app(missing)

    wrong = func.FunctionApp()

    @wrong.function_name("renew")
    @wrong.queue_trigger(arg_name="msg", queue_name="q", connection="C")
    def renew_wrong(msg: func.EventGridEvent) -> None:
        pass

    with pytest.raises(workerrules.FunctionLoadError, match='type of msg binding "queueTrigger" does not match'):
        workerrules.index_app(wrong)

    out_on_input = func.FunctionApp()

    @out_on_input.function_name("renew")
    @out_on_input.queue_trigger(arg_name="msg", queue_name="q", connection="C")
    def renew_out(msg: func.Out[str]) -> None:
        pass

    with pytest.raises(workerrules.FunctionLoadError, match='"in" direction'):
        workerrules.index_app(out_on_input)


def test_the_queue_trigger_is_decoded_from_the_hosts_metadata() -> None:
    app = func.FunctionApp()

    @app.function_name("renew")
    @app.queue_trigger(arg_name="msg", queue_name="q", connection="C")
    def renew(msg: func.QueueMessage) -> None:
        pass

    (loaded,) = workerrules.index_app(app)
    metadata = {
        "Id": Datum("m-1", "string"),
        "DequeueCount": Datum("3", "json"),
        "InsertionTime": Datum("2026-11-29T10:00:00+00:00", "string"),
        "PopReceipt": Datum("r-1", "string"),
    }
    message = loaded.decode_trigger(Datum('{"a": 1}', "string"), metadata)
    assert (message.id, message.dequeue_count, message.pop_receipt) == ("m-1", 3, "r-1")
    assert message.get_body() == b'{"a": 1}' and message.insertion_time.year == 2026


def test_the_real_app_passes_as_a_script_in_a_clean_process() -> None:
    """The same check a packaged app gets: the module run as a script on a script root."""
    result = subprocess.run(
        [sys.executable, str(REPO / "certlc/host/workerrules.py"), str(REPO)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"CERTLC_VAULTS": "kv1", "PATH": ""},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    functions = {f["name"]: f for f in json.loads(result.stdout)["functions"]}
    assert {name: f["trigger"] for name, f in functions.items()} == {
        "event": "eventGridTrigger",
        "renew": "queueTrigger",
        "sweep": "timerTrigger",
        "ingest": "timerTrigger",
    }
    assert functions["event"]["converters"] == {"event": "eventGridTrigger", "out": "queue"}
