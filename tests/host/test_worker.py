"""``certlc worker`` and ``certlc dev`` from the command line, on a small app of their own, against Azurite."""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from localazure.ports import poll_until

from certlc.host import worker

pytestmark = pytest.mark.azurite

REPO = Path(__file__).resolve().parents[2]

APP = """
import json
import os
import pathlib

import azure.functions as func

app = func.FunctionApp()


@app.function_name("handle")
@app.queue_trigger(arg_name="msg", queue_name="%JOBS%", connection="Jobs")
def handle(msg: func.QueueMessage) -> None:
    body = json.loads(msg.get_body())
    if body.get("fail"):
        raise RuntimeError("asked to fail")
    done = pathlib.Path(os.environ["DONE_DIR"]) / f"{body['job']}.json"
    written = done.with_suffix(".tmp")  # whole or not at all: the test reads the folder while this runs
    written.write_text(json.dumps({"job": body["job"], "dequeue_count": msg.dequeue_count}))
    written.replace(done)


@app.function_name("onevent")
@app.event_grid_trigger(arg_name="event")
def onevent(event: func.EventGridEvent) -> None:
    pass


@app.function_name("tick")
@app.timer_trigger(arg_name="timer", schedule="%TICK_SCHEDULE%")
def tick(timer: func.TimerRequest) -> None:
    pass
"""


@pytest.fixture
def script_root(tmp_path: Path, azurite: Any) -> Path:
    """A Functions project folder: function_app.py, host.json and local.settings.json."""
    root = tmp_path / "app"
    (root / "done").mkdir(parents=True)
    (root / "function_app.py").write_text(APP)
    queues = {"batchSize": 2, "maxDequeueCount": 1, "visibilityTimeout": "00:00:01"}
    (root / "host.json").write_text(json.dumps({"version": "2.0", "extensions": {"queues": queues}}))
    values = {
        "Jobs": azurite.connection_string,
        "JOBS": f"jobs-{uuid.uuid4().hex[:12]}",
        "DONE_DIR": str(root / "done"),
        "TICK_SCHEDULE": "0 0 * * * *",
    }
    (root / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    return root


def settings(root: Path) -> dict[str, str]:
    return json.loads((root / "local.settings.json").read_text())["Values"]


@pytest.fixture
def jobs(script_root: Path) -> Any:
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.queue import QueueClient

    values = settings(script_root)
    queue = QueueClient.from_connection_string(values["Jobs"], values["JOBS"])
    with contextlib.suppress(ResourceExistsError):
        queue.create_queue()
    return queue


def send(queue: Any, body: dict[str, Any]) -> str:
    text = base64.b64encode(json.dumps(body).encode()).decode()
    queue.send_message(text)
    return text


def done(root: Path) -> dict[int, int]:
    results = (json.loads(path.read_text()) for path in (root / "done").glob("*.json"))
    return {result["job"]: result["dequeue_count"] for result in results}


@pytest.fixture
def isolated_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The command copies app settings into os.environ and imports function_app: undo both afterwards."""
    monkeypatch.setattr(os, "environ", dict(os.environ))
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("function_app"):
            del sys.modules[name]


def worker_args(root: Path, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    worker.add_arguments(parser)
    return parser.parse_args(["--script-root", str(root), "--settings", str(root / "local.settings.json"), *argv])


@pytest.mark.usefixtures("isolated_process")
def test_worker_drain_runs_queue_functions_only(
    script_root: Path, jobs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    for job in (1, 2, 3):
        send(jobs, {"job": job})
    poisoned = send(jobs, {"job": 4, "fail": True})
    # TICK_SCHEDULE is missing on this machine: a worker never resolves timer or Event Grid bindings
    (script_root / "local.settings.json").write_text(
        json.dumps({"Values": {k: v for k, v in settings(script_root).items() if k != "TICK_SCHEDULE"}})
    )
    assert worker.run(worker_args(script_root, "--drain", "--timeout", "30")) == 0
    assert done(script_root) == {1: 1, 2: 1, 3: 1}
    assert "processed 4 message(s)" in capsys.readouterr().out
    assert jobs.get_queue_properties().approximate_message_count == 0
    from azure.storage.queue import QueueClient

    poison = QueueClient.from_connection_string(settings(script_root)["Jobs"], f"{jobs.queue_name}-poison")
    assert [m.content for m in poison.peek_messages(max_messages=5)] == [poisoned]


@pytest.mark.usefixtures("isolated_process")
def test_worker_without_a_connection_says_what_to_set(script_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    values = {k: v for k, v in settings(script_root).items() if k != "Jobs"}
    (script_root / "local.settings.json").write_text(json.dumps({"Values": values}))
    os.environ.pop("Jobs", None)
    assert worker.run(worker_args(script_root, "--drain")) == 2
    assert "Jobs__queueServiceUri" in capsys.readouterr().err


@pytest.mark.usefixtures("isolated_process")
def test_worker_with_identity_based_connection_targets_the_service_uri(script_root: Path) -> None:
    from certlc.host.host import load_app

    values = {k: v for k, v in settings(script_root).items() if k != "Jobs"}
    values["Jobs__queueServiceUri"] = "https://certlcstore.queue.core.windows.net"
    host = worker.build_worker(load_app(script_root), values, script_root / "host.json")
    assert list(host.functions) == ["handle"]
    assert host.queue_names == [values["JOBS"]]
    assert host.queue_urls == [f"https://certlcstore.queue.core.windows.net/{values['JOBS']}"]


@contextlib.contextmanager
def certlc(root: Path, *argv: str) -> Iterator[subprocess.Popen[str]]:
    """``certlc <argv>`` in its own process, run from the project folder like an operator would."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "certlc.cli", *argv],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def test_certlc_worker_polls_until_sigterm(script_root: Path, jobs: Any) -> None:
    with certlc(script_root, "worker", "--max-polling-interval", "0.2") as process:
        send(jobs, {"job": 7})
        poll_until(
            lambda: done(script_root) == {7: 1} or process.poll() is not None, timeout=20, what="job 7 done once"
        )
        assert process.poll() is None, process.communicate()
        time.sleep(2)  # idle polling: about 10 empty polls of the queue
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
        assert process.returncode == 0
    lines = (out + err).splitlines()
    assert not [line for line in lines if "Request URL" in line or "Response status" in line], lines[:5]
    assert len(lines) < 20, lines  # the worker's own lines, not the SDKs' per-request logging


def test_certlc_dev_serves_the_eventgrid_webhook_until_sigterm(script_root: Path) -> None:
    with certlc(script_root, "dev", "--port", "0", "--no-timers") as process:
        assert process.stdout is not None
        url = ""
        while not url:
            line = process.stdout.readline()
            assert line, process.communicate()
            if line.strip().startswith("onevent: "):
                url = line.split(": ", 1)[1].strip()
        session = requests.Session()
        session.trust_env = False
        validation = [
            {
                "id": "1",
                "topic": "/subscriptions/0",
                "subject": "",
                "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
                "eventTime": "2024-01-01T00:00:00Z",
                "data": {"validationCode": "abc"},
                "dataVersion": "1",
            }
        ]
        response = session.post(url, json=validation, headers={"aeg-event-type": "SubscriptionValidation"})
        assert response.json() == {"validationResponse": "abc"}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
