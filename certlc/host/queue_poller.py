"""A storage-queue poller with the Functions host's queue-trigger semantics (``host.json`` ``extensions.queues``).

- a batch of up to ``batchSize`` messages is leased and run in parallel, one thread per message, and the
  next batch is fetched as soon as no more than ``newBatchThreshold`` are still running (default
  ``batchSize / 2``), so one slow invocation never holds the messages behind it;
- a leased message is invisible for ``LEASE`` (10 minutes, the host's fixed value), and the lease is renewed
  halfway through for as long as its function runs, as the host's queue listener does, so a long renewal is
  never delivered a second time meanwhile; settling uses the pop receipt of the latest renewal;
- success deletes the message;
- a message handed back by a worker that stops before its invocation finishes is visible again at once, and
  that invocation no longer settles it;
- failure makes it visible again after ``visibilityTimeout``, or, once its dequeue count has reached
  ``maxDequeueCount``, moves the original message text to ``<queue>-poison``; a body the ``messageEncoding``
  cannot decode goes there at once, as in the queues extension 5.x (Azure/azure-sdk-for-net#18326);
- an empty queue is polled with exponential back-off from 100 ms up to ``maxPollingInterval``.

The poller speaks raw message text on the wire and decodes bodies itself as ``messageEncoding`` says (``base64``,
the host's default, or ``none``: the text as it is), so a poisoned message lands in the poison queue byte for byte
as it was sent. The handler gets
what the host sends the worker: the body as TypedData and the trigger metadata (``Id``, ``DequeueCount``,
``InsertionTime``, ``ExpirationTime``, ``NextVisibleTime``, ``PopReceipt``); the queue converter of
``azure.functions`` makes the ``func.QueueMessage`` from them.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azure.functions.meta import Datum

from renewal.queue import ensure_queue

log = logging.getLogger("certlc.host")

MIN_POLLING_INTERVAL = 0.1
LEASE = 600.0  # the host's queue listener leases each message for 10 minutes and renews that while it runs
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2}(?:\.\d+)?)$")


def parse_timespan(value: str | int | float, setting: str) -> float:
    """Seconds in a host.json TimeSpan (``[d.]hh:mm:ss[.fff]``); a bare number means milliseconds."""
    if isinstance(value, int | float):
        return float(value) / 1000
    match = _TIMESPAN.match(value.strip())
    if not match:
        raise ValueError(f"host.json {setting}: {value!r} is not a TimeSpan like '00:01:00'")
    days, hours, minutes, seconds = match.groups()
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


MESSAGE_ENCODINGS = ("base64", "none")
SUCCEEDED, FAILED, UNDECODABLE = "succeeded", "failed", "undecodable"  # how one invocation of a message ended


def encode_message(text: str, encoding: str) -> str:
    """A queue message's text as the host writes it for ``messageEncoding``."""
    return base64.b64encode(text.encode("utf-8")).decode("ascii") if encoding == "base64" else text


@dataclass(frozen=True)
class QueueOptions:
    """``extensions.queues`` with the host's defaults for anything left out."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0
    max_polling_interval: float = 60.0
    lease: float = LEASE  # how long a leased message stays invisible; renewed halfway while its function runs
    message_encoding: str = "base64"  # the trigger's and the queue output's: "base64" or "none"

    @classmethod
    def from_host_json(cls, path: Path) -> QueueOptions:
        try:
            host = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read {path}: {exc}") from None
        queues: Mapping[str, Any] = host.get("extensions", {}).get("queues", {})
        defaults = cls()
        batch_size = int(queues.get("batchSize", defaults.batch_size))
        encoding = str(queues.get("messageEncoding", defaults.message_encoding)).lower()
        if encoding not in MESSAGE_ENCODINGS:
            raise ValueError(
                f"host.json queues.messageEncoding: {encoding!r} is not one of {', '.join(MESSAGE_ENCODINGS)}"
            )
        return cls(
            message_encoding=encoding,
            batch_size=batch_size,
            new_batch_threshold=int(queues.get("newBatchThreshold", batch_size // 2)),
            max_dequeue_count=int(queues.get("maxDequeueCount", defaults.max_dequeue_count)),
            visibility_timeout=parse_timespan(
                queues.get("visibilityTimeout", "00:00:00"), "extensions.queues.visibilityTimeout"
            ),
            max_polling_interval=parse_timespan(
                queues.get("maxPollingInterval", "00:01:00"), "extensions.queues.maxPollingInterval"
            ),
        )


Handler = Callable[[Datum, Mapping[str, Datum]], None]


def _time(moment: Any) -> Datum | None:
    return None if moment is None else Datum(type="string", value=moment.isoformat())


def trigger_payload(message: Any, body: bytes) -> tuple[Datum, dict[str, Datum]]:
    """A leased message as the host hands it to the worker: the body, then the trigger metadata."""
    try:
        datum = Datum(type="string", value=body.decode("utf-8"))
    except UnicodeDecodeError:
        datum = Datum(type="bytes", value=body)
    metadata = {
        "Id": Datum(type="string", value=message.id),
        "DequeueCount": Datum(type="json", value=json.dumps(message.dequeue_count)),
        "InsertionTime": _time(message.inserted_on),
        "ExpirationTime": _time(message.expires_on),
        "NextVisibleTime": _time(message.next_visible_on),
        "PopReceipt": Datum(type="string", value=message.pop_receipt),
    }
    return datum, {key: value for key, value in metadata.items() if value is not None}


@dataclass
class _Lease:
    """One lease of one message: the pop receipt of its latest renewal, and when to renew it next. ``lock``
    keeps a renewal and the settlement from using the receipt at the same time."""

    message: Any
    receipt: str
    renew_at: float
    lock: threading.Lock = field(default_factory=threading.Lock)


class QueuePoller:
    """Feeds one queue to one handler; ``poll_once`` leases and starts one batch, ``run`` is the polling loop."""

    def __init__(self, queue: Any, poison: Any, handler: Handler, options: QueueOptions) -> None:
        self._queue = queue
        self._poison = poison
        self._handler = handler
        self._options = options
        self._pool = ThreadPoolExecutor(
            max_workers=options.batch_size + options.new_batch_threshold,
            thread_name_prefix=f"queue-{queue.queue_name}",
        )
        self._settled = threading.Condition()
        self._in_flight = 0
        self._receiving = 0  # polls under way: what they lease is invisible before it counts as in flight
        self._processed = 0
        self._leased: dict[tuple[str, str], _Lease] = {}  # until its invocation settles it or it is handed back
        self._closing = threading.Event()
        self._keeper: threading.Thread | None = None  # renews the leases; started with the first one

    @property
    def busy(self) -> bool:
        """True while a leased message is not yet settled."""
        with self._settled:
            return self._in_flight > 0 or self._receiving > 0

    @property
    def processed(self) -> int:
        """Messages settled so far (deleted, released for retry or poisoned)."""
        with self._settled:
            return self._processed

    @property
    def queue_name(self) -> str:
        return self._queue.queue_name

    @property
    def queue_url(self) -> str:
        """The queue's address without any SAS token."""
        return self._queue.url.split("?", 1)[0]

    def ensure_queues(self) -> None:
        """Create the queue and its poison queue if missing, as the host does."""
        for client in (self._queue, self._poison):
            ensure_queue(client)

    def has_visible_messages(self) -> bool:
        return bool(self._queue.peek_messages(max_messages=1))

    def _has_room(self) -> bool:
        return self._in_flight <= self._options.new_batch_threshold

    def poll_once(self) -> int:
        """Lease a batch and start it if no more than ``newBatchThreshold`` messages are running; returns how many."""
        with self._settled:
            if not self._has_room():
                return 0
            self._receiving += 1  # busy from here: a drain must not see an empty queue and an idle poller
        try:
            batch = list(
                self._queue.receive_messages(
                    messages_per_page=self._options.batch_size,
                    max_messages=self._options.batch_size,
                    visibility_timeout=max(1, round(self._options.lease)),
                )
            )
            renew_at = time.monotonic() + self._options.lease / 2
            with self._settled:
                if batch and self._keeper is None:
                    self._keeper = threading.Thread(
                        target=self._keep_leases, name=f"lease-{self.queue_name}", daemon=True
                    )
                    self._keeper.start()
                for message in batch:
                    self._in_flight += 1
                    self._leased[_lease(message)] = _Lease(message, message.pop_receipt, renew_at)
                self._settled.notify_all()  # the keeper learns of the new leases
        finally:
            with self._settled:
                self._receiving -= 1
                self._settled.notify_all()
        for message in batch:
            self._pool.submit(self._process, message)
        return len(batch)

    def run(self, stop: threading.Event, max_polling_interval: float | None = None) -> None:
        """Poll until ``stop`` is set; an empty queue doubles the wait up to the polling cap."""
        cap = self._options.max_polling_interval if max_polling_interval is None else max_polling_interval
        interval = MIN_POLLING_INTERVAL
        while not stop.is_set():
            with self._settled:  # wait for room; look at ``stop`` now and then
                if not self._settled.wait_for(self._has_room, timeout=MIN_POLLING_INTERVAL):
                    continue
            try:
                leased = self.poll_once()
            except Exception as exc:  # storage down or throttled: keep polling, like the host
                log.warning("Polling queue %r failed: %s", self.queue_name, (str(exc) or repr(exc)).splitlines()[0])
                leased = 0
            if leased:
                interval = MIN_POLLING_INTERVAL
                continue
            stop.wait(min(interval, cap))
            interval = min(interval * 2, max(cap, MIN_POLLING_INTERVAL))

    def wait_settled(self, timeout: float | None = None) -> bool:
        """Wait until no leased message is left unsettled; False if some still are after ``timeout`` seconds."""
        with self._settled:
            return self._settled.wait_for(lambda: self._in_flight == 0 and self._receiving == 0, timeout)

    def hand_back(self) -> int:
        """Make the messages whose invocations are still running visible again now; returns how many.

        For a worker that stops before they finish: the message was never deleted, and handing it back lets
        the next worker take it at once rather than when its lease ends. Its invocation will not settle it
        (delete, retry or poison) any more, whatever it does before the process exits."""
        with self._settled:
            leases = list(self._leased.values())
            self._leased.clear()
        for lease in leases:
            with lease.lock:
                try:
                    self._queue.update_message(lease.message.id, lease.receipt, visibility_timeout=0)
                except Exception as exc:  # storage down: it comes back when its lease ends instead
                    log.warning("Handing back message %s on %r failed: %s", lease.message.id, self.queue_name, exc)
        return len(leases)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._closing.set()
        with self._settled:
            self._settled.notify_all()
        if self._keeper is not None:
            self._keeper.join()

    def _keep_leases(self) -> None:
        """Renews each running message's lease halfway through it, until the poller closes."""
        while not self._closing.is_set():
            with self._settled:
                due = [lease for lease in self._leased.values() if lease.renew_at <= time.monotonic()]
                if not due:
                    next_at = min((lease.renew_at for lease in self._leased.values()), default=None)
                    wait = MIN_POLLING_INTERVAL * 10 if next_at is None else next_at - time.monotonic()
                    self._settled.wait(max(0.0, min(wait, MIN_POLLING_INTERVAL * 10)))
                    continue
            for lease in due:
                self._renew(lease)

    def _renew(self, lease: _Lease) -> None:
        """One renewal: the message stays invisible for another lease, under the receipt the update returns. A
        renewal that fails is tried again sooner; once the message is settled or handed back, or the queue says it is
        gone or leased to someone else (its lease lapsed), it is left alone, as the host's listener does."""
        from azure.core.exceptions import HttpResponseError

        with lease.lock:
            with self._settled:
                if self._leased.get(_lease(lease.message)) is not lease:
                    return
            try:
                updated = self._queue.update_message(
                    lease.message.id, lease.receipt, visibility_timeout=max(1, round(self._options.lease))
                )
            except Exception as exc:  # 400/404: deleted, or leased again; else storage down: try again sooner
                gone = isinstance(exc, HttpResponseError) and exc.status_code in (400, 404)
                lease.renew_at = math.inf if gone else time.monotonic() + min(60.0, self._options.lease / 4)
                what = "is no longer this lease's" if gone else "could not be renewed"
                log.warning("Message %s on %r %s: %s", lease.message.id, self.queue_name, what, exc)
                return
            lease.receipt = updated.pop_receipt
            lease.renew_at = time.monotonic() + self._options.lease / 2

    def _process(self, message: Any) -> None:
        try:
            self._settle(message)
        except Exception as exc:  # settling failed (storage down): the lease lapses and the message comes back
            log.warning("Settling message %s on %r failed: %s", message.id, self.queue_name, exc)
        finally:
            with self._settled:
                self._in_flight -= 1
                self._processed += 1
                self._settled.notify_all()

    def _settle(self, message: Any) -> None:
        outcome = self._invoke(message)
        with self._settled:
            lease = self._leased.pop(_lease(message), None)
        if lease is None:  # handed back: no longer this invocation's to settle
            return
        with lease.lock:  # after any renewal under way: settle with the latest receipt
            if outcome == SUCCEEDED:
                self._queue.delete_message(message.id, lease.receipt)
            else:
                self._settle_failure(message, lease.receipt, at_once=outcome == UNDECODABLE)

    def _invoke(self, message: Any) -> str:
        if self._options.message_encoding == "none":
            body = (message.content or "").encode("utf-8", "surrogatepass")
        else:
            try:
                body = base64.b64decode(message.content or "", validate=True)
            except (binascii.Error, ValueError):
                log.error("Message %s on %r is not valid base64 (messageEncoding base64)", message.id, self.queue_name)
                return UNDECODABLE
        try:
            self._handler(*trigger_payload(message, body))
        except Exception:  # the invoker logged it; the message decides its own fate in _settle
            return FAILED
        return SUCCEEDED

    def _settle_failure(self, message: Any, receipt: str, *, at_once: bool = False) -> None:
        """Try again after ``visibilityTimeout``, or poison it: after ``maxDequeueCount`` attempts, or at once
        for a body the encoding cannot read (the queues extension 5.x does so: retrying cannot help)."""
        if at_once or (message.dequeue_count or 0) >= self._options.max_dequeue_count:
            self._poison.send_message(message.content)
            self._queue.delete_message(message.id, receipt)
            log.warning(
                "Message %s moved to %r after %d attempts", message.id, self._poison.queue_name, message.dequeue_count
            )
            return
        self._queue.update_message(message.id, receipt, visibility_timeout=round(self._options.visibility_timeout))


def _lease(message: Any) -> tuple[str, str]:
    """One lease of one message, by the receipt it was received with: a message received again after its lease
    lapsed is another lease."""
    return message.id, message.pop_receipt


def raw_queue_pair(env: Mapping[str, str], connection: str, queue_name: str) -> tuple[Any, Any]:
    """Clients on ``queue_name`` and ``<queue_name>-poison`` that pass message text through unchanged."""
    from certlc.host.bindings import connection_queue

    raw = {"message_encode_policy": None, "message_decode_policy": None}
    return (
        connection_queue(env, connection, queue_name, **raw),
        connection_queue(env, connection, f"{queue_name}-poison", **raw),
    )
