"""The queue poller's lease against Azurite: renewed while a function runs, as the host's queue listener does, and
settled with the receipt of the latest renewal."""

from __future__ import annotations

import base64
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from localazure.ports import poll_until

from certlc.host.queue_poller import QueueOptions, QueuePoller, raw_queue_pair

pytestmark = [pytest.mark.azurite, pytest.mark.timeout(60)]

LEASE = 2.0  # seconds: the function below runs past two renewals
DEADLINE = 20.0


@dataclass
class SlowFunction:
    """Runs until released (or ``seconds``), counting its invocations; fails when told to."""

    seconds: float = 0.0
    fail: bool = False
    calls: int = 0
    running: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def __call__(self, *_: Any) -> None:
        self.calls += 1
        self.running.set()
        self.release.wait(self.seconds or DEADLINE)
        if self.fail:
            raise RuntimeError("the function failed")


def _poller(azurite: Any, function: SlowFunction, **options: Any) -> tuple[QueuePoller, Any, Any]:
    raw, poison = raw_queue_pair({"Jobs": azurite.connection_string}, "Jobs", f"lease-{uuid.uuid4().hex[:12]}")
    poller = QueuePoller(raw, poison, function, QueueOptions(lease=LEASE, **options))
    poller.ensure_queues()
    raw.send_message(base64.b64encode(b'{"job": 1}').decode())
    return poller, raw, poison


def _poll_while_it_runs(poller: QueuePoller, function: SlowFunction) -> None:
    """Start the message's invocation, then poll as the host does until it ends: a lease that lapsed meanwhile
    would hand the message out again."""
    assert poller.poll_once() == 1
    assert function.running.wait(DEADLINE)

    def ended() -> bool:
        poller.poll_once()
        return not poller.busy

    poll_until(ended, timeout=DEADLINE, interval=0.2, what=lambda: f"the end of its {function.calls} invocation(s)")


def test_a_function_running_past_its_lease_is_delivered_once_and_then_deleted(azurite: Any) -> None:
    function = SlowFunction(seconds=3 * LEASE)
    poller, raw, _ = _poller(azurite, function)
    try:
        _poll_while_it_runs(poller, function)
    finally:
        poller.close()
    assert function.calls == 1
    assert list(raw.peek_messages(max_messages=5)) == []  # deleted under the latest renewal's receipt


def test_a_failure_after_renewals_is_released_for_retry_with_the_latest_receipt(azurite: Any) -> None:
    """Released for its retry delay (``visibilityTimeout``) under the latest receipt: invisible for that delay,
    then back with one delivery counted, not poisoned."""
    function = SlowFunction(seconds=1.5 * LEASE, fail=True)
    poller, raw, poison = _poller(azurite, function, max_dequeue_count=5, visibility_timeout=3.0)
    try:
        _poll_while_it_runs(poller, function)
    finally:
        poller.close()
    assert function.calls == 1
    assert list(raw.peek_messages(max_messages=5)) == []  # held back for the retry delay
    poll_until(lambda: list(raw.peek_messages(max_messages=5)), timeout=DEADLINE, interval=0.2, what="the retry")
    assert [m.dequeue_count for m in raw.peek_messages(max_messages=5)] == [1]
    assert list(poison.peek_messages(max_messages=5)) == []


def test_a_message_handed_back_after_renewals_is_visible_at_once(azurite: Any) -> None:
    function = SlowFunction()
    poller, raw, _ = _poller(azurite, function)
    try:
        assert poller.poll_once() == 1
        assert function.running.wait(DEADLINE)
        time.sleep(1.5 * LEASE)  # past the first lease: only a renewal keeps the message hidden now
        assert list(raw.peek_messages(max_messages=5)) == []
        assert poller.hand_back() == 1  # with the renewal's receipt
        assert len(list(raw.peek_messages(max_messages=5))) == 1
    finally:
        function.release.set()
        poller.close()
    assert function.calls == 1


def test_a_message_deleted_while_its_function_runs_is_not_renewed_again(azurite: Any, caplog: Any) -> None:
    """The queue says the message is gone (an operator cleared the queue): one warning, no renewal after it."""
    function = SlowFunction()
    poller, raw, _ = _poller(azurite, function)
    try:
        assert poller.poll_once() == 1
        assert function.running.wait(DEADLINE)
        raw.clear_messages()
        with caplog.at_level("WARNING", logger="certlc.host"):
            time.sleep(3 * LEASE)  # the renewals due meanwhile: the first finds the message gone, none follows
    finally:
        function.release.set()
        poller.close()
    said = [r.getMessage() for r in caplog.records if "renewed" in r.getMessage() or "no longer" in r.getMessage()]
    assert len(said) == 1 and "is no longer this lease's" in said[0], said


def test_a_poll_under_way_is_busy_while_what_it_leased_is_not_yet_running(azurite: Any) -> None:
    """A drain asks "anything visible, anything busy?": a message another thread has just leased is invisible,
    so the poller must already say busy, or the drain ends before the message runs."""
    function = SlowFunction(seconds=0.1)
    poller, raw, _ = _poller(azurite, function)
    receive, leased, go_on = raw.receive_messages, threading.Event(), threading.Event()

    def receive_then_wait(**options: Any) -> list[Any]:
        batch = list(receive(**options))
        leased.set()
        go_on.wait(DEADLINE)
        return batch

    raw.receive_messages = receive_then_wait
    polling = threading.Thread(target=poller.poll_once)
    polling.start()
    try:
        assert leased.wait(DEADLINE)
        assert list(raw.peek_messages(max_messages=5)) == []  # leased: invisible
        assert poller.busy
    finally:
        go_on.set()
        polling.join(DEADLINE)
        assert poller.wait_settled(DEADLINE)
        poller.close()
    assert function.calls == 1 and not poller.busy
