"""Every published sample and every hostile event of the corpus through the worker's Event Grid converter and
function_app's ``event`` function, as Azure runs them: one invocation per event, the output encoded by the
queue converter. What the host refuses before any function runs (not JSON, empty array) is the webhook's
business and is tested there."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.functions.meta import Datum

from certlc.host.bindings import queue_texts
from renewal import handlers
from renewal.messages import RenewalRequest

pytestmark = pytest.mark.azurite

CORPUS = Path(__file__).resolve().parents[1] / "data" / "events"
SAMPLES = CORPUS / "reference"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text())
EVENT_CASES = [case for case in MANIFEST["cases"] if "delivery_reason" not in case]
# The worker's converter parses eventTime/time itself and raises before the function runs: in Azure the
# invocation fails, Event Grid retries the delivery and finally dead-letters it. Nothing certlc can change.
CONVERTER_REFUSES = {"event-time-bad.json": ValueError}


@pytest.fixture(scope="module")
def event_function(stack: Any) -> Iterator[Any]:
    """The stack host's ``event`` function, with the corpus's allow-list in the runtime it builds."""
    from renewal.runtime import build_runtime

    handlers.reset_runtime(build_runtime({**stack.settings, "CERTLC_VAULTS": MANIFEST["allow_list"]}))
    yield stack.host.functions["event"]
    handlers.reset_runtime()


def invoke(function: Any, event: Any) -> list[str]:
    """One invocation as the worker runs it; the queue messages it would write."""
    outputs = function.call(Datum(type="json", value=json.dumps(event)), {})
    return [text for datum in outputs.values() for text in queue_texts(datum)]


def events_of(path: Path) -> list[Any]:
    body = json.loads(path.read_text())
    return body if isinstance(body, list) else [body]


def test_the_converter_gives_the_function_what_azure_gives_it(event_function: Any) -> None:
    trigger = event_function.loaded.trigger
    clean = events_of(SAMPLES / "certificate-derived/certificate-near-expiry.eventgrid.clean.json")[0]
    cloud = events_of(SAMPLES / "certificate-derived/certificate-near-expiry.cloudevents.json")[0]
    assert type(event_function.loaded.decode_trigger(Datum(json.dumps(clean), "json"), {})).__name__ == "EventGridEvent"
    assert type(event_function.loaded.decode_trigger(Datum(json.dumps(cloud), "json"), {})).__name__ == "CloudEvent"
    assert (trigger.name, trigger.binding_type) == ("event", "eventGridTrigger")


@pytest.mark.parametrize(
    "sample", sorted((SAMPLES / "certificate-derived").glob("certificate-*expir*.json")), ids=lambda p: p.name
)
def test_certificate_samples_in_both_schemas_queue_one_renewal(event_function: Any, sample: Path) -> None:
    (event,) = events_of(sample)
    (message,) = invoke(event_function, event)
    request = RenewalRequest.from_dict(json.loads(message))
    assert (request.vault, request.name, request.version) == ("sample-kv", "web-frontend", SAMPLE_VERSION)
    assert request.trigger == ("expired" if "expired" in sample.name else "near_expiry")


@pytest.mark.parametrize(
    "case", [c for c in EVENT_CASES if c["file"] not in CONVERTER_REFUSES], ids=lambda c: c["file"]
)
def test_hostile_events_queue_nothing_and_never_fail_the_invocation(event_function: Any, case: dict) -> None:
    events = [event for event in events_of(CORPUS / case["file"]) if isinstance(event, dict)]  # the host splits
    messages = [text for event in events for text in invoke(event_function, event)]
    assert len(messages) == case["accepted"]


@pytest.mark.parametrize("name", sorted(CONVERTER_REFUSES))
def test_what_the_converter_refuses_fails_the_invocation(event_function: Any, name: str) -> None:
    (event,) = events_of(CORPUS / name)
    with pytest.raises(CONVERTER_REFUSES[name]):
        invoke(event_function, event)


SAMPLE_VERSION = "ee059b2bb5bc48398a53b168c6cdcb10"
