"""The local Functions host against real Azurite, with a small app of its own (not the renewal pipeline)."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import typing
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
import requests
from localazure.ports import poll_until

from certlc.host.bindings import BindingError
from certlc.host.host import FunctionsHost

pytestmark = pytest.mark.azurite

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Calls:
    """What the test app's functions saw; a condition lets tests wait for calls without sleeping."""

    items: list[tuple[str, Any]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def add(self, kind: str, value: Any) -> None:
        with self.changed:
            self.items.append((kind, value))
            self.changed.notify_all()

    def of(self, kind: str) -> list[Any]:
        with self.changed:
            return [value for k, value in self.items if k == kind]

    def wait_for(self, kind: str, count: int, timeout: float = 10.0) -> list[Any]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.of(kind)) >= count, timeout), self.items
            return self.of(kind)


CALLS = Calls()
RELEASE = threading.Event()
app = func.FunctionApp()


@app.function_name("onevent")
@app.event_grid_trigger(arg_name="event")
@app.queue_output(arg_name="out", queue_name="%OUT_QUEUE%", connection="TestStorage")
def onevent(event: func.EventGridEvent, out: func.Out[typing.List[str]]) -> None:  # noqa: UP006 (the worker's rule)
    CALLS.add("event", event)
    if event.subject == "fail":
        raise RuntimeError("asked to fail")
    out.set([json.dumps({"subject": event.subject, "n": n}) for n in range(event.get_json().get("copies", 1))])


@app.function_name("work")
@app.queue_trigger(arg_name="msg", queue_name="%WORK_QUEUE%", connection="TestStorage")
def work(msg: func.QueueMessage) -> None:
    body = json.loads(msg.get_body())
    CALLS.add("work", (body, msg.dequeue_count))
    if body.get("hold"):
        assert RELEASE.wait(10), "the test never released the function"
    if body.get("fail"):
        raise RuntimeError("asked to fail")


@app.function_name("tick")
@app.timer_trigger(arg_name="timer", schedule="%TICK_SCHEDULE%", run_on_startup=True)
def tick(timer: func.TimerRequest) -> None:
    CALLS.add("tick", timer.past_due)


VALIDATION = [
    {
        "id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66",
        "topic": "/subscriptions/xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
        "subject": "",
        "data": {
            "validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6",
            "validationUrl": "https://rp-eastus2.eventgrid.azure.net:553/eventsubscriptions/myeventsub/validate",
        },
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "eventTime": "2022-10-28T04:23:35.1981776Z",
        "metadataVersion": "1",
        "dataVersion": "1",
    }
]
VAULT = "/subscriptions/0/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1"


def grid_event(subject: str, copies: int = 1) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "topic": VAULT,
        "subject": subject,
        "eventType": "Microsoft.KeyVault.CertificateNearExpiry",
        "eventTime": "2024-05-01T10:00:00.1234567Z",
        "data": {"ObjectName ": subject, "copies": copies},
        "dataVersion": "1",
        "metadataVersion": "1",
    }


def cloud_event(subject: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": VAULT,
        "subject": subject,
        "type": "Microsoft.KeyVault.CertificateExpired",
        "time": "2024-05-01T10:00:00Z",
        "data": {"ObjectName": subject},
    }


@pytest.fixture
def host_json(tmp_path: Path) -> Path:
    path = tmp_path / "host.json"
    queues = {
        "batchSize": 4,
        "maxDequeueCount": 3,
        "visibilityTimeout": "00:00:01",
        "maxPollingInterval": "00:00:02",
    }
    path.write_text(json.dumps({"version": "2.0", "extensions": {"queues": queues}}))
    return path


@pytest.fixture
def env(azurite: Any) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:12]
    return {
        "TestStorage": azurite.connection_string,
        "OUT_QUEUE": f"out-{suffix}",
        "WORK_QUEUE": f"work-{suffix}",
        "TICK_SCHEDULE": "0 0 0 1 1 *",
    }


@pytest.fixture
def raw_queue(env: dict[str, str]) -> Callable[[str], Any]:
    """A client that shows the exact text on the wire (no base64 policies)."""
    from azure.storage.queue import QueueClient

    return lambda name: QueueClient.from_connection_string(env["TestStorage"], name)


@pytest.fixture
def send(raw_queue: Callable[[str], Any], env: dict[str, str]) -> Callable[[dict[str, Any]], None]:
    from azure.core.exceptions import ResourceExistsError

    queue = raw_queue(env["WORK_QUEUE"])
    with contextlib.suppress(ResourceExistsError):
        queue.create_queue()

    def send_json(body: dict[str, Any]) -> None:
        queue.send_message(base64.b64encode(json.dumps(body).encode()).decode())

    return send_json


@pytest.fixture
def host(env: dict[str, str], host_json: Path) -> Iterator[FunctionsHost]:
    CALLS.items.clear()
    with FunctionsHost(app, env, host_json, schedule_timers=False, max_polling_interval=0.2) as running:
        yield running


@pytest.fixture
def idle_host(env: dict[str, str], host_json: Path) -> Iterator[FunctionsHost]:
    """A host that is not started: ``drain`` does all the polling, in the test's thread."""
    CALLS.items.clear()
    host = FunctionsHost(app, env, host_json, schedule_timers=False)
    yield host
    host.stop()


def http() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxies or CA bundles from the environment for loopback
    return session


def wire_messages(client: Any) -> list[str]:
    return [message.content for message in client.peek_messages(max_messages=32)]


def test_eventgrid_validation_handshake(host: FunctionsHost) -> None:
    response = http().post(
        host.eventgrid_url("onevent"), json=VALIDATION, headers={"aeg-event-type": "SubscriptionValidation"}
    )
    assert response.status_code == 200
    assert response.json() == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}
    assert CALLS.of("event") == []  # the host answers the handshake itself


def test_cloudevents_abuse_protection_handshake(host: FunctionsHost) -> None:
    response = http().options(host.eventgrid_url("onevent"), headers={"WebHook-Request-Origin": "eventgrid.azure.net"})
    assert response.status_code == 200
    assert response.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"


def test_event_becomes_base64_json_queue_messages(
    host: FunctionsHost, env: dict[str, str], raw_queue: Callable[[str], Any]
) -> None:
    event = grid_event("web01", copies=2)
    response = http().post(host.eventgrid_url("onevent"), json=[event], headers={"aeg-event-type": "Notification"})
    assert response.status_code == 200
    (seen,) = CALLS.of("event")
    assert (seen.id, seen.topic, seen.event_type, seen.subject) == (
        event["id"],
        VAULT,
        "Microsoft.KeyVault.CertificateNearExpiry",
        "web01",
    )
    assert seen.event_time is not None and seen.event_time.microsecond == 123456
    assert seen.get_json()["ObjectName "] == "web01"  # quirky keys reach the function untouched
    wire = wire_messages(raw_queue(env["OUT_QUEUE"]))
    assert sorted((json.loads(base64.b64decode(text)) for text in wire), key=lambda m: m["n"]) == [
        {"subject": "web01", "n": 0},
        {"subject": "web01", "n": 1},
    ]


def test_cloudevents_structured_and_batch(host: FunctionsHost, env: dict[str, str]) -> None:
    url = host.eventgrid_url("onevent")
    single = http().post(
        url,
        data=json.dumps(cloud_event("one")),
        headers={"Content-Type": "application/cloudevents+json; charset=utf-8"},
    )
    batch = http().post(
        url,
        data=json.dumps([cloud_event("two"), cloud_event("three")]),
        headers={"Content-Type": "application/cloudevents-batch+json; charset=utf-8"},
    )
    assert (single.status_code, batch.status_code) == (200, 200)
    events = CALLS.of("event")
    assert [e.subject for e in events] == ["one", "two", "three"]
    # the worker's converter gives a func.CloudEvent for a CloudEvents body, whatever the annotation says
    assert {type(e) for e in events} == {func.CloudEvent}
    assert {(e.source, e.type) for e in events} == {(VAULT, "Microsoft.KeyVault.CertificateExpired")}


def test_function_failure_answers_500_so_event_grid_retries(host: FunctionsHost) -> None:
    response = http().post(
        host.eventgrid_url("onevent"),
        json=[grid_event("ok"), grid_event("fail")],
        headers={"aeg-event-type": "Notification"},
    )
    assert response.status_code == 500
    assert [e.subject for e in CALLS.of("event")] == ["ok", "fail"]


def test_unknown_function_and_bad_payload(host: FunctionsHost) -> None:
    url = host.eventgrid_url("onevent")
    assert http().post(url.replace("onevent", "nope"), json=[grid_event("x")]).status_code == 404
    assert http().post(url, data=b"{not json").status_code == 400
    assert http().post(url, json=[{"id": "1"}]).status_code == 400
    assert CALLS.of("event") == []


def test_queue_trigger_success_deletes_message(
    host: FunctionsHost, env: dict[str, str], send: Callable[[dict[str, Any]], None], raw_queue: Callable[[str], Any]
) -> None:
    send({"job": 1})
    assert CALLS.wait_for("work", 1) == [({"job": 1}, 1)]
    host.drain(timeout=10)
    queue = raw_queue(env["WORK_QUEUE"])
    assert queue.get_queue_properties().approximate_message_count == 0
    assert wire_messages(raw_queue(f"{env['WORK_QUEUE']}-poison")) == []


def test_stop_waits_for_invocations_in_flight(
    env: dict[str, str], host_json: Path, send: Callable[[dict[str, Any]], None], raw_queue: Callable[[str], Any]
) -> None:
    CALLS.items.clear()
    RELEASE.clear()
    host = FunctionsHost(app, env, host_json, schedule_timers=False, max_polling_interval=0.2).start()
    send({"hold": True})
    CALLS.wait_for("work", 1)
    stopper = threading.Thread(target=host.stop)
    stopper.start()
    stopper.join(timeout=0.5)
    assert stopper.is_alive()  # still waiting for the held invocation
    RELEASE.set()
    stopper.join(timeout=10)
    assert not stopper.is_alive()
    assert raw_queue(env["WORK_QUEUE"]).get_queue_properties().approximate_message_count == 0  # settled


def test_a_slow_invocation_does_not_hold_the_messages_behind_it(
    env: dict[str, str], host_json: Path, send: Callable[[dict[str, Any]], None]
) -> None:
    """batchSize 4, newBatchThreshold 2 (the default, half): new batches are fetched while one runs on."""
    CALLS.items.clear()
    RELEASE.clear()
    with FunctionsHost(app, env, host_json, schedule_timers=False, max_polling_interval=0.2):
        try:
            send({"hold": True})
            CALLS.wait_for("work", 1)
            for n in range(6):
                send({"n": n})
            done = CALLS.wait_for("work", 7, timeout=20)
            assert not RELEASE.is_set()  # all six ran while the first was still held
            assert sorted(body["n"] for body, _ in done[1:]) == list(range(6))
        finally:
            RELEASE.set()


def _wait_visible(client: Any) -> None:
    """The message comes back after its visibility timeout; the caller has seen it hidden first."""
    poll_until(lambda: client.peek_messages(max_messages=1), timeout=10, what="the message visible again")


def test_failure_retries_after_visibility_timeout_then_poison(
    idle_host: FunctionsHost,
    env: dict[str, str],
    send: Callable[[dict[str, Any]], None],
    raw_queue: Callable[[str], Any],
) -> None:
    send({"fail": True, "cert": "web01"})
    original = wire_messages(raw_queue(env["WORK_QUEUE"]))
    queue = raw_queue(env["WORK_QUEUE"])
    for attempt in (1, 2):
        assert idle_host.drain(timeout=10) == 1
        assert CALLS.of("work")[-1] == ({"fail": True, "cert": "web01"}, attempt)
        assert not queue.peek_messages(max_messages=1)  # hidden for visibilityTimeout
        _wait_visible(queue)  # then back
    assert idle_host.drain(timeout=10) == 1  # third failure reaches maxDequeueCount
    assert [count for _, count in CALLS.of("work")] == [1, 2, 3]
    assert queue.get_queue_properties().approximate_message_count == 0
    assert wire_messages(raw_queue(f"{env['WORK_QUEUE']}-poison")) == original


def test_drain_processes_a_batch_bigger_than_batch_size(
    idle_host: FunctionsHost, send: Callable[[dict[str, Any]], None]
) -> None:
    for job in range(10):
        send({"job": job})
    assert idle_host.drain(timeout=20) == 10
    assert sorted(body["job"] for body, _ in CALLS.of("work")) == list(range(10))
    assert idle_host.drain(timeout=5) == 0


def test_a_message_that_is_not_base64_goes_to_the_poison_queue_at_once(
    idle_host: FunctionsHost, env: dict[str, str], raw_queue: Callable[[str], Any]
) -> None:
    """As the queues extension 5.x does (Azure/azure-sdk-for-net#18326): retrying cannot decode it."""
    queue = raw_queue(env["WORK_QUEUE"])
    queue.create_queue()
    queue.send_message('{"plain": "json, as Event Grid once wrote to queues"}')
    assert idle_host.drain(timeout=10) == 1
    assert CALLS.of("work") == []
    assert queue.get_queue_properties().approximate_message_count == 0  # not retried
    assert wire_messages(raw_queue(f"{env['WORK_QUEUE']}-poison")) == [
        '{"plain": "json, as Event Grid once wrote to queues"}'
    ]


def test_message_encoding_none_passes_text_through_both_ways(
    env: dict[str, str], tmp_path: Path, raw_queue: Callable[[str], Any]
) -> None:
    """host.json ``messageEncoding: none``: the trigger gets the text as it is, the queue output writes it so."""
    path = tmp_path / "host.json"
    queues = {"messageEncoding": "none", "maxPollingInterval": "00:00:01", "visibilityTimeout": "00:00:01"}
    path.write_text(json.dumps({"version": "2.0", "extensions": {"queues": queues}}))
    CALLS.items.clear()
    with FunctionsHost(app, env, path) as host:
        raw_queue(env["WORK_QUEUE"]).send_message(json.dumps({"job": "plain"}))
        assert CALLS.wait_for("work", 1) == [({"job": "plain"}, 1)]
        event = grid_event("web02")
        response = http().post(host.eventgrid_url("onevent"), json=[event], headers={"aeg-event-type": "Notification"})
        assert response.status_code == 200
    assert wire_messages(raw_queue(env["OUT_QUEUE"])) == [json.dumps({"subject": "web02", "n": 0})]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": "2.0", "extensions": {"queues": {"messageEncoding": "utf8"}}}))
    with pytest.raises(ValueError, match="messageEncoding: 'utf8' is not one of base64, none"):
        FunctionsHost(app, env, bad)


def test_timer_run_on_startup_and_trigger(env: dict[str, str], host_json: Path) -> None:
    CALLS.items.clear()
    with FunctionsHost(app, env, host_json) as host:
        assert CALLS.wait_for("tick", 1) == [False]
        host.trigger_timer("tick")
        assert CALLS.of("tick") == [False, False]
        with pytest.raises(KeyError, match="not a timer"):
            host.trigger_timer("work")


def test_timer_fires_on_schedule(env: dict[str, str], host_json: Path) -> None:
    CALLS.items.clear()
    with FunctionsHost(app, {**env, "TICK_SCHEDULE": "* * * * * *"}, host_json):
        assert len(CALLS.wait_for("tick", 3, timeout=10)) >= 3  # on startup + every second


def test_missing_setting_is_named(env: dict[str, str], host_json: Path) -> None:
    del env["WORK_QUEUE"]
    with pytest.raises(BindingError, match=r"function 'work'.*app setting WORK_QUEUE is not set"):
        FunctionsHost(app, env, host_json)


def test_bad_schedule_names_the_function(env: dict[str, str], host_json: Path) -> None:
    with pytest.raises(BindingError, match=r"function 'tick'.*has 5 fields; NCRONTAB needs 6"):
        FunctionsHost(app, {**env, "TICK_SCHEDULE": "0 * * * *"}, host_json)


def test_unsupported_binding_is_an_error(host_json: Path) -> None:
    other = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @other.route("hello")
    def hello(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("hi")

    with pytest.raises(BindingError, match=r"function 'hello'.*type 'http' is not supported"):
        FunctionsHost(other, {}, host_json)


def test_indexes_the_real_function_app() -> None:
    import function_app

    env = {
        "CERTLC_QUEUE_NAME": "certlc-renewals",
        "CERTLC_SWEEP_SCHEDULE": "0 5 * * * *",
        "CERTLC_INGEST_SCHEDULE": "0 0 */6 * * *",
        "CertlcStorage": "UseDevelopmentStorage=true",
    }
    for _ in range(2):  # indexing twice must not trip get_functions()' duplicate check
        host = FunctionsHost(function_app.app, env, REPO / "host.json")
        host.stop()  # releases the webhook port it bound
    kinds = {name: f.trigger_type for name, f in host.functions.items()}
    assert kinds == {
        "event": "eventGridTrigger",
        "renew": "queueTrigger",
        "sweep": "timerTrigger",
        "ingest": "timerTrigger",
    }
    assert host.queue_names == ["certlc-renewals"]
    assert [(o.queue_name, o.connection) for o in host.functions["event"].outputs] == [
        ("certlc-renewals", "CertlcStorage")
    ]
    assert host.functions["sweep"].trigger["schedule"] == "0 5 * * * *"
    assert host.eventgrid_url("event").endswith("/runtime/webhooks/eventgrid?functionName=event")


def test_the_script_root_is_the_apps_folder_from_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``func start`` runs in the app's folder; certlc dev and worker also run from any other folder."""
    from certlc.host.host import script_root

    repo = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(tmp_path)
    assert script_root(None) == repo and (script_root(None) / "function_app.py").is_file()
    (tmp_path / "function_app.py").write_text("")
    assert script_root(None) == Path(".")
    assert script_root(tmp_path / "elsewhere") == tmp_path / "elsewhere"
