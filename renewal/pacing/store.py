"""The shared budget in one blob of the renewal lock's container, changed only by conditional writes.

Every instance and every ``certlc worker`` reads the budget, decides with ``renewal.pacing.budget`` and writes it
back only if nobody wrote it meanwhile (its etag); on a conflict it reads again. Inside a process, creates of one
vault contend one at a time, so threads do not conflict with each other. Two storage calls per create, beside the
lock's four to seven; the budget stays small (the last window's grants).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from renewal.ledger import LockUnavailable
from renewal.pacing.budget import Budget, Grant, Limits, after_throttle, book, take
from renewal.pacing.limits import KeyKind

log = logging.getLogger("certlc.pacing")

BLOB_NAME = "_certlc/keyvault-budget.json"  # beside the renewal records (vault/name): no vault name has "_"
CONFLICT_RETRIES = 50
DEFAULT_SUBSCRIPTION = "default"


class Paced(Exception):
    """No create for this vault soon: the request goes back to the queue for ``delay_seconds`` (its booked turn)."""

    def __init__(self, vault: str, reason: str, delay_seconds: float) -> None:
        super().__init__(f"Key Vault's create budget for {vault} is spent ({reason}); back in {delay_seconds:.0f} s")
        self.vault = vault
        self.reason = reason
        self.delay_seconds = delay_seconds


class Pacer(Protocol):
    def acquire(self, vault: str, kind: KeyKind) -> float | None:
        """Return once a create of ``kind`` may go to ``vault`` (the grant's time, as the budget records it); raise
        ``Paced`` when that is not soon."""
        ...

    def throttled(self, vault: str, retry_after: float | None) -> float:
        """Key Vault answered a create 429: pause the vault; the seconds until it may be asked again."""
        ...


class Unpaced:
    """``CERTLC_PACING=off``, and dry runs: every create goes at once; a 429 is retried as any outage is."""

    def acquire(self, vault: str, kind: KeyKind) -> float | None:
        return None

    def throttled(self, vault: str, retry_after: float | None) -> float:
        return float(retry_after or 0)


class BlobPacer:
    def __init__(
        self,
        container: Any,
        limits: Limits,
        subscriptions: Mapping[str, str],  # every configured vault's subscription (any name that groups them)
        max_wait: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._blob = container.get_blob_client(BLOB_NAME)
        self._container = container
        self._limits = limits
        self._subscriptions = {vault.lower(): group for vault, group in subscriptions.items()}
        self._max_wait = max_wait
        self._clock = clock
        self._sleep = sleep
        self._local: dict[str, threading.Lock] = {}
        self._local_guard = threading.Lock()

    def acquire(self, vault: str, kind: KeyKind) -> float:
        vault = vault.lower()
        deadline = time.monotonic() + self._max_wait
        with self._local_guard:
            local = self._local.setdefault(vault, threading.Lock())
        if not local.acquire(timeout=self._max_wait):  # this process's other creates of the vault are waiting
            self._send_back(vault, kind, "vault_full", self._limits.window)
        try:
            while True:
                grant = self._change(
                    lambda b, now: take(b, vault, kind.create_cost, now, self._limits, self._peers(vault))
                )
                if grant.granted:
                    return grant.budget.vaults[vault].grants[-1][0]
                left = deadline - time.monotonic()
                if grant.wait_seconds > left:
                    self._send_back(vault, kind, grant.reason, grant.wait_seconds)
                self._sleep(grant.wait_seconds + random.uniform(0, self._limits.window / 100))
        finally:
            local.release()

    def throttled(self, vault: str, retry_after: float | None) -> float:
        vault = vault.lower()
        try:
            budget = self._change(lambda b, now: _written(after_throttle(b, vault, now, retry_after, self._limits)))
        except LockUnavailable as exc:  # the pause is then this request's alone
            log.warning("could not record Key Vault's 429 in the shared budget: %s", exc)
            return float(retry_after or self._limits.window / 10)
        return max(0.0, budget.budget.vaults[vault].paused_until - self._clock())

    def _send_back(self, vault: str, kind: KeyKind, reason: str, wait: float) -> None:
        subscription = self._subscriptions.get(vault, DEFAULT_SUBSCRIPTION)
        booked: dict[str, float] = {}

        def booking(budget: Budget, now: float) -> Grant:
            changed, booked["delay"] = book(
                budget, vault, subscription, kind.create_cost, now + wait, now, self._limits
            )
            return _written(changed)

        try:
            self._change(booking)
        except LockUnavailable as exc:
            log.warning("could not book a turn in the shared budget: %s", exc)
            booked["delay"] = wait
        raise Paced(vault, reason, booked["delay"])

    def _subscription(self, vault: str) -> str:
        return self._subscriptions.get(vault, DEFAULT_SUBSCRIPTION)

    def _peers(self, vault: str) -> set[str]:
        """The vaults whose creates count against ``vault``'s subscription ceiling, ``vault`` included."""
        subscription = self._subscription(vault)
        return {v for v, group in self._subscriptions.items() if group == subscription} | {vault}

    def _change(self, decide: Callable[[Budget, float], Grant]) -> Grant:
        """Read the budget, decide, and write what the decision changed under the etag read; again on a conflict."""
        from azure.core import MatchConditions
        from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError

        for _ in range(CONFLICT_RETRIES):
            budget, etag = self._read()
            grant = decide(budget, self._clock())
            if not grant.granted:
                return grant
            try:
                if etag is None:
                    self._blob.upload_blob(grant.budget.to_json().encode(), overwrite=False)
                else:
                    self._blob.upload_blob(
                        grant.budget.to_json().encode(),
                        overwrite=True,
                        etag=etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
                return grant
            except (ResourceModifiedError, ResourceExistsError):
                continue  # another instance wrote it: decide again on what it wrote
            except AzureError as exc:
                raise LockUnavailable(f"cannot write Key Vault's shared budget: {exc}") from exc
        raise LockUnavailable(f"Key Vault's shared budget changed under {CONFLICT_RETRIES} writes in a row")

    def _read(self) -> tuple[Budget, str | None]:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            found = self._blob.download_blob()
            return Budget.from_json(found.readall().decode("utf-8", "replace")), found.properties.etag
        except ResourceNotFoundError:
            return Budget(), None
        except AzureError as exc:
            raise LockUnavailable(f"cannot read Key Vault's shared budget: {exc}") from exc


def _written(budget: Budget) -> Grant:
    """A change that is always written (a pause, a booking), in the shape ``_change`` takes."""
    return Grant(True, "granted", 0.0, budget)
