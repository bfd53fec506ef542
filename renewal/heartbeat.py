"""The sweep's heartbeat: each run leaves when it ran, on which host, and its counts.

Nothing else notices that certlc itself stopped (a broken deployment, a schedule setting gone wrong): the sweep is
the safety net, so its absence is the failure to catch. Each run writes one small JSON blob in the renewal lock's
container (``certlc doctor`` and ``certlc status`` read it with the storage settings they already have) and one
``CertlcHeartbeat_CL`` row (``ingestion.heartbeat``), which the heartbeat alert in infra/alerts.json watches.

Writing is best effort and bounded: a heartbeat that cannot be written is logged, never a reason for the sweep to
fail, and the sweep waits for it at most ``WRITE_DEADLINE_SECONDS``. ``heartbeat_verdict`` is the one place that
decides when a heartbeat is late (older than two intervals of the sweep's schedule).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from renewal.clock import iso_utc

log = logging.getLogger("certlc.heartbeat")

SCHEMA = "certlc.sweep-heartbeat/1"
# In the lock container beside the renewal records (``vault/name``): no Key Vault name has an underscore.
BLOB_NAME = "_certlc/sweep-heartbeat.json"
WRITE_DEADLINE_SECONDS = 30.0  # the sweep waits no longer for its heartbeat
LATE_AFTER_INTERVALS = 2


class HeartbeatUnavailable(Exception):
    """The heartbeat blob could not be read (storage settings, identity, network); the message says which."""


@dataclass(frozen=True)
class Heartbeat:
    """One sweep run: when it finished, on which host, and what it did."""

    at: datetime
    host: str
    queued: int
    taken_over: int
    in_flight: int
    warned: int
    errors: int
    past_due: bool = False

    def to_json(self) -> str:
        return json.dumps({"schema": SCHEMA, **asdict(self), "at": iso_utc(self.at)})

    @classmethod
    def from_json(cls, text: str) -> Heartbeat | None:
        """The heartbeat in a blob; None for one certlc did not write in this form."""
        try:
            body = json.loads(text)
            if not isinstance(body, dict) or body.pop("schema", None) != SCHEMA:
                return None
            at = datetime.fromisoformat(str(body.pop("at")).replace("Z", "+00:00"))
            if at.tzinfo is None:
                return None
            return cls(at=at, **body)
        except (ValueError, TypeError, KeyError):
            return None

    def counts(self) -> str:
        return (
            f"{self.queued} queued, {self.taken_over} taken over, {self.in_flight} in flight, "
            f"{self.warned} warned, {self.errors} errors"
        )


def heartbeat_of(report: Any, at: datetime, *, past_due: bool = False, host: str | None = None) -> Heartbeat:
    """The heartbeat of one ``renewal.sweep.SweepReport``."""
    return Heartbeat(
        at=at,
        host=host or socket.gethostname(),
        queued=len(report.enqueued),
        taken_over=len(report.taken_over),
        in_flight=len(report.in_flight),
        warned=len(report.warned),
        errors=len(report.errors),
        past_due=past_due,
    )


@dataclass(frozen=True)
class HeartbeatVerdict:
    """``state``: ok; waiting (no sweep yet, and none due twice since the store was made); late; or never.
    ``message`` says what was seen, ``fix`` what to check (empty unless late or never)."""

    state: Literal["ok", "waiting", "late", "never"]
    message: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.state in ("ok", "waiting")


LATE_FIX = (
    "check that the Function App runs and its sweep function is indexed (certlc doctor --app), that "
    "CERTLC_SWEEP_SCHEDULE is the schedule you meant, and the app's logs for errors of the sweep"
)


def heartbeat_verdict(
    last: Heartbeat | None, now: datetime, interval: timedelta, since: datetime | None = None
) -> HeartbeatVerdict:
    """Late once the last sweep is older than two intervals: one missed run may be a restart, two are not.

    With no heartbeat at all, ``since`` (when the heartbeat's container was made, by the deployment or the first
    renewal) tells a new deployment still waiting for its first sweep from one whose sweep never ran."""
    limit = LATE_AFTER_INTERVALS * interval
    if last is None:
        if since is None or now - since <= limit:
            return HeartbeatVerdict("waiting", f"no sweep has run yet; one is due every {_span(interval)}")
        return HeartbeatVerdict(
            "never", f"no sweep has left a heartbeat in the {_span(now - since)} since its container was made", LATE_FIX
        )
    age = now - last.at
    seen = f"last sweep {iso_utc(last.at)} on {last.host} ({last.counts()})"
    if age > limit:
        return HeartbeatVerdict(
            "late", f"{seen}: late, {_span(age)} ago, the schedule runs every {_span(interval)}", LATE_FIX
        )
    return HeartbeatVerdict("ok", f"{seen}, {_span(max(age, timedelta(0)))} ago")


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h" if hours < 48 else f"{hours // 24} days"


def write_heartbeat(env: Mapping[str, str], heartbeat: Heartbeat, deadline: float = WRITE_DEADLINE_SECONDS) -> bool:
    """Write the blob and the Log Analytics row, each on its own, within ``deadline`` seconds; never raises.

    True when both were written (the row counts as written when no Logs Ingestion target is set)."""
    written: list[bool] = []

    def work() -> None:
        written.append(_write_blob(env, heartbeat))
        written.append(_write_row(env, heartbeat))

    worker = threading.Thread(target=work, name="certlc-heartbeat", daemon=True)
    worker.start()
    worker.join(deadline)
    if worker.is_alive():
        log.warning("sweep heartbeat not written within %.0f s; the sweep goes on without it", deadline)
        return False
    return all(written)


def _write_blob(env: Mapping[str, str], heartbeat: Heartbeat) -> bool:
    from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

    try:
        container = heartbeat_container(env)
        with container:
            blob = container.get_blob_client(BLOB_NAME)
            try:
                blob.upload_blob(heartbeat.to_json().encode("utf-8"), overwrite=True)
            except ResourceNotFoundError:  # the container itself is missing: the first run ever
                with contextlib.suppress(ResourceExistsError):
                    container.create_container()
                blob.upload_blob(heartbeat.to_json().encode("utf-8"), overwrite=True)
        return True
    except Exception as exc:  # best effort: the sweep's own work is done
        log.warning("sweep heartbeat blob not written: %s", _first_line(exc))
        return False


def _write_row(env: Mapping[str, str], heartbeat: Heartbeat) -> bool:
    if not env.get("CERTLC_DCE_ENDPOINT", "").strip():
        return True  # no Logs Ingestion target, as for the audit trail: nothing to send
    try:
        from ingestion.heartbeat import upload_heartbeat

        upload_heartbeat(env, heartbeat)
        return True
    except Exception as exc:
        log.warning("sweep heartbeat row not sent to Log Analytics: %s", _first_line(exc))
        return False


def heartbeat_container(env: Mapping[str, str], **options: Any) -> Any:
    """The renewal lock's container (``CERTLC_LOCK_CONTAINER``), where the heartbeat blob lives."""
    from renewal.ledger import lock_container

    return lock_container(env, **options)


def read_heartbeat(env: Mapping[str, str], timeout: float) -> tuple[Heartbeat | None, datetime | None]:
    """The last sweep's heartbeat (None when no sweep wrote one) and when its container was last changed (None when
    it does not exist); ``HeartbeatUnavailable`` when storage cannot say."""
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    from renewal.errors import ConfigError

    try:
        container = heartbeat_container(env, retry_total=0, connection_timeout=timeout, read_timeout=timeout)
    except (ConfigError, ValueError) as exc:
        raise HeartbeatUnavailable(f"cannot read the sweep heartbeat: {exc}") from exc
    with container:
        try:
            since = container.get_container_properties().last_modified
        except ResourceNotFoundError:
            return None, None
        except (AzureError, OSError) as exc:
            raise _unreadable(container.container_name, exc) from exc
        try:
            text = container.get_blob_client(BLOB_NAME).download_blob().readall()
        except ResourceNotFoundError:
            return None, since
        except (AzureError, OSError) as exc:
            raise _unreadable(container.container_name, exc) from exc
    found = Heartbeat.from_json(text.decode("utf-8", "replace"))
    if found is None:
        raise HeartbeatUnavailable(f"{BLOB_NAME} in container {container.container_name} is not a certlc heartbeat")
    return found, since


def _unreadable(container: str, exc: BaseException) -> HeartbeatUnavailable:
    return HeartbeatUnavailable(
        f"cannot read the sweep heartbeat from container {container}: {_first_line(exc)}; "
        "check the storage connection setting and that this identity may read that container"
    )


def _first_line(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0]
