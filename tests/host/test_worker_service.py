"""``certlc worker`` as a service, in its own process against Azurite: SIGTERM while a function runs, SIGHUP reloads."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from localazure.ports import poll_until

from certlc.host.queue_poller import QueueOptions, QueuePoller, raw_queue_pair

pytestmark = pytest.mark.azurite

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 20.0

# Each invocation marks that it started, runs for the seconds its message asks, then records what it saw: the
# GREETING setting is read at the end, so a reload that changed it under a running invocation would show.
APP = """
import json
import os
import pathlib
import time

import azure.functions as func

app = func.FunctionApp()


@app.function_name("handle")
@app.queue_trigger(arg_name="msg", queue_name="%JOBS%", connection="Jobs")
def handle(msg: func.QueueMessage) -> None:
    body = json.loads(msg.get_body())
    state = pathlib.Path(os.environ["STATE_DIR"])
    (state / f"started-{body['job']}").touch()
    time.sleep(body.get("seconds", 0))
    seen = {"dequeue_count": msg.dequeue_count, "greeting": os.environ.get("GREETING")}
    (state / f"done-{body['job']}.json").write_text(json.dumps(seen))
"""


@pytest.fixture
def app_root(tmp_path: Path, azurite: Any) -> Path:
    """A project folder with its own function_app.py, host.json and local.settings.json."""
    root = tmp_path / "app"
    (root / "state").mkdir(parents=True)
    (root / "function_app.py").write_text(APP)
    queues = {"batchSize": 2, "maxDequeueCount": 1, "visibilityTimeout": "00:00:01"}  # a failure would poison at once
    (root / "host.json").write_text(json.dumps({"version": "2.0", "extensions": {"queues": queues}}))
    write_settings(
        root,
        {
            "Jobs": azurite.connection_string,
            "JOBS": f"jobs-{uuid.uuid4().hex[:12]}",
            "STATE_DIR": str(root / "state"),
            "GREETING": "hello",
        },
    )
    return root


def write_settings(root: Path, values: dict[str, str]) -> None:
    (root / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": values}))


def settings(root: Path) -> dict[str, str]:
    return json.loads((root / "local.settings.json").read_text())["Values"]


def queue(root: Path, name: str) -> Any:
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.queue import QueueClient

    client = QueueClient.from_connection_string(settings(root)["Jobs"], name)
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    return client


def send(client: Any, body: dict[str, Any]) -> str:
    text = base64.b64encode(json.dumps(body).encode()).decode()
    client.send_message(text)
    return text


def seen(root: Path, job: int) -> dict[str, Any] | None:
    path = root / "state" / f"done-{job}.json"
    return json.loads(path.read_text()) if path.exists() else None


def started(root: Path, job: int) -> bool:
    return (root / "state" / f"started-{job}").exists()


def wait_for(predicate: Callable[[], Any], timeout: float = DEADLINE) -> None:
    poll_until(lambda: bool(predicate()), timeout=timeout, what="the worker's condition")


class Worker:
    """``certlc worker`` in its own process, run from the project folder, its output in a file."""

    def __init__(self, root: Path, *argv: str) -> None:
        self.log = root / "worker.log"
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "certlc.cli", "worker", "--max-polling-interval", "0.2", *argv]
        with self.log.open("w") as out:
            self.process = subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text()

    def wait_for_line(self, text: str, count: int = 1) -> None:
        wait_for(lambda: self.output().count(text) >= count or self.process.poll() is not None)
        assert self.output().count(text) >= count, self.output()

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)


@contextlib.contextmanager
def worker(root: Path, *argv: str) -> Iterator[Worker]:
    running = Worker(root, *argv)
    try:
        running.wait_for_line("Host started")  # the signal handlers are in place from here
        yield running
    finally:
        if running.process.poll() is None:
            running.process.kill()
        running.process.wait(timeout=10)


def poison_messages(root: Path, name: str) -> list[Any]:
    return list(queue(root, f"{name}-poison").peek_messages(max_messages=5))


@pytest.mark.timeout(60)
def test_sigterm_lets_the_invocation_in_flight_finish_and_takes_nothing_new(app_root: Path) -> None:
    jobs = queue(app_root, settings(app_root)["JOBS"])
    with worker(app_root, "--grace", "20") as running:
        send(jobs, {"job": 1, "seconds": 2})
        wait_for(lambda: started(app_root, 1))
        running.signal(signal.SIGTERM)
        running.wait_for_line("Stopping: no new messages")
        waiting = send(jobs, {"job": 2})
        assert running.process.wait(timeout=DEADLINE) == 0, running.output()
    assert seen(app_root, 1) == {"dequeue_count": 1, "greeting": "hello"}
    assert not started(app_root, 2)
    assert [m.content for m in jobs.peek_messages(max_messages=5)] == [waiting]
    assert jobs.get_queue_properties().approximate_message_count == 1  # job 1's message was deleted
    assert poison_messages(app_root, jobs.queue_name) == []


@pytest.mark.timeout(60)
def test_sigterm_past_the_grace_exits_and_hands_the_message_back(app_root: Path) -> None:
    jobs = queue(app_root, settings(app_root)["JOBS"])
    with worker(app_root, "--grace", "1") as running:
        text = send(jobs, {"job": 1, "seconds": 120})
        wait_for(lambda: started(app_root, 1))
        asked = time.monotonic()
        running.signal(signal.SIGTERM)
        assert running.process.wait(timeout=DEADLINE) == 0, running.output()
        assert time.monotonic() - asked < 10
    assert "1 queue message(s) handed back" in running.output()
    assert seen(app_root, 1) is None
    # visible again now, not when the 10-minute lease ends; the interrupted attempt counts, nothing was poisoned
    [message] = jobs.receive_messages(max_messages=5, visibility_timeout=30)
    assert (message.content, message.dequeue_count) == (text, 2)
    assert poison_messages(app_root, jobs.queue_name) == []


@pytest.mark.timeout(90)
def test_sighup_reloads_the_settings_between_messages_and_refuses_a_broken_file(app_root: Path) -> None:
    first = settings(app_root)
    moved = {**first, "JOBS": f"{first['JOBS']}-moved", "GREETING": "bonjour"}
    jobs, moved_jobs = queue(app_root, first["JOBS"]), queue(app_root, moved["JOBS"])
    with worker(app_root) as running:
        send(jobs, {"job": 1, "seconds": 2})
        wait_for(lambda: started(app_root, 1))
        write_settings(app_root, moved)
        running.signal(signal.SIGHUP)
        running.wait_for_line("settings reloaded")
        assert seen(app_root, 1) == {"dequeue_count": 1, "greeting": "hello"}  # finished under its own settings

        send(moved_jobs, {"job": 2})  # the new queue name, the new greeting
        wait_for(lambda: seen(app_root, 2))
        assert seen(app_root, 2) == {"dequeue_count": 1, "greeting": "bonjour"}

        (app_root / "local.settings.json").write_text('{"Values": {"GREETING": "typo",}}')
        running.signal(signal.SIGHUP)
        running.wait_for_line("settings not reloaded")
        write_settings(app_root, {k: v for k, v in moved.items() if k != "Jobs"})  # parses, but no connection
        running.signal(signal.SIGHUP)
        running.wait_for_line("settings not reloaded", count=2)

        send(moved_jobs, {"job": 3})
        wait_for(lambda: seen(app_root, 3))
        assert seen(app_root, 3) == {"dequeue_count": 1, "greeting": "bonjour"}
        running.signal(signal.SIGTERM)
        assert running.process.wait(timeout=DEADLINE) == 0
    lines = running.output().splitlines()
    refused = [line for line in lines if "settings not reloaded" in line]
    assert len(refused) == 2
    assert "local.settings.json is not a Functions local.settings.json" in refused[0]
    assert "Jobs__queueServiceUri" in refused[1]
    assert len([line for line in lines if "settings reloaded" in line]) == 1
    assert "Traceback" not in running.output()


@pytest.mark.timeout(60)
def test_a_handed_back_message_is_not_settled_by_its_invocation(azurite: Any) -> None:
    """The invocation goes on after the hand-back and fails: with maxDequeueCount 1 that would poison it."""
    name = f"handback-{uuid.uuid4().hex[:12]}"
    raw, poison = raw_queue_pair({"Jobs": azurite.connection_string}, "Jobs", name)
    running, release = threading.Event(), threading.Event()

    def handler(*_: Any) -> None:
        running.set()
        release.wait(DEADLINE)
        raise RuntimeError("failed after its message was handed back")

    poller = QueuePoller(raw, poison, handler, QueueOptions(max_dequeue_count=1))
    poller.ensure_queues()
    raw.send_message(base64.b64encode(b'{"job": 1}').decode())
    try:
        assert poller.poll_once() == 1
        assert running.wait(DEADLINE)
        assert poller.hand_back() == 1
    finally:
        release.set()
        assert poller.wait_settled(DEADLINE)
        poller.close()
    [message] = raw.receive_messages(max_messages=5, visibility_timeout=30)
    assert message.dequeue_count == 2
    assert list(poison.peek_messages(max_messages=5)) == []


@pytest.mark.timeout(60)
def test_sigterm_while_a_reload_waits_for_an_invocation_stops_without_reloading(app_root: Path) -> None:
    jobs = queue(app_root, settings(app_root)["JOBS"])
    with worker(app_root, "--grace", "20") as running:
        send(jobs, {"job": 1, "seconds": 2})
        wait_for(lambda: started(app_root, 1))
        write_settings(app_root, {**settings(app_root), "GREETING": "bonjour"})
        running.signal(signal.SIGHUP)
        running.wait_for_line("Reloading the settings")
        running.signal(signal.SIGTERM)
        assert running.process.wait(timeout=DEADLINE) == 0, running.output()
    assert seen(app_root, 1) == {"dequeue_count": 1, "greeting": "hello"}
    assert "settings reloaded" not in running.output()
    assert jobs.get_queue_properties().approximate_message_count == 0
