"""The lock between instances and the record of a renewal in flight: one Azure Storage blob per certificate.

Key Vault's single pending operation (409 on a second create) guards only while an operation is in
progress: an instance that read the old version before another merged can still create and merge a third
version. So a renewal holds a **lease on its certificate's blob** from the first read to the merge. A blob
lease is atomic, lapses by itself when its holder dies (``CERTLC_LOCK_SECONDS``, 15-60 s, renewed in the
background while the renewal runs), is what the Functions host itself uses for singletons and timers,
works with the managed identity (Storage Blob Data Contributor on this one container) and runs on Azurite.

The blob also holds the renewal's **record** (:class:`RenewalRecord`): who owns the renewal (its
correlation id), the Key Vault pending operation, the CA request and, once the CA has answered, the issued
chain (public data). Every later event, redelivery, sweep or retry follows the record instead of asking
the CA again, and a crash between the CA's answer and the merge merges the recorded chain.

**Fencing.** A holder can be paused (a long GC, a frozen VM, SIGSTOP) past its lease while another takes the
lock and renews. So a holder writes its record, with what it is about to do, right before every side effect:
storage refuses a write under a lease that lapsed or passed to another holder (412), and the holder stops
(:class:`LockLost`) before it touches Key Vault or the CA. What is left is the gap between that write and the
effect itself (docs/RELIABILITY.md).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

log = logging.getLogger("certlc.ledger")

CONTAINER_DEFAULT = "certlc-locks"
LEASE_SECONDS_DEFAULT = 60
WAIT_SECONDS = 10.0  # how long to wait for a lock another instance holds before leaving the message for later
WAIT_POLL = 0.25
STALE_AFTER = timedelta(minutes=15)  # an owner this late for its next step is taken to be gone


class LockUnavailable(Exception):
    """The lock store could not be reached or the lease was lost: transient, retry later."""


class LockLost(LockUnavailable):
    """This holder's lease lapsed or passed to another holder: it must not act again for this renewal."""


RESTING_STATES = ("pending", "retrying")  # written just before a holder lets the lock go on purpose
LOST_LEASE_CODES = ("LeaseNotPresentWithBlobOperation", "LeaseIdMismatchWithBlobOperation", "LeaseLost")


@dataclass(frozen=True)
class RenewalRecord:
    """What one renewal has done so far; ``owner`` is its correlation id."""

    owner: str
    state: str  # "working" or "issued" while its owner holds the lock; "pending" or "retrying" between attempts;
    # "merged" once done (the record then names a replaced version, so nobody follows it)
    next_action_at: datetime  # when the owner acts next; past it by STALE_AFTER, anyone may take over
    version: str | None = None  # the certificate version being renewed: a record for another is leftover
    kv_request_id: str | None = None
    ca: str | None = None
    ca_request_id: str | None = None
    chain_pem: tuple[str, ...] = ()
    intent: str | None = None  # the side effect its owner wrote this record just before (the fence)
    notified: bool = False  # the renewal's notice went out: a redelivery after the merge does not send it again

    def is_live(self, now: datetime) -> bool:
        return now <= self.next_action_at + STALE_AFTER

    def owner_will_return(self, now: datetime) -> bool:
        """Its owner let the lock go on purpose (waiting for the CA, or backing off) and is not late yet.

        A record in any other state was written by a holder of the lock; whoever holds the lock now knows that
        holder is gone or fenced off (its next write fails), so it may take the renewal over at once."""
        return self.state in RESTING_STATES and self.is_live(now)

    def to_json(self) -> str:
        body = asdict(self) | {"next_action_at": self.next_action_at.isoformat(), "chain_pem": list(self.chain_pem)}
        return json.dumps({"schema": "certlc.renewal-record/1", **body})

    @classmethod
    def from_json(cls, text: str) -> RenewalRecord | None:
        """The record in a blob; None for an empty blob or one certlc did not write (a broken record is no lock)."""
        if not text.strip():
            return None
        try:
            body = json.loads(text)
            if body.pop("schema", None) != "certlc.renewal-record/1":
                return None
            body["next_action_at"] = datetime.fromisoformat(body["next_action_at"])
            body["chain_pem"] = tuple(body.get("chain_pem") or ())
            return cls(**body)
        except (ValueError, TypeError, KeyError):
            log.warning("ignoring an unreadable renewal record")
            return None

    def advance(self, **changes: Any) -> RenewalRecord:
        return replace(self, **changes)


class Held(Protocol):
    """A certificate's lock while it is held: the record as found, and writes under the lease."""

    record: RenewalRecord | None

    def save(self, record: RenewalRecord) -> None: ...

    def clear(self) -> None: ...

    def save_if_unchanged(self, record: RenewalRecord) -> None:
        """After the lease was lost: write only if nobody wrote the record since this holder did."""
        ...


STATE_METADATA = "state"  # blob metadata: the record's state, so one listing finds the unfinished renewals
CLEARED = "cleared"
FINISHED_STATES = ("merged", CLEARED)


class Ledger(Protocol):
    def hold(self, vault: str, name: str) -> contextlib.AbstractContextManager[Held | None]:
        """The certificate's lock, or None when another instance holds it."""
        ...

    def peek(self, vault: str, name: str) -> RenewalRecord | None:
        """The record without taking the lock (the sweep's view)."""
        ...

    def unfinished(self, vault: str) -> set[str]:
        """The names (lower case) of a vault's certificates whose renewal record is not finished."""
        ...


def blob_name(vault: str, name: str) -> str:
    return f"{vault.lower()}/{name.lower()}"


@dataclass
class _HeldBlob:
    blob: Any
    lease: Any
    record: RenewalRecord | None
    lease_seconds: float = LEASE_SECONDS_DEFAULT
    renewed_at: float = field(default_factory=time.monotonic)  # the lease's last acquisition or renewal
    etag: str | None = None  # the blob as this holder last read or wrote it
    lost: threading.Event = field(default_factory=threading.Event)

    def save(self, record: RenewalRecord) -> None:
        self._write(record.to_json(), record.state)
        self.record = record

    def clear(self) -> None:
        self._write("", CLEARED)
        self.record = None

    def save_if_unchanged(self, record: RenewalRecord) -> None:
        """Bookkeeping after this holder's effects are done (its notice recorded), when storage dropped the lease
        meanwhile (an outage): written without the lease, but only while the blob is as this holder left it (its
        etag) and nobody holds a lease on it, so it can never overwrite another holder's record."""
        from azure.core import MatchConditions
        from azure.core.exceptions import AzureError

        try:
            written = self.blob.upload_blob(
                record.to_json().encode(),
                overwrite=True,
                metadata={STATE_METADATA: record.state},
                etag=self.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except AzureError as exc:
            raise LockLost(f"the renewal record changed or is leased elsewhere: {_first_line(exc)}") from exc
        self.etag, self.record = written.get("etag"), record

    def _write(self, text: str, state: str) -> None:
        """Every write is a fence: refused by storage once the lease lapsed or passed to another holder."""
        from azure.core.exceptions import AzureError, HttpResponseError

        if self.lost.is_set() or time.monotonic() - self.renewed_at >= self.lease_seconds:
            self.lost.set()
            raise LockLost("this holder's lease on the renewal lock lapsed (it was paused or cut off)")
        try:
            written = self.blob.upload_blob(
                text.encode(), overwrite=True, lease=self.lease, metadata={STATE_METADATA: state}
            )
            self.etag = written.get("etag")
        except HttpResponseError as exc:
            code = getattr(exc.error_code, "value", exc.error_code)  # the SDK's StorageErrorCode, or a string
            if exc.status_code == 412 and code in LOST_LEASE_CODES:
                self.lost.set()
                raise LockLost(f"the renewal lock passed to another holder: {exc.error_code}") from exc
            raise LockUnavailable(f"cannot write the renewal record: {_first_line(exc)}") from exc
        except AzureError as exc:
            raise LockUnavailable(f"cannot write the renewal record: {_first_line(exc)}") from exc


class BlobLedger:
    """Blob leases in one container; the container and each certificate's blob are created on first use."""

    def __init__(
        self, container: Any, lease_seconds: int = LEASE_SECONDS_DEFAULT, wait_seconds: float = WAIT_SECONDS
    ) -> None:
        if not 15 <= lease_seconds <= 60:
            raise ValueError(f"a blob lease lasts 15 to 60 seconds, not {lease_seconds}")
        self._container = container
        self._lease_seconds = lease_seconds
        self._wait_seconds = wait_seconds
        self._container_ready = False

    def _blob(self, vault: str, name: str) -> Any:
        return self._container.get_blob_client(blob_name(vault, name))

    def _ensure_blob(self, blob: Any) -> None:
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

        for _ in range(2):
            try:
                with contextlib.suppress(ResourceExistsError):  # exists, or leased by another instance
                    blob.upload_blob(b"", overwrite=False)
                return
            except ResourceNotFoundError:  # the container itself is missing
                with contextlib.suppress(ResourceExistsError):
                    self._container.create_container()

    @contextlib.contextmanager
    def hold(self, vault: str, name: str) -> Iterator[Held | None]:
        from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError

        blob = self._blob(vault, name)
        deadline = time.monotonic() + self._wait_seconds
        while True:
            try:
                lease = blob.acquire_lease(lease_duration=self._lease_seconds)
                break
            except ResourceNotFoundError:  # this certificate's first renewal: make its blob, then lease it
                try:
                    self._ensure_blob(blob)
                except AzureError as exc:
                    raise LockUnavailable(f"cannot create the renewal lock: {_first_line(exc)}") from exc
            except HttpResponseError as exc:
                if exc.status_code != 409:
                    raise LockUnavailable(f"cannot take the renewal lock: {_first_line(exc)}") from exc
                if time.monotonic() >= deadline:  # LeaseAlreadyPresent: another instance is at work on it
                    yield None
                    return
                time.sleep(WAIT_POLL)
            except AzureError as exc:
                raise LockUnavailable(f"cannot take the renewal lock: {_first_line(exc)}") from exc
        acquired_at = time.monotonic()
        try:
            found = blob.download_blob()
            text = found.readall().decode("utf-8", "replace")
            held = _HeldBlob(blob, lease, RenewalRecord.from_json(text), self._lease_seconds, acquired_at)
            held.etag = found.properties.etag
        except BaseException:
            _release(lease)
            raise
        stop = threading.Event()
        keeper = threading.Thread(
            target=self._keep, args=(held, stop), name=f"lease-{blob_name(vault, name)}", daemon=True
        )
        keeper.start()
        try:
            yield held
        finally:
            stop.set()
            keeper.join()
            _release(lease)

    def _keep(self, held: _HeldBlob, stop: threading.Event) -> None:
        """Renew the lease every third of its duration until ``stop``; a failed renewal marks it lost. A renewal
        that comes after the lease ran out (the process was paused) does not count: another holder may have come
        and gone meanwhile, so the holder is fenced off all the same."""
        while not stop.wait(self._lease_seconds / 3):
            started = time.monotonic()
            try:
                held.lease.renew()
            except Exception as exc:
                log.warning("renewal lock lease could not be renewed: %s", _first_line(exc))
                held.lost.set()
                return
            if started - held.renewed_at >= self._lease_seconds:
                log.warning("renewal lock lease ran out before it was renewed; this holder stops")
                held.lost.set()
                return
            held.renewed_at = started

    def peek(self, vault: str, name: str) -> RenewalRecord | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return RenewalRecord.from_json(self._read(self._blob(vault, name)))
        except ResourceNotFoundError:
            return None

    def unfinished(self, vault: str) -> set[str]:
        """The certificates of a vault whose renewal is not finished, from one listing (each record's state is kept in
        its blob's metadata): the sweep looks at these even when they are not due, so an orphan is taken over. A
        record written before the metadata existed counts while it is not empty."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        prefix = f"{vault.lower()}/"
        try:
            listed = list(self._container.list_blobs(name_starts_with=prefix, include=["metadata"]))
        except ResourceNotFoundError:  # no renewal has run yet
            return set()
        except AzureError as exc:
            raise LockUnavailable(f"cannot list the renewal records: {_first_line(exc)}") from exc
        return {
            blob.name[len(prefix) :]
            for blob in listed
            if (blob.metadata or {}).get(STATE_METADATA, "" if blob.size else CLEARED) not in FINISHED_STATES
        }

    @staticmethod
    def _read(blob: Any) -> str:
        return blob.download_blob().readall().decode("utf-8", "replace")


def _release(lease: Any) -> None:
    try:
        lease.release()
    except Exception as exc:  # it lapses by itself within the lease duration
        log.warning("renewal lock lease could not be released: %s", _first_line(exc))


def _first_line(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0]


def lock_container(env: Any, **options: Any) -> Any:
    """The renewal lock's container (``CERTLC_LOCK_CONTAINER``): the records, the sweep's heartbeat, the targets."""
    from renewal.clients import blob_container_client

    return blob_container_client(env, (env.get("CERTLC_LOCK_CONTAINER") or "").strip() or CONTAINER_DEFAULT, **options)


def ledger_from_env(env: Any) -> BlobLedger:
    from renewal.setting_values import whole_number_setting

    seconds = whole_number_setting(env, "CERTLC_LOCK_SECONDS", LEASE_SECONDS_DEFAULT, low=15, high=60, unit="seconds")
    return BlobLedger(lock_container(env), seconds)


class _Unrecorded:
    record: RenewalRecord | None = None

    def save(self, record: RenewalRecord) -> None:
        pass

    def clear(self) -> None:
        pass

    def save_if_unchanged(self, record: RenewalRecord) -> None:
        pass


class DryRunLedger:
    """For ``renew --dry-run``: no lease, no record, nothing written."""

    @contextlib.contextmanager
    def hold(self, vault: str, name: str) -> Iterator[Held | None]:
        yield _Unrecorded()

    def peek(self, vault: str, name: str) -> RenewalRecord | None:
        return None

    def unfinished(self, vault: str) -> set[str]:
        return set()
