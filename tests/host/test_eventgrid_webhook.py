"""The host's Event Grid webhook on a real socket: one dispatch per event, the handshakes, the limits of the
endpoint, and stopping whatever its clients do (in process, under ``certlc dev`` and under ``certlc local``)."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from certlc.host.eventgrid import EventGridWebhook
from certlc.host.eventgrid_protocol import EVENT_GRID_ORIGIN, MAX_DELIVERY_BYTES, MAX_JSON_DEPTH
from tests.cli import run_certlc
from tests.environment import without_certlc_settings

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "data" / "events"
SAMPLES = CORPUS / "reference"
PATH = "/runtime/webhooks/eventgrid?functionName=onevent"
VAULT = "/subscriptions/0/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1"


class Recorder:
    """The dispatch under test: records ``(function_name, event)``; subject "fail" raises, "hold" waits."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.release = threading.Event()
        self.holding = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, function_name: str, event: Any) -> None:
        with self._lock:
            self.calls.append((function_name, event))
        if event.get("subject") == "hold":
            self.holding.set()
            assert self.release.wait(10), "the test never released the invocation"
        if event.get("subject") == "fail":
            raise RuntimeError("asked to fail")


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def stop_within(webhook: EventGridWebhook, seconds: float) -> float:
    """``webhook.stop()`` in a thread of its own, so a stop that hangs fails the test instead of hanging it."""
    started = time.monotonic()
    stopper = threading.Thread(target=webhook.stop, daemon=True)
    stopper.start()
    stopper.join(timeout=seconds)
    elapsed = time.monotonic() - started
    assert not stopper.is_alive(), f"stop() still running after {seconds} s"
    return elapsed


@contextlib.contextmanager
def running(recorder: Recorder, **options: Any) -> Iterator[EventGridWebhook]:
    webhook = EventGridWebhook(frozenset({"onevent"}), recorder, **options)
    webhook.start()
    try:
        yield webhook
    finally:
        stop_within(webhook, 10)


@pytest.fixture
def webhook(recorder: Recorder) -> Iterator[EventGridWebhook]:
    with running(recorder) as hook:
        yield hook


def http() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxies from the environment for loopback
    return session


def grid_event(subject: str) -> dict[str, Any]:
    return {
        "id": f"id-{subject}",
        "topic": VAULT,
        "subject": subject,
        "eventType": "Microsoft.KeyVault.CertificateNearExpiry",
        "eventTime": "2024-05-01T10:00:00.1234567Z",
        "data": {"ObjectName ": subject, "NBF": "1714557600"},
        "dataVersion": "1",
        "metadataVersion": "1",
    }


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.settimeout(5)
    return sock


def read_answer(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes the connection; fails the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    chunks = []
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1."), answer[:200]
    return int(answer.split(b" ", 2)[1])


def reason(answer: bytes) -> str:
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])["reason"]


def exchange(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    with connect(port) as sock:
        sock.sendall(request)
        return read_answer(sock, timeout)


def post(body: bytes, *headers: str, path: str = PATH) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def with_length(body: bytes) -> bytes:
    return post(body, f"Content-Length: {len(body)}", "aeg-event-type: Notification")


# --- one dispatch per event --------------------------------------------------------------------------------


def test_each_event_is_dispatched_once_as_delivered(webhook: EventGridWebhook, recorder: Recorder) -> None:
    first, second = grid_event("web01"), grid_event("web02")
    response = http().post(webhook.url("onevent"), json=[first, second], headers={"aeg-event-type": "Notification"})
    assert response.status_code == 200
    assert recorder.calls == [("onevent", first), ("onevent", second)]
    assert list(recorder.calls[0][1]["data"]) == ["ObjectName ", "NBF"]  # quirky keys reach the host untouched
    assert all(type(event) is dict for _, event in recorder.calls)


def test_a_structured_cloud_event_is_one_dispatch(webhook: EventGridWebhook, recorder: Recorder) -> None:
    sample = json.loads((SAMPLES / "certificate-derived" / "certificate-near-expiry.cloudevents.json").read_text())
    headers = {"Content-Type": "application/cloudevents+json; charset=utf-8"}
    response = http().post(webhook.url("onevent"), data=json.dumps(sample[0]), headers=headers, timeout=5)
    assert response.status_code == 200
    assert recorder.calls == [("onevent", sample[0])]


def test_a_failed_invocation_answers_500_so_event_grid_retries(webhook: EventGridWebhook, recorder: Recorder) -> None:
    events = [grid_event("ok"), grid_event("fail"), grid_event("after")]
    response = http().post(webhook.url("onevent"), json=events, headers={"aeg-event-type": "Notification"}, timeout=5)
    assert response.status_code == 500
    assert response.json() == {"error": "1 of 3 invocations failed"}
    assert [event["subject"] for _, event in recorder.calls] == ["ok", "fail", "after"]


def test_unknown_function_or_path_is_404(webhook: EventGridWebhook, recorder: Recorder) -> None:
    url = webhook.url("onevent")
    assert http().post(url.replace("onevent", "nope"), json=[grid_event("x")], timeout=5).status_code == 404
    assert http().post(url.replace("eventgrid", "other"), json=[grid_event("x")], timeout=5).status_code == 404
    assert recorder.calls == []


def test_events_without_their_envelope_are_refused(webhook: EventGridWebhook, recorder: Recorder) -> None:
    response = http().post(webhook.url("onevent"), json=[grid_event("ok"), {"id": "1"}], timeout=5)
    assert (response.status_code, response.json()["reason"]) == (400, "unknown_schema")
    assert recorder.calls == []  # the whole delivery, before any invocation


# --- the handshakes ------------------------------------------------------------------------------------------


def test_the_validation_handshake_is_answered_by_the_webhook(webhook: EventGridWebhook, recorder: Recorder) -> None:
    body = (SAMPLES / "subscription-validation-event.eventgrid.json").read_bytes()
    expected = json.loads((SAMPLES / "subscription-validation-response.json").read_text())
    headers = {"aeg-event-type": "SubscriptionValidation", "Content-Type": "application/json"}
    response = http().post(webhook.url("onevent"), data=body, headers=headers, timeout=5)
    assert (response.status_code, response.json()) == (200, expected)
    bad = [dict(json.loads(body)[0], data={"validationCode": 7})]
    response = http().post(webhook.url("onevent"), json=bad, headers=headers, timeout=5)
    assert (response.status_code, response.json()["reason"]) == (400, "wrong_field_type")
    ordinary = http().post(webhook.url("onevent"), json=[grid_event("x")], headers=headers, timeout=5)
    assert (ordinary.status_code, ordinary.json()["reason"]) == (400, "not_a_validation_event")
    assert recorder.calls == []


def test_the_cloudevents_options_handshake(webhook: EventGridWebhook, recorder: Recorder) -> None:
    url = webhook.url("onevent")
    answer = http().options(url, headers={"WebHook-Request-Origin": "sender.example"}, timeout=5)
    assert answer.status_code == 200
    assert answer.headers["WebHook-Allowed-Origin"] == "sender.example"  # any origin, as the Functions host
    assert answer.headers["WebHook-Allowed-Rate"] == "*"
    missing = http().options(url, timeout=5)
    assert (missing.status_code, missing.json()["reason"]) == (400, "missing_field")
    assert recorder.calls == []


def test_allowed_origins_can_be_narrowed(recorder: Recorder) -> None:
    with running(recorder, allowed_origins=(EVENT_GRID_ORIGIN,)) as hook:
        other = http().options(hook.url("onevent"), headers={"WebHook-Request-Origin": "sender.example"}, timeout=5)
        grid = http().options(hook.url("onevent"), headers={"WebHook-Request-Origin": EVENT_GRID_ORIGIN}, timeout=5)
    assert (other.status_code, other.json()["reason"]) == (400, "origin_not_allowed")
    assert (grid.status_code, grid.headers["WebHook-Allowed-Origin"]) == (200, EVENT_GRID_ORIGIN)


# --- the limits ----------------------------------------------------------------------------------------------


def _nested(depth: int) -> bytes:
    return b'[{"data": ' + b'{"a": ' * (depth - 3) + b"{}" + b"}" * (depth - 3) + b"}]"


LIMITS = {
    "over 1 MB": (post(b"", f"Content-Length: {MAX_DELIVERY_BYTES + 1}"), 413, "too_large"),
    "no Content-Length": (post(b"[]"), 411, "length_required"),
    "chunked": (post(b"2\r\n[]\r\n0\r\n\r\n", "Transfer-Encoding: chunked"), 411, "length_required"),
    "bad Content-Length": (post(b"[]", "Content-Length: 2x"), 400, "invalid_length"),
    "5001 events": (with_length(json.dumps([{"id": "1"}] * 5001).encode()), 400, "too_many_events"),
    "deep JSON": (with_length(_nested(MAX_JSON_DEPTH + 1)), 400, "too_deep"),
    "not JSON": (with_length(b"<html>hello</html>"), 400, "not_json"),
    "NaN": (with_length(b'[{"id": NaN}]'), 400, "not_json"),
    "empty array": (with_length(b"[]"), 400, "empty_delivery"),
}


@pytest.mark.parametrize("case", list(LIMITS), ids=list(LIMITS))
def test_what_event_grid_never_sends_is_refused(webhook: EventGridWebhook, recorder: Recorder, case: str) -> None:
    request, expected_status, expected_reason = LIMITS[case]
    started = time.monotonic()
    answer = exchange(webhook.port, request)
    assert (status(answer), reason(answer)) == (expected_status, expected_reason)
    assert time.monotonic() - started < 1.0  # answered at once, without waiting for a body that never comes
    assert recorder.calls == []


def test_a_big_body_is_refused_with_413_the_client_can_read(webhook: EventGridWebhook, recorder: Recorder) -> None:
    body = b"[" + b" " * MAX_DELIVERY_BYTES + b"]"
    response = http().post(webhook.url("onevent"), data=body, timeout=5)
    assert (response.status_code, response.json()["reason"]) == (413, "too_large")
    assert recorder.calls == []


@pytest.mark.parametrize(
    "case",
    [c for c in json.loads((CORPUS / "manifest.json").read_text())["cases"] if "delivery_reason" in c],
    ids=lambda c: c["file"],
)
def test_malformed_corpus_deliveries_are_refused_by_the_webhook(
    webhook: EventGridWebhook, recorder: Recorder, case: dict
) -> None:
    answer = exchange(webhook.port, with_length((CORPUS / case["file"]).read_bytes()))
    assert (status(answer), reason(answer)) == (400, case["delivery_reason"])
    assert recorder.calls == []


def _trickle(sock: socket.socket, data: bytes, every: float) -> threading.Thread:
    def send() -> None:
        for byte in data:
            try:
                sock.send(bytes([byte]))
            except OSError:
                return
            time.sleep(every)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def test_a_client_sending_headers_slowly_is_cut_off(recorder: Recorder) -> None:
    with running(recorder, header_timeout=1.0) as hook, connect(hook.port) as sock:
        started = time.monotonic()
        trickler = _trickle(sock, post(b"[]", "Content-Length: 2", "X-Padding: " + "x" * 200), every=0.1)
        answer = read_answer(sock, timeout=5)
        elapsed = time.monotonic() - started
        trickler.join(timeout=5)
    assert status(answer) == 408
    assert 0.9 < elapsed < 2.5
    assert recorder.calls == []


def test_a_body_shorter_than_its_content_length_is_cut_off(recorder: Recorder) -> None:
    with running(recorder, body_timeout=1.0) as hook, connect(hook.port) as sock:
        started = time.monotonic()
        sock.sendall(post(b'[{"id": ', "Content-Length: 100"))
        answer = read_answer(sock, timeout=5)
        elapsed = time.monotonic() - started
    assert status(answer) == 408
    assert 0.9 < elapsed < 2.5
    assert recorder.calls == []


def test_a_body_that_ends_early_is_a_bad_request(webhook: EventGridWebhook, recorder: Recorder) -> None:
    with connect(webhook.port) as sock:
        sock.sendall(post(b'[{"id": ', "Content-Length: 100"))
        sock.shutdown(socket.SHUT_WR)
        answer = read_answer(sock)
    assert status(answer) == 400
    assert recorder.calls == []


def test_connections_beyond_the_pool_get_503_and_no_thread_each(recorder: Recorder) -> None:
    with running(recorder, workers=2, max_waiting=2, header_timeout=2.0) as hook:
        threads = threading.active_count()
        clients = []
        try:
            for _ in range(10):
                clients.append(connect(hook.port))
                time.sleep(0.05)  # lets a worker take the connection before the next one arrives
            assert threading.active_count() == threads
            busy = []
            for sock in clients:
                ready, _, _ = select.select([sock], [], [], 0.2)
                busy.append(bool(ready) and status(read_answer(sock)) == 503)
            assert busy == [False] * 4 + [True] * 6
            later = [status(read_answer(sock, timeout=6)) for sock in clients[:4]]
            assert later == [408] * 4  # two served at once, two after waiting, each with its own deadline
        finally:
            for sock in clients:
                sock.close()


# --- stopping ------------------------------------------------------------------------------------------------


def open_idle_connections(port: int, count: int) -> list[socket.socket]:
    """Connections that never finish a request: silent, half a header, half a body."""
    partial = [b"", b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n", post(b"[{", "Content-Length: 500")]
    clients = []
    for n in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if partial[n % 3]:
            sock.sendall(partial[n % 3])
        clients.append(sock)
    return clients


def test_200_idle_connections_do_not_hold_up_stop(recorder: Recorder) -> None:
    hook = EventGridWebhook(frozenset({"onevent"}), recorder)
    hook.start()
    threads = threading.active_count()
    clients = open_idle_connections(hook.port, 200)
    try:
        time.sleep(0.5)  # every worker holds one, the rest wait or were refused
        assert threading.active_count() == threads
        elapsed = stop_within(hook, 10)
        assert elapsed < 2.0, f"stop() took {elapsed:.1f} s"
        for sock in clients:
            answer = read_answer(sock, timeout=2)
            assert answer == b"" or status(answer) == 503
    finally:
        for sock in clients:
            sock.close()
        stop_within(hook, 10)  # a no-op once stopped
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", hook.port), timeout=2).close()


def test_stop_waits_for_an_invocation_in_flight_but_not_for_idle_clients(recorder: Recorder) -> None:
    hook = EventGridWebhook(frozenset({"onevent"}), recorder)
    hook.start()
    result: dict[str, Any] = {}

    def deliver() -> None:
        result["response"] = http().post(hook.url("onevent"), json=[grid_event("hold"), grid_event("next")], timeout=10)

    client = threading.Thread(target=deliver)
    client.start()
    (idle,) = open_idle_connections(hook.port, 1)
    stopper = threading.Thread(target=hook.stop, daemon=True)
    try:
        assert recorder.holding.wait(5)
        stopper.start()
        assert read_answer(idle, timeout=2) == b""  # closed at once
        stopper.join(timeout=0.5)
        assert stopper.is_alive()  # still waiting for the held invocation
    finally:
        recorder.release.set()
        idle.close()
        stop_within(hook, 10)
    stopper.join(timeout=5)
    client.join(timeout=5)
    assert not stopper.is_alive() and not client.is_alive()
    assert result["response"].status_code == 503  # the rest of the delivery is left for Event Grid to retry
    assert [event["subject"] for _, event in recorder.calls] == ["hold"]


APP = """
import azure.functions as func

app = func.FunctionApp()


@app.function_name("onevent")
@app.event_grid_trigger(arg_name="event")
def onevent(event: func.EventGridEvent) -> None:
    pass
"""


def test_certlc_dev_with_200_open_connections_exits_soon_after_sigterm(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text(APP)
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0"}))
    (tmp_path / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": {}}))
    env = without_certlc_settings()
    env |= {"PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "certlc.cli", "dev", "--port", "0", "--no-timers"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    clients: list[socket.socket] = []
    try:
        assert process.stdout is not None
        url = ""
        deadline = time.monotonic() + 60
        while not url:
            assert time.monotonic() < deadline, "certlc dev printed no webhook URL"
            ready, _, _ = select.select([process.stdout], [], [], 1)
            line = process.stdout.readline() if ready else ""
            assert line or process.poll() is None, process.communicate(timeout=10)
            if line.strip().startswith("onevent: "):
                url = line.split(": ", 1)[1].strip()
        clients = open_idle_connections(urlsplit(url).port or 0, 200)
        time.sleep(0.5)
        assert process.poll() is None
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=15)
        elapsed = time.monotonic() - started
        assert code == 0, process.communicate(timeout=10)
        assert elapsed < 3.0, f"certlc dev took {elapsed:.1f} s to exit"
    finally:
        for sock in clients:
            sock.close()
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def test_local_down_with_a_half_open_connection_to_the_webhook(tmp_path: Path, azurite: Any) -> None:
    stack_dir = tmp_path / "stack"
    up = run_certlc("local", "up", "--dir", str(stack_dir), "--json")
    down: subprocess.CompletedProcess | None = None
    try:
        assert up.returncode == 0, up.stderr
        info = json.loads(up.stdout)
        url = urlsplit(info["eventgrid_url"])
        with connect(url.port or 0) as half_open:
            request = post(b'[{"id": ', "Content-Length: 1000", path=f"{url.path}?{url.query}")
            half_open.sendall(request)
            time.sleep(0.5)
            started = time.monotonic()
            down = run_certlc("local", "down", "--dir", str(stack_dir), timeout=60)
            elapsed = time.monotonic() - started
            assert read_answer(half_open, timeout=2) == b""
    finally:
        if down is None:
            run_certlc("local", "down", "--dir", str(stack_dir), timeout=60)
        pid = json.loads(up.stdout).get("pid") if up.returncode == 0 else None
        with contextlib.suppress(ProcessLookupError):
            if pid:
                os.killpg(pid, signal.SIGKILL)  # only if it failed to stop: the stack runs in a session of its own
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout
    assert elapsed < 5.0, f"certlc local down took {elapsed:.1f} s"
    with pytest.raises(ProcessLookupError):
        os.kill(info["pid"], 0)
