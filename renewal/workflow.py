"""One renewal, end to end: gather once, decide with ``renewal.decide``, act through adapters.

Idempotent by construction: Key Vault's single pending operation per certificate is the
lock, a request names the version it is about (so a replaced version is a no-op), and a
merged version carries the correlation id of the renewal that made it (so a redelivered
message after a crash notifies instead of issuing again).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from renewal import tags as T
from renewal.backoff import Backoff
from renewal.ca.base import CaError, CaUnavailable, CertificateAuthority, Denied, Issued, Pending
from renewal.csrcheck import CsrMismatch, check_csr_against_policy
from renewal.decide import Input, Verdict, WindowSettings, check_request, decide, is_within_escalation
from renewal.keyvault import CertificateSnapshot, KeyVault, KeyVaultError, PendingExists, PendingGone
from renewal.messages import RenewalRequest
from renewal.vaults import Vault
from renewal.x509info import csr_to_pem, pem_chain_to_der, same_public_key

log = logging.getLogger("certlc.renewal")

Status = Literal["renewed", "skipped", "rejected", "failed", "retrying", "pending"]


@dataclass(frozen=True)
class Result:
    status: Status
    reason: str
    message: str
    request: RenewalRequest
    new_version: str | None = None
    retry_in_seconds: int | None = None


class Reporter(Protocol):
    """Where outcomes go besides the queue: notifications and the audit trail."""

    def audit(self, event: str, request: RenewalRequest, **fields: Any) -> None: ...

    def renewed(
        self, request: RenewalRequest, before: CertificateSnapshot, after: CertificateSnapshot, ca: str
    ) -> None: ...

    def failed(
        self, request: RenewalRequest, cert: CertificateSnapshot | None, reason: str, message: str, *, escalate: bool
    ) -> None: ...


class Retries(Protocol):
    def send(self, request: RenewalRequest, delay_seconds: int = 0) -> None: ...


class FailedSink(Protocol):
    def add(self, request: RenewalRequest | None, raw: str, reason: str, message: str, now: datetime) -> None: ...


@dataclass
class _Progress:
    request: RenewalRequest


class KeyedLocks:
    """One lock per key, created on demand and dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


class Transient(Exception):
    def __init__(self, reason: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after


class Permanent(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class RenewalWorkflow:
    vaults: Mapping[str, Vault]
    keyvault_for: Callable[[Vault], KeyVault]
    ca_for: Callable[[str], CertificateAuthority]
    retries: Retries
    failed_store: FailedSink
    reporter: Reporter
    settings: WindowSettings = field(default_factory=WindowSettings)
    backoff: Backoff = field(default_factory=Backoff)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    dry_run: bool = False
    _locks: KeyedLocks = field(default_factory=lambda: KeyedLocks(), repr=False)

    def handle(self, request: RenewalRequest) -> Result:
        """Renew one certificate; renewals of the same certificate in this process run one at a time.

        Taking the lock before the first read means a duplicate message waiting here reads the
        version the first one merged and stops as superseded. Across processes, Key Vault's
        single pending operation (409) is the lock.
        """
        with self._locks.hold(f"{request.vault.lower()}/{request.name.lower()}"):
            return self._handle(request)

    def _handle(self, request: RenewalRequest) -> Result:
        progress = _Progress(request)  # the newest form of the request, for retries that follow a failure
        now = self.clock()
        rejected = check_request(Input(request, self.vaults, None, now, self.settings))
        if rejected:
            return self._finish_permanent(request, None, rejected.reason, rejected.message, status="rejected")
        kv = self.keyvault_for(self.vaults[request.vault.lower()])
        cert: CertificateSnapshot | None = None
        try:
            cert = kv.get(request.name)
            if cert and request.version is None:
                request = progress.request = replace(request, version=cert.version)
            if cert and T.tag(cert.tags, T.CORRELATION) == request.correlation_id:
                return self._already_merged(request, cert)
            verdict = decide(Input(request, self.vaults, cert, now, self.settings))
            if verdict.outcome == "skip":
                self.reporter.audit("skipped", request, reason=verdict.reason, detail=verdict.message)
                return Result("skipped", verdict.reason, verdict.message, request)
            if verdict.outcome != "renew":
                raise Permanent(verdict.reason, verdict.message)
            assert cert is not None
            if self.dry_run:
                return Result("skipped", "dry_run", f"would renew: {verdict.message}", request)
            return self._renew(kv, progress, cert, verdict)
        except _Deferred as exc:
            return Result("retrying", exc.reason, str(exc), request, retry_in_seconds=self._in_flight_wait)
        except Transient as exc:
            return self._retry(progress.request, cert, exc.reason, str(exc), exc.retry_after)
        except KeyVaultError as exc:
            if exc.transient:
                return self._retry(progress.request, cert, "keyvault_unavailable", str(exc), exc.retry_after_seconds)
            return self._finish_permanent(request, cert, "keyvault_error", str(exc))
        except CaUnavailable as exc:
            return self._retry(progress.request, cert, "ca_unavailable", str(exc), exc.retry_after_seconds)
        except CaError as exc:
            return self._finish_permanent(request, cert, "ca_error", str(exc))
        except Permanent as exc:
            return self._finish_permanent(request, cert, exc.reason, str(exc))

    def _renew(self, kv: KeyVault, progress: _Progress, cert: CertificateSnapshot, verdict: Verdict) -> Result:
        request = progress.request
        ca = self.ca_for(verdict.ca or self.settings.default_ca)
        if request.attempt == 1 and not request.ca_request_id:
            self.reporter.audit(
                "renewal_initiated",
                request,
                old_version=cert.version,
                ca=ca.name,
                profile=verdict.profile,
                trigger=request.reason,
            )
        if request.ca_request_id:
            csr = self._pending_csr(kv, request)
            result = ca.poll(request.ca_request_id)
        else:
            csr, request = self._obtain_csr(kv, request, cert)
            progress.request = request
            try:
                check_csr_against_policy(csr, cert.policy)
            except CsrMismatch as exc:
                kv.delete_pending(request.name)
                raise Permanent("csr_policy_mismatch", f"the CSR does not match the policy: {exc}") from exc
            self.reporter.audit("submitted", request, ca=ca.name, profile=verdict.profile)
            result = ca.submit(csr_to_pem(csr), verdict.profile or "")
        if isinstance(result, Denied):
            kv.delete_pending(request.name)
            self.reporter.audit("denied", request, ca=ca.name, detail=result.reason)
            raise Permanent("ca_denied", f"the CA {ca.name!r} denied the request: {result.reason}")
        if isinstance(result, Pending):
            waiting = replace(request, ca_request_id=result.request_id, ca_profile=verdict.profile)
            self.reporter.audit("pending", waiting, ca=ca.name, ca_request_id=result.request_id, detail=result.detail)
            self.retries.send(waiting, result.retry_after_seconds)
            return Result(
                "pending",
                "ca_pending",
                result.detail or "the CA has not decided yet",
                waiting,
                retry_in_seconds=result.retry_after_seconds,
            )
        assert isinstance(result, Issued)
        self.reporter.audit("issued", request, ca=ca.name)
        return self._merge(kv, request, cert, csr, result, ca.name)

    def _obtain_csr(
        self, kv: KeyVault, request: RenewalRequest, cert: CertificateSnapshot
    ) -> tuple[bytes, RenewalRequest]:
        """A CSR from a new pending operation, or from one this renewal left behind on an earlier try."""
        new_tags = T.carried_tags(cert.tags)
        try:
            op = kv.create_pending(request.name, cert.policy, new_tags)
            self.reporter.audit("csr_created", request, kv_request_id=op.request_id)
        except PendingExists:
            op = kv.get_pending(request.name)
            if op is None:  # finished between the two calls: look again on the next attempt
                raise Transient("pending_vanished", "the pending operation disappeared; retrying") from None
            if op.status in ("failed", "cancelled"):
                kv.delete_pending(request.name)
                op = kv.create_pending(request.name, cert.policy, new_tags)
                self.reporter.audit("csr_created", request, kv_request_id=op.request_id, replaced_failed=True)
            elif op.request_id != request.kv_request_id:
                # Someone else's renewal may be in flight: wait one round before taking it over.
                deferred = request.next_attempt(kv_request_id=op.request_id)
                self.reporter.audit(
                    "retried", deferred, reason="in_flight_elsewhere", delay_seconds=self._in_flight_wait
                )
                self.retries.send(deferred, self._in_flight_wait)
                raise _Deferred(
                    f"a pending operation ({op.request_id}) is already in flight; checking again later"
                ) from None
            else:
                self.reporter.audit("csr_reused", request, kv_request_id=op.request_id)
        if not op.csr:
            raise Permanent("no_csr", "Key Vault returned a pending operation without a CSR")
        return op.csr, replace(request, kv_request_id=op.request_id)

    @property
    def _in_flight_wait(self) -> int:
        """How long to leave another worker's pending operation alone before taking it over."""
        return 2 * self.backoff.base_seconds

    def _pending_csr(self, kv: KeyVault, request: RenewalRequest) -> bytes:
        op = kv.get_pending(request.name)
        if op is None or not op.csr:
            raise Permanent(
                "pending_lost",
                "the pending operation for the CA request is gone (cancelled or deleted); "
                "run `certlc failed retry` to start a new renewal",
            )
        return op.csr

    def _merge(
        self, kv: KeyVault, request: RenewalRequest, before: CertificateSnapshot, csr: bytes, issued: Issued, ca: str
    ) -> Result:
        today = self.clock().strftime("%Y-%m-%d")
        tags = T.carried_tags(before.tags) | {T.CORRELATION: request.correlation_id, T.LAST_OUTCOME: f"renewed {today}"}
        try:
            after = kv.merge(request.name, pem_chain_to_der(issued.chain_pem), tags)
        except PendingGone as exc:
            after = kv.get(request.name)
            if not (after and after.cer and same_public_key(after.cer, csr)):
                raise Permanent(
                    "pending_lost", "the pending operation vanished before the merge and no version carries its key"
                ) from exc
        except KeyVaultError as exc:
            if not exc.transient:
                kv.delete_pending(request.name)
            raise
        self.reporter.audit("merged", request, old_version=before.version, new_version=after.version)
        self._notify_renewed(request, before, after, ca)
        return Result(
            "renewed",
            "renewed",
            f"{request.name!r} renewed as version {after.version}",
            request,
            new_version=after.version,
        )

    def _already_merged(self, request: RenewalRequest, cert: CertificateSnapshot) -> Result:
        self.reporter.audit("merged", request, new_version=cert.version, recovered=True)
        self._notify_renewed(request, cert, cert, "unknown")
        return Result(
            "renewed",
            "already_merged",
            f"{request.name!r} was already renewed as {cert.version}",
            request,
            new_version=cert.version,
        )

    def _notify_renewed(
        self, request: RenewalRequest, before: CertificateSnapshot, after: CertificateSnapshot, ca: str
    ) -> None:
        try:
            self.reporter.renewed(request, before, after, ca)
        except Exception:  # a failed notification never turns into a second issuance
            log.exception("renewal notification for %s/%s failed", request.vault, request.name)

    def _retry(
        self,
        request: RenewalRequest,
        cert: CertificateSnapshot | None,
        reason: str,
        message: str,
        retry_after: int | None,
    ) -> Result:
        if self.backoff.exhausted(request.attempt):
            return self._finish_permanent(
                request, cert, "retries_exhausted", f"gave up after {request.attempt} attempts; last error: {message}"
            )
        delay = self.backoff.delay(request.attempt, retry_after)
        nxt = request.next_attempt()
        self.reporter.audit("retried", nxt, reason=reason, detail=message, delay_seconds=delay)
        self.retries.send(nxt, delay)
        return Result("retrying", reason, message, nxt, retry_in_seconds=delay)

    def _finish_permanent(
        self,
        request: RenewalRequest,
        cert: CertificateSnapshot | None,
        reason: str,
        message: str,
        status: Status = "failed",
    ) -> Result:
        now = self.clock()
        self.failed_store.add(request, request.to_json(), reason, message, now)
        if cert is not None:
            self._withdraw_pending(cert)
            self._mark_failed(cert, reason, now)
        self.reporter.audit("rejected" if status == "rejected" else "failed", request, reason=reason, detail=message)
        escalate = bool(cert and is_within_escalation(cert, now, self.settings))
        try:
            self.reporter.failed(request, cert, reason, message, escalate=escalate)
        except Exception:
            log.exception("failure alert for %s/%s could not be sent", request.vault, request.name)
        return Result(status, reason, message, request)

    def _withdraw_pending(self, cert: CertificateSnapshot) -> None:
        """A renewal that has given up leaves no pending operation behind; a re-drive starts clean."""
        try:
            self.keyvault_for(self.vaults[cert.vault.lower()]).delete_pending(cert.name)
        except Exception:
            log.warning("could not delete the pending operation of %s/%s", cert.vault, cert.name, exc_info=True)

    def _mark_failed(self, cert: CertificateSnapshot, reason: str, now: datetime) -> None:
        """Tag the version so the sweep stops re-queueing it until an operator re-drives it."""
        try:
            tags = dict(cert.tags) | {T.LAST_OUTCOME: f"failed {reason} {now:%Y-%m-%d}"}
            self.keyvault_for(self.vaults[cert.vault.lower()]).update_tags(cert.name, cert.version, tags)
        except Exception:  # bookkeeping only: the failed store and the alert already carry the failure
            log.warning("could not tag %s/%s with its failure", cert.vault, cert.name, exc_info=True)


class _Deferred(Transient):
    """Already re-enqueued by the step that raised it."""

    def __init__(self, message: str) -> None:
        super().__init__("in_flight_elsewhere", message)
