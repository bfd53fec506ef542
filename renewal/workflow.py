"""One renewal, end to end: gather once, decide with ``renewal.decide``, act through adapters.

Exactly once across instances: a renewal holds its certificate's lock (``renewal.ledger``, a blob
lease) from the first read to the merge, and writes what it has done to the certificate's record
(pending operation, CA request, issued chain). Another message for the same certificate finds the
lock taken, or a live record owned by another renewal, and leaves it alone; one whose owner is gone
takes the record over and follows its CA request instead of asking the CA again. A request names the
version it is about (so a replaced version is a no-op), and a merged version carries the correlation
id of the renewal that made it (so a redelivered message after a crash notifies instead of issuing).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from renewal import compromise
from renewal import tags as cert_tags
from renewal.backoff import Backoff, after_transient_failure
from renewal.ca.acme_ari import renewal_window
from renewal.ca.base import (
    CaError,
    CaUnavailable,
    CertificateAuthority,
    Denied,
    Issued,
    Pending,
    RevocationResult,
    Revoked,
)
from renewal.canary import CanarySettings
from renewal.csrcheck import CsrMismatch, check_csr_against_policy
from renewal.decide import (
    Input,
    Reason,
    Verdict,
    WindowSettings,
    ca_of,
    check_request,
    decide,
    facts_of,
    is_within_escalation,
)
from renewal.failures import Failure, Permanent, Transient, failure_outcome
from renewal.keyvault import (
    CertificateSnapshot,
    KeyVault,
    KeyVaultError,
    PendingExists,
    PendingGone,
    PendingOperation,
    with_key_reuse,
)
from renewal.ledger import Held, Ledger, LockLost, LockUnavailable, RenewalRecord
from renewal.messages import NEW_KEY_TRIGGERS, RenewalRequest
from renewal.pacing.limits import key_kind
from renewal.pacing.store import Paced, Pacer, Unpaced
from renewal.pending import pending_action
from renewal.resume import resume_action
from renewal.vaults import Vault
from renewal.x509info import csr_to_pem, der_to_pem, pem_chain_to_der, same_key, same_public_key, thumbprint

if TYPE_CHECKING:
    from renewal.revocation.watch import RevocationWatch

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


class Reports(Protocol):
    """Where outcomes go besides the queue: notifications and the audit trail (``renewal.reporting.Reporter``)."""

    def audit(self, event: str, request: RenewalRequest, **fields: Any) -> None: ...

    def renewed(
        self,
        request: RenewalRequest,
        before: CertificateSnapshot,
        after: CertificateSnapshot,
        ca: str,
        explanation_url: str = "",
    ) -> None:
        """``explanation_url``: the CA's page on why it asked for this renewal early (ACME renewal information)."""
        ...

    def failed(
        self,
        request: RenewalRequest,
        cert: CertificateSnapshot | None,
        reason: str,
        message: str,
        *,
        escalate: bool,
        denied: Denied | None = None,
        permanent: bool = True,
    ) -> None:
        """``denied`` is the CA's refusal, when that is the failure: its request id and its own words;
        ``permanent=False`` when the renewal goes on by itself."""
        ...


class Retries(Protocol):
    def send(self, request: RenewalRequest, delay_seconds: int = 0) -> None: ...


class FailedSink(Protocol):
    def add(self, request: RenewalRequest | None, raw: str, reason: str, message: str, now: datetime) -> None: ...


@dataclass
class Progress:
    """The newest form of the request; the certificate's lock while it is held, and this renewal's record."""

    request: RenewalRequest
    held: Held
    working_for: timedelta
    record: RenewalRecord | None = None

    def note(self, now: datetime, **changes: Any) -> None:
        """Write the record: this renewal owns it and is at work until ``next_action_at`` (default: a while).

        A CA request the request follows is recorded too, so whoever comes next follows it instead of submitting.
        The write is refused (``LockLost``) once this holder's lease lapsed or passed to another holder."""
        changes.setdefault("next_action_at", now + self.working_for)
        changes.setdefault("state", "working")
        changes.setdefault("intent", None)
        changes.setdefault("kv_request_id", self.request.kv_request_id)
        if self.request.ca_request_id:
            changes.setdefault("ca_request_id", self.request.ca_request_id)
        base = self.record or RenewalRecord(owner=self.request.correlation_id, state="working", next_action_at=now)
        self.record = base.advance(owner=self.request.correlation_id, **changes)
        self.held.save(self.record)

    def mark_notified(self, now: datetime) -> None:
        """The notice went out: say so in the record (its version stays the replaced one). Under the lease; if
        storage dropped the lease meanwhile (an outage), without it while nobody else wrote the record since. If
        neither works, a redelivery sends the notice again: the window docs/RELIABILITY.md names."""
        try:
            self.note(now, state="merged", notified=True)
        except LockUnavailable:
            assert self.record is not None  # note() built it before its write failed
            with contextlib.suppress(LockUnavailable):
                self.held.save_if_unchanged(self.record)

    def fence(self, now: datetime, intent: str, **changes: Any) -> None:
        """Right before a side effect: record what is about to happen, under the lease. A holder that lost the
        lock (paused past its lease) fails here, before it touches Key Vault or the CA."""
        changes.setdefault("state", "issued" if self.record and self.record.state == "issued" else "working")
        self.note(now, intent=intent, **changes)


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


@dataclass
class RenewalWorkflow:
    vaults: Mapping[str, Vault]
    keyvault_for: Callable[[Vault], KeyVault]
    ca_for: Callable[[str], CertificateAuthority]
    retries: Retries
    failed_store: FailedSink
    reporter: Reports
    ledger: Ledger
    settings: WindowSettings = field(default_factory=WindowSettings)
    canary: CanarySettings = field(default_factory=CanarySettings)
    backoff: Backoff = field(default_factory=Backoff)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    dry_run: bool = False
    pacer: Pacer = field(default_factory=Unpaced)  # Key Vault's create budget, shared by every instance
    # the targets last seen serving a certificate (vault, name, thumbprint): named in a compromise notice
    serving: Callable[[str, str, str], tuple[str, ...]] = lambda vault, name, thumbprint: ()
    revocation: RevocationWatch | None = None  # what the CAs' CRLs and OCSP responders say (renewal.revocation)
    _locks: KeyedLocks = field(default_factory=lambda: KeyedLocks(), repr=False)

    def handle(self, request: RenewalRequest) -> Result:
        """Renew one certificate under its lock: in this process renewals of it take turns, and across
        instances the blob lease (``renewal.ledger``) keeps every other renewal of it out.

        Taking the lock before the first read means a duplicate message waiting for it reads the
        version the first one merged and stops as superseded.
        """
        rejected = check_request(Input(request, self.vaults, None, self.clock(), self.settings))
        if rejected:
            return self._finish_permanent(request, None, rejected.reason, rejected.message, status="rejected")
        if request.trigger == "issue":  # a first issuance the CA left pending (renewal.issuance)
            return self._issue(request)
        with self._locks.hold(f"{request.vault.lower()}/{request.name.lower()}"):
            try:
                with self.ledger.hold(request.vault, request.name) as held:
                    if held is None:
                        return self._locked_elsewhere(request)
                    return self._handle(Progress(request, held, self._working_for))
            except LockLost as exc:
                return self._lost(request, exc)
            except LockUnavailable as exc:
                return self._retry(request, None, "lock_unavailable", str(exc), None)

    def _issue(self, request: RenewalRequest) -> Result:
        from renewal.issuance import Issuer

        done = Issuer(self).issue(request)
        status: Status = {"issued": "renewed", "failed": "failed", "pending": "pending"}.get(done.status, "skipped")
        return Result(status, done.reason, done.message, done.request or request, new_version=done.version)

    def _handle(self, progress: Progress) -> Result:
        request = progress.request
        now = self.clock()
        kv = self.keyvault_for(self.vaults[request.vault.lower()])
        cert: CertificateSnapshot | None = None
        try:
            cert = kv.current(request.name)
            if cert and request.version is None:
                request = progress.request = replace(request, version=cert.version)
            if cert and cert_tags.tag(cert.tags, cert_tags.CORRELATION) == request.correlation_id:
                return self._already_merged(kv, progress, cert)
            if cert and request.trigger == "compromise" and request.version.lower() != cert.version.lower():
                cert = self._compromise_of_replaced(kv, progress, cert)
            verdict = self._decide(kv, progress, cert, now)
            act = workflow_act(verdict, self.dry_run)
            if act == "stop":
                ours = progress.held.record
                stopped = stopped_by_operator(cert) if ours and ours.owner == request.correlation_id else None
                if stopped and verdict.outcome == "skip":  # under way when the operator disabled or deleted it
                    return self._stop_for_operator(kv, progress, cert, *stopped)
                self.reporter.audit("skipped", request, reason=verdict.reason, detail=verdict.message)
                return Result("skipped", verdict.reason, verdict.message, request)
            if act == "fail":
                raise Permanent(verdict.reason, verdict.message)
            if act == "rehearse":
                return Result("skipped", "dry_run", f"would renew: {verdict.message}", request)
            assert cert is not None
            if act == "finish_compromise":
                return self._finish_compromise(kv, progress, cert, verdict.ca or self.settings.default_ca)
            return self._renew(kv, progress, cert, verdict)
        except Exception as exc:  # anything after the read: never an orphan, never a silent drop
            failure = failure_outcome(exc)
            if failure.unexpected:
                log.exception("renewal of %s/%s failed unexpectedly", request.vault, request.name)
            return self._failed(progress, cert, failure)

    def _failed(self, progress: Progress, cert: CertificateSnapshot | None, failure: Failure) -> Result:
        """Act on what a failure means (``renewal.failures.failure_outcome``): retry, fail for good, or stop."""
        request = progress.request
        if failure.kind == "lost":
            return self._lost(request, LockLost(failure.message))
        if failure.kind == "paced":  # its turn is booked: the same attempt comes back then
            assert failure.retry_after is not None
            return self._come_back(request, cert, failure.reason, failure.message, failure.retry_after, progress)
        if failure.kind == "permanent":
            return self._finish_permanent(
                request, cert, failure.reason, failure.message, progress.held, denied=failure.denied
            )
        if failure.ca_request_id:  # the CA has the request, perhaps issued: the retry follows it, never submits again
            request = progress.request = replace(request, ca_request_id=failure.ca_request_id)
        return self._retry(
            request,
            cert,
            failure.reason,
            failure.message,
            failure.retry_after,
            progress if failure.with_record else None,
        )

    def _decide(self, kv: KeyVault, progress: Progress, cert: CertificateSnapshot | None, now: datetime) -> Verdict:
        """Gather what the one decision needs, under the lock, and decide. Key Vault's pending operation is read
        only where one may be left over: another renewal's record of this version (its owner may be gone), or a
        request from the sweep for a certificate that is not due (the sweep queues one only for a pending operation:
        an orphan, or this renewal's own on a later attempt). The plain renewal stays at four Key Vault calls."""
        request = progress.request
        if cert is None:
            return decide(Input(request, self.vaults, None, now, self.settings))
        record = progress.held.record
        others = record is not None and record.version == cert.version and record.owner != request.correlation_id
        window = renewal_window(cert, ca_of(cert.tags, self.settings), self.ca_for, now)
        facts = facts_of(cert, self.canary)

        def with_pending(pending: PendingOperation | None) -> Verdict:
            return decide(
                Input(request, self.vaults, facts, now, self.settings, window, record, pending, holds_lock=True)
            )

        if others:
            return with_pending(kv.get_pending(request.name))
        verdict = with_pending(None)
        not_due = verdict.outcome == "skip" and verdict.next_renewal is not None
        return with_pending(kv.get_pending(request.name)) if not_due and request.trigger == "sweep" else verdict

    @property
    def _working_for(self) -> timedelta:
        """How long a record says its owner is at work before the owner counts as gone (plus STALE_AFTER)."""
        return timedelta(seconds=2 * self.backoff.base_seconds)

    def _locked_elsewhere(self, request: RenewalRequest) -> Result:
        """Another instance holds the lock now: look again shortly (it may only be checking a stale event)."""
        delay = self._in_flight_wait
        self.reporter.audit("retried", request, reason="locked_elsewhere", delay_seconds=delay)
        self.retries.send(request, delay)
        return Result(
            "retrying", "locked_elsewhere", "another instance holds the lock", request, retry_in_seconds=delay
        )

    def _lost(self, request: RenewalRequest, exc: LockLost) -> Result:
        """This holder was fenced off: it does nothing more, and whoever holds the lock decides. The same request
        comes back later (no attempt spent), in case nobody took the lock at all; then it finds the state as is."""
        delay = self._in_flight_wait
        self.reporter.audit("retried", request, reason="lock_lost", detail=str(exc), delay_seconds=delay)
        self.retries.send(request, delay)
        return Result("retrying", "lock_lost", str(exc), request, retry_in_seconds=delay)

    def _renew(self, kv: KeyVault, progress: Progress, cert: CertificateSnapshot, verdict: Verdict) -> Result:
        request = progress.request
        now = self.clock()
        resume = resume_action(progress.held.record, request, cert.version, verdict.ca or self.settings.default_ca)
        record = resume.record
        ca = self.ca_for(resume.ca)
        if record and resume.takes_over:
            self.reporter.audit(
                "taken_over",
                request,
                previous_owner=record.owner,
                state=record.state,
                ca_request_id=record.ca_request_id,
            )
        progress.record = record
        if request.attempt == 1 and not request.ca_request_id and record is None:
            self.reporter.audit(
                "renewal_initiated",
                request,
                old_version=cert.version,
                ca=ca.name,
                profile=verdict.profile,
                trigger=request.trigger,
                triggered_at=request.triggered_at,
            )
        if resume.step == "merge_recorded_chain":  # the CA answered before a crash: merge what it issued
            assert record is not None
            csr = self._pending_csr(kv, request)
            result: Issued | Pending | Denied = Issued(record.chain_pem)
        elif resume.step == "poll_ca_request":  # a request the CA has not decided: follow it, never submit again
            assert resume.ca_request_id is not None
            csr = self._pending_csr(kv, request)
            progress.note(now, version=cert.version, ca=ca.name, ca_request_id=resume.ca_request_id)
            result = ca.poll(resume.ca_request_id, csr_to_pem(csr))
        else:
            csr, request = self._obtain_csr(kv, progress, cert, ca.name)
            progress.request = request
            try:
                check_csr_against_policy(csr, cert.policy)
            except CsrMismatch as exc:
                progress.fence(now, "delete_pending", version=cert.version, ca=ca.name)
                kv.delete_pending(request.name)
                raise Permanent("csr_policy_mismatch", f"the CSR does not match the policy: {exc}") from exc
            # The CA's answer is recorded once it comes; should this renewal die before that, the next owner
            # cannot know what the CA did (the residual window of docs/RELIABILITY.md).
            progress.fence(now, "submit", version=cert.version, ca=ca.name)
            self.reporter.audit("submitted", request, ca=ca.name, profile=verdict.profile)
            window = verdict.renewal_window  # only an ACME CA with ARI gives one: the order names what it replaces
            result = ca.submit(csr_to_pem(csr), verdict.profile or "", window.cert_id if window else None)
        if isinstance(result, Denied):
            progress.fence(self.clock(), "delete_pending", version=cert.version, ca=ca.name)
            kv.delete_pending(request.name)
            self.reporter.audit("denied", request, ca=ca.name, detail=result.reason, **_ca_words(result))
            raise Permanent("ca_denied", f"the CA {ca.name!r} denied the request: {result.reason}", result)
        if isinstance(result, Pending):
            waiting = replace(request, ca_request_id=result.request_id, ca_profile=verdict.profile)
            progress.note(
                now,
                state="pending",
                version=cert.version,
                ca=ca.name,
                ca_request_id=result.request_id,
                next_action_at=now + timedelta(seconds=result.retry_after_seconds),
            )
            self.reporter.audit("pending", waiting, ca=ca.name, detail=result.detail, **_ca_words(result))
            self.retries.send(waiting, result.retry_after_seconds)
            return Result(
                "pending",
                "ca_pending",
                result.detail or "the CA has not decided yet",
                waiting,
                retry_in_seconds=result.retry_after_seconds,
            )
        if resume.step != "merge_recorded_chain":
            if result.request_id:  # should the chain not be recorded, the retry fetches it again from the CA
                request = progress.request = replace(request, ca_request_id=result.request_id)
            progress.note(now, state="issued", version=cert.version, ca=ca.name, chain_pem=tuple(result.chain_pem))
            self.reporter.audit("issued", request, ca=ca.name)
        early = verdict.renewal_window if verdict.reason == Reason.ARI_DUE else None
        return self._merge(kv, progress, cert, csr, result, ca.name, early.explanation_url if early else "")

    def _obtain_csr(
        self, kv: KeyVault, progress: Progress, cert: CertificateSnapshot, ca: str
    ) -> tuple[bytes, RenewalRequest]:
        """A CSR from a new pending operation, or from one no live renewal owns (this one's, or an orphan's).

        Called under the certificate's lock with no live record of another renewal, so an operation in
        progress is nobody's but this renewal's: reuse its CSR rather than leave it orphaned.
        """
        request = progress.request
        new_tags = cert_tags.carried_tags(cert.tags)
        policy = self._policy_for(request, cert)
        self.pacer.acquire(request.vault, key_kind(cert.policy))
        progress.fence(self.clock(), "create_pending", version=cert.version, ca=ca)
        try:
            op = self._create(kv, request, cert, new_tags, policy)
            self.reporter.audit("csr_created", request, kv_request_id=op.request_id)
        except PendingExists:
            op = kv.get_pending(request.name)
            choice = pending_action(op, request)
            if choice.action == "vanished":  # look again on the next attempt
                raise Transient(choice.reason, f"{choice.message}; retrying") from None
            assert op is not None
            old_key = request.trigger in NEW_KEY_TRIGGERS and _holds_key_of(cert, op)
            if choice.action == "replace" or old_key:
                progress.fence(self.clock(), "replace_pending", version=cert.version, ca=ca)
                kv.delete_pending(request.name)
                op = self._create(kv, request, cert, new_tags, policy)
                why = "compromised_key" if old_key else choice.reason
                self.reporter.audit("csr_created", request, kv_request_id=op.request_id, replaced=why)
            else:
                orphan = choice.reason == "orphaned_pending"
                self.reporter.audit("csr_reused", request, kv_request_id=op.request_id, orphan=orphan)
        if not op.csr:
            raise Permanent("no_csr", "Key Vault returned a pending operation without a CSR")
        if request.trigger in NEW_KEY_TRIGGERS and _holds_key_of(cert, op):
            progress.fence(self.clock(), "delete_pending", version=cert.version, ca=ca)
            kv.delete_pending(request.name)
            raise Permanent("key_not_new", "Key Vault made the new version with the compromised key; nothing was sent")
        return op.csr, replace(request, kv_request_id=op.request_id)

    def _policy_for(self, request: RenewalRequest, cert: CertificateSnapshot) -> Any:
        """The policy the create sends (Key Vault makes it the certificate's): as it is, except that a compromise
        renewal (or one of a certificate its CA revoked) turns key reuse off, so the new version cannot carry the
        exposed key; it is put back after the merge (``renewal.compromise``)."""
        if request.trigger not in NEW_KEY_TRIGGERS or not getattr(cert.policy, "reuse_key", False):
            return cert.policy
        self.reporter.audit("key_reuse_off", request, old_version=cert.version)
        return with_key_reuse(cert.policy, False)

    def _create(
        self, kv: KeyVault, request: RenewalRequest, cert: CertificateSnapshot, tags: Mapping[str, str], policy: Any
    ) -> PendingOperation:
        """Key Vault's create, inside the budget the pacer granted: a 429 all the same pauses every instance's
        creates of the vault (``Pacer.throttled``) and this request comes back when the pause is over."""
        paced = not isinstance(self.pacer, Unpaced)
        try:
            return kv.create_pending(request.name, policy, tags, retry_throttled=not paced)
        except KeyVaultError as exc:
            if not paced or exc.status != 429:
                raise
            pause = self.pacer.throttled(request.vault, exc.retry_after_seconds)
            raise Paced(request.vault, "throttled", pause) from exc

    @property
    def _in_flight_wait(self) -> int:
        """How long a message that found the lock taken waits before it looks again."""
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
        self,
        kv: KeyVault,
        progress: Progress,
        before: CertificateSnapshot,
        csr: bytes,
        issued: Issued,
        ca: str,
        explanation_url: str = "",
    ) -> Result:
        request = progress.request
        now_as_is = kv.version(request.name, before.version)  # what the operator did meanwhile
        stopped = stopped_by_operator(now_as_is)
        if stopped:
            return self._stop_for_operator(kv, progress, before, *stopped)
        assert now_as_is is not None
        today = self.clock().strftime("%Y-%m-%d")
        tags = cert_tags.carried_tags(now_as_is.tags) | {
            cert_tags.CORRELATION: request.correlation_id,
            cert_tags.LAST_OUTCOME: f"renewed {today}",
        }
        if request.trigger in NEW_KEY_TRIGGERS:  # until the old version is revoked and disabled (renewal.compromise)
            restore = bool(getattr(before.policy, "reuse_key", False))
            by_ca = request.trigger == "revoked"
            tags[cert_tags.COMPROMISED] = compromise.compromised_tag(before.version, restore, by_ca)
        try:
            chain = pem_chain_to_der(issued.chain_pem)
        except ValueError as exc:
            raise Permanent(
                "ca_bad_certificate", f"the CA {ca!r} answered with an unreadable certificate: {exc}"
            ) from exc
        progress.fence(self.clock(), "merge", version=before.version, ca=ca)
        try:
            after = kv.merge(request.name, chain, tags)
        except PendingGone as exc:
            after = kv.get(request.name)
            if not (after and after.cer and same_public_key(after.cer, csr)):
                raise Permanent(
                    "pending_lost", "the pending operation vanished before the merge and no version carries its key"
                ) from exc
        except KeyVaultError as exc:
            if not exc.transient:
                progress.fence(self.clock(), "delete_pending", version=before.version, ca=ca)
                kv.delete_pending(request.name)
            raise
        # The record stays: it names the version it renewed, which is no longer current, so nobody follows it.
        self.reporter.audit(
            "merged",
            request,
            old_version=before.version,
            new_version=after.version,
            old_expires_on=before.expires_on,
        )
        self._notify_once(progress, before, after, ca, explanation_url)
        if compromise.unfinished_of(after.tags):
            return self._finish_compromise(kv, progress, after, ca)
        return Result(
            "renewed",
            "renewed",
            f"{request.name!r} renewed as version {after.version}",
            request,
            new_version=after.version,
        )

    def _compromise_of_replaced(
        self, kv: KeyVault, progress: Progress, cert: CertificateSnapshot
    ) -> CertificateSnapshot:
        """The operator named a version someone already replaced (``renewal.compromise.replaced_compromise``): the
        current version is tagged to retire the compromised one (the one decision then finishes it, renewing
        nothing), or renewed itself when it kept the key; otherwise the request stays superseded."""
        request = progress.request
        assert request.version is not None
        if compromise.unfinished_of(cert.tags):
            return cert
        old = kv.version(request.name, request.version)
        keeps = bool(old and old.cer and cert.cer and same_key(old.cer, cert.cer))
        action, why = compromise.replaced_compromise(_old_version(old), keeps)
        if action == "nothing":
            return cert
        progress.request = replace(request, version=cert.version)
        if action == "retire_old":
            assert old is not None
            progress.fence(self.clock(), "tag_compromised", version=cert.version)
            tags = dict(cert.tags) | {cert_tags.COMPROMISED: compromise.compromised_tag(old.version, False)}
            kv.update_tags(request.name, cert.version, tags)
            cert = replace(cert, tags=tags)
        self.reporter.audit(
            "compromise_of_replaced", progress.request, old_version=request.version, action=action, detail=why
        )
        return cert

    def _finish_compromise(self, kv: KeyVault, progress: Progress, current: CertificateSnapshot, ca: str) -> Result:
        """The steps after a compromise renewal's merge (``renewal.compromise``), each fenced and audited, until the
        new version's tag can go. A CA out of reach does not hold up the disable: the revocation comes back as a
        transient failure, and the retry (or the sweep) finds only it left to do."""
        request = progress.request
        name = request.name
        fresh = kv.get(name)  # its tags and its policy as they are now
        if fresh is None or fresh.version != current.version:
            return Result("skipped", "superseded", f"{name!r} has a newer version than {current.version}", request)
        unfinished = compromise.unfinished_of(fresh.tags)
        if unfinished is None:
            return Result("renewed", "compromise_finished", f"{name!r}: its old version was already retired", request)
        key_reuse = bool(getattr(fresh.policy, "reuse_key", False))
        revocation: RevocationResult | None = None
        ca_error = ""
        unreachable = False
        while True:
            old = kv.version(name, unfinished.old_version)
            seen = _old_version(old)
            step = compromise.next_step(unfinished, seen, key_reuse, unreachable)
            now = self.clock()
            if step.step == "revoke":
                assert old is not None and old.cer is not None
                progress.fence(now, "revoke", version=unfinished.old_version, ca=ca)
                try:
                    revocation = self.ca_for(ca).revoke(der_to_pem(old.cer), compromise.REASON)
                except CaUnavailable as exc:
                    unreachable, ca_error = True, str(exc)
                    continue
                except CaError as exc:
                    revocation, ca_error = None, str(exc)
                kept = {k: v for k, v in old.tags.items() if k.strip().lower() != cert_tags.WARNED}
                state = compromise.revocation_tag(revocation, now)
                kv.update_tags(name, old.version, kept | {cert_tags.REVOCATION: state})
                self._audit_revocation(request, old.version, ca, revocation, ca_error)
            elif step.step == "disable":
                assert old is not None
                progress.fence(now, "disable", version=unfinished.old_version, ca=ca)
                kv.disable_version(name, old.version)
                self.reporter.audit("retired", request, old_version=old.version, detail="compromised key")
            elif step.step == "restore_key_reuse":
                progress.fence(now, "restore_key_reuse", version=unfinished.old_version, ca=ca)
                kv.update_policy(name, with_key_reuse(fresh.policy, True))
                key_reuse = True
                self.reporter.audit("key_reuse_restored", request, new_version=fresh.version)
            elif step.step == "retry_revocation":
                raise Transient("ca_unavailable", f"could not revoke version {unfinished.old_version}: {ca_error}")
            elif step.step == "confirm_revocation":
                assert old is not None and old.cer is not None
                seen = self.revocation.check(old.cer, ca) if self.revocation is not None else None
                if seen is None or seen.state != "revoked":
                    if revocation is not None:  # asked in this pass: the person hears what to run, once
                        self._tell_compromise(request, fresh, unfinished, ca, old, revocation, ca_error)
                    said = seen.detail if seen is not None else "certlc does not check revocation here"
                    return Result(
                        "renewed",
                        "revocation_awaiting_person",
                        f"{name!r} renewed as version {fresh.version} with a new key; version {old.version} is "
                        f"disabled and its revocation waits for a person at CA {ca!r} ({said})",
                        request,
                        new_version=fresh.version,
                    )
                progress.fence(now, "revocation_seen", version=unfinished.old_version, ca=ca)
                state = compromise.revocation_tag(Revoked(seen.reason or "", compromise.REASON), now)
                kv.update_tags(name, old.version, dict(old.tags) | {cert_tags.REVOCATION: state})
                self.reporter.audit("revocation_seen", request, old_version=old.version, ca=ca, detail=seen.source)
            else:
                kept = {k: v for k, v in fresh.tags.items() if k.strip().lower() != cert_tags.COMPROMISED}
                kv.update_tags(name, fresh.version, kept)
                self.reporter.audit(
                    "compromise_finished", request, old_version=unfinished.old_version, detail=step.reason
                )
                self._tell_compromise(request, fresh, unfinished, ca, old, revocation, ca_error)
                return Result(
                    "renewed",
                    "compromise_finished",
                    f"{name!r} renewed as version {fresh.version} with a new key; {step.reason}",
                    request,
                    new_version=fresh.version,
                )

    def _audit_revocation(
        self, request: RenewalRequest, version: str, ca: str, result: RevocationResult | None, error: str
    ) -> None:
        if result is None:
            self.reporter.audit("revocation_refused", request, old_version=version, ca=ca, detail=error)
        elif isinstance(result, Revoked):
            self.reporter.audit(
                "revoked", request, old_version=version, ca=ca, serial=result.serial, detail=result.detail
            )
        else:
            self.reporter.audit(
                "revocation_awaiting_person",
                request,
                old_version=version,
                ca=ca,
                serial=result.serial,
                detail=result.instructions,
            )

    def _tell_compromise(
        self,
        request: RenewalRequest,
        current: CertificateSnapshot,
        unfinished: compromise.Unfinished,
        ca: str,
        old: CertificateSnapshot | None,
        revocation: RevocationResult | None,
        error: str,
    ) -> None:
        """What the certificate's people must know: the CA's revocation (or what a person must run), and that the
        old version is disabled. Never a second issuance for a failed notice."""
        try:
            serving = self.serving(request.vault, request.name, thumbprint(old.cer)) if old and old.cer else ()
            self.reporter.compromise_handled(request, current, unfinished, ca, old, revocation, error, serving)
        except Exception:
            log.exception("compromise notice for %s/%s could not be sent", request.vault, request.name)

    def _stop_for_operator(
        self, kv: KeyVault, progress: Progress, before: CertificateSnapshot | None, reason: str, message: str
    ) -> Result:
        """The operator disabled or deleted the certificate while it was renewed: nothing is merged, the pending
        operation goes, and the certificate's recipients are told why; no failed-store entry (nothing to retry)."""
        request = progress.request
        if before is not None:  # a deleted certificate took its pending operation with it
            progress.fence(self.clock(), "delete_pending", version=before.version)
            with contextlib.suppress(KeyVaultError):
                kv.delete_pending(request.name)
        progress.held.clear()
        self.reporter.audit("skipped", request, reason=reason, detail=message)
        try:
            self.reporter.failed(request, before, reason, message, escalate=False)
        except Exception:
            log.exception("notice for %s/%s could not be sent", request.vault, request.name)
        return Result("skipped", reason, message, request)

    def _already_merged(self, kv: KeyVault, progress: Progress, cert: CertificateSnapshot) -> Result:
        """A redelivery of a renewal that merged (its message was not settled: a crash, a queue outage)."""
        request = progress.request
        found = progress.held.record
        self.reporter.audit("merged", request, new_version=cert.version, recovered=True)
        mine = found is None or found.owner == request.correlation_id  # another renewal's record is not ours to write
        if mine:
            progress.record = found
        if not (mine and found and found.notified):
            self._notify_once(progress, cert, cert, "unknown", record=mine)
        if compromise.unfinished_of(cert.tags):
            return self._finish_compromise(kv, progress, cert, ca_of(cert.tags, self.settings))
        return Result(
            "renewed",
            "already_merged",
            f"{request.name!r} was already renewed as {cert.version}",
            request,
            new_version=cert.version,
        )

    def _notify_once(
        self,
        progress: Progress,
        before: CertificateSnapshot,
        after: CertificateSnapshot,
        ca: str,
        explanation_url: str = "",
        *,
        record: bool = True,
    ) -> None:
        """The renewed notice, then the record says it went out, so a redelivery does not send it again. The
        window left: the process dies between the two, and the redelivery sends it a second time."""
        request = progress.request
        try:
            self.reporter.renewed(request, before, after, ca, explanation_url)
        except Exception:  # a failed notification never turns into a second issuance
            log.exception("renewal notification for %s/%s failed", request.vault, request.name)
            return
        if not record:
            return
        progress.mark_notified(self.clock())

    def _retry(
        self,
        request: RenewalRequest,
        cert: CertificateSnapshot | None,
        reason: str,
        message: str,
        retry_after: int | None,
        progress: Progress | None = None,
    ) -> Result:
        held = progress.held if progress else None
        now = self.clock()
        then = after_transient_failure(request.attempt, self.backoff, cert.expires_on if cert else None, now)
        if then == "give_up":
            return self._finish_permanent(
                request,
                cert,
                "retries_exhausted",
                f"the certificate expired while certlc retried ({request.attempt} attempts); last error: {message}",
                held,
            )
        delay = self.backoff.delay(request.attempt, retry_after)
        result = self._come_back(request.next_attempt(), cert, reason, message, delay, progress)
        if then == "retry_and_tell" and result.reason == reason:
            self._tell_still_failing(request, cert, message, now)
        return result

    def _come_back(
        self,
        request: RenewalRequest,
        cert: CertificateSnapshot | None,
        reason: str,
        message: str,
        delay: int,
        progress: Progress | None,
    ) -> Result:
        """Send ``request`` back to the queue for ``delay`` seconds; the record says this renewal goes on, so others
        keep out until it is late."""
        if progress is not None and cert is not None:
            now = self.clock()
            try:
                progress.note(
                    now, state="retrying", version=cert.version, next_action_at=now + timedelta(seconds=delay)
                )
            except LockLost as exc:  # another holder has the renewal now: it decides, not this one
                return self._lost(request, exc)
            except LockUnavailable:  # storage is what failed; the record then goes stale
                pass
        self.reporter.audit("retried", request, reason=reason, detail=message, delay_seconds=delay)
        self.retries.send(request, delay)
        return Result("retrying", reason, message, request, retry_in_seconds=delay)

    def _tell_still_failing(
        self, request: RenewalRequest, cert: CertificateSnapshot | None, message: str, now: datetime
    ) -> None:
        """Once, when the attempts run out: the renewal goes on by itself, but a person should know why it is late."""
        every = self.backoff.cap_seconds / 3600
        told = (
            f"still failing after {request.attempt} attempts; certlc keeps trying about every {every:g} h until it "
            f"renews or the certificate expires; last error: {message}"
        )
        escalate = bool(cert and is_within_escalation(cert, now, self.settings))
        try:
            self.reporter.failed(request, cert, "retries_exhausted", told, escalate=escalate, permanent=False)
        except Exception:
            log.exception("alert for %s/%s could not be sent", request.vault, request.name)

    def _finish_permanent(
        self,
        request: RenewalRequest,
        cert: CertificateSnapshot | None,
        reason: str,
        message: str,
        held: Held | None = None,
        status: Status = "failed",
        denied: Denied | None = None,
    ) -> Result:
        now = self.clock()
        if held is not None:  # only the holder of the lock records a permanent outcome: clearing is the fence
            record = held.record
            try:
                held.clear()
            except LockLost as exc:
                return self._lost(request, exc)
            except LockUnavailable:  # storage is down: the failed store, the alert and the tag carry it on
                pass
            if record is not None:
                self._withdraw_ca_request(request, record, reason)
        self.failed_store.add(request, request.to_json(), reason, message, now)
        if cert is not None:
            self._withdraw_pending(cert)
            self._mark_failed(cert, reason, now)
        self.reporter.audit("rejected" if status == "rejected" else "failed", request, reason=reason, detail=message)
        escalate = bool(cert and is_within_escalation(cert, now, self.settings))
        try:
            self.reporter.failed(request, cert, reason, message, escalate=escalate, denied=denied)
        except Exception:
            log.exception("failure alert for %s/%s could not be sent", request.vault, request.name)
        return Result(status, reason, message, request)

    def _withdraw_ca_request(self, request: RenewalRequest, record: RenewalRecord, reason: str) -> None:
        """A CA request still undecided is withdrawn where the CA allows it, so nobody approves a dead renewal."""
        if record.state != "pending" or not record.ca_request_id or not record.ca:
            return
        try:
            if self.ca_for(record.ca).withdraw(record.ca_request_id, f"certlc gave the renewal up: {reason}"):
                self.reporter.audit("withdrawn", request, ca=record.ca, ca_request_id=record.ca_request_id)
        except Exception:  # the failure is reported anyway; the CA request then waits for its operator
            log.warning("could not withdraw CA request %s", record.ca_request_id, exc_info=True)

    def _withdraw_pending(self, cert: CertificateSnapshot) -> None:
        """A renewal that has given up leaves no pending operation behind; a re-drive starts clean."""
        try:
            self.keyvault_for(self.vaults[cert.vault.lower()]).delete_pending(cert.name)
        except Exception:
            log.warning("could not delete the pending operation of %s/%s", cert.vault, cert.name, exc_info=True)

    def _mark_failed(self, cert: CertificateSnapshot, reason: str, now: datetime) -> None:
        """Tag the version so the sweep stops re-queueing it until an operator re-drives it."""
        try:
            tags = dict(cert.tags) | {cert_tags.LAST_OUTCOME: f"failed {reason} {now:%Y-%m-%d}"}
            self.keyvault_for(self.vaults[cert.vault.lower()]).update_tags(cert.name, cert.version, tags)
        except Exception:  # bookkeeping only: the failed store and the alert already carry the failure
            log.warning("could not tag %s/%s with its failure", cert.vault, cert.name, exc_info=True)


WorkflowAct = Literal["renew", "rehearse", "stop", "fail", "finish_compromise"]


def workflow_act(verdict: Verdict, dry_run: bool) -> WorkflowAct:
    """How the workflow acts on the one decision: ``renew`` (``rehearse`` in a dry run: what the real run would do,
    nothing done), ``stop`` where there is nothing to do now (skip, wait), ``fail`` for good where certlc cannot renew
    it as it is (fail; reject never gets here, it is refused before anything is read)."""
    if verdict.outcome in ("skip", "wait"):
        return "stop"
    if verdict.outcome in ("fail", "reject"):
        return "fail"
    if dry_run:
        return "rehearse"
    return "finish_compromise" if verdict.reason == Reason.COMPROMISE_UNFINISHED else "renew"


def stopped_by_operator(version: CertificateSnapshot | None) -> tuple[str, str] | None:
    """Whether the operator's own act ends the renewal before its merge, and why: the certificate deleted, or the
    version being renewed disabled (a new enabled version would undo that)."""
    if version is None:
        return "certificate_deleted", "the certificate was deleted while it was renewed; nothing was merged"
    if not version.enabled:
        return (
            "certificate_disabled",
            f"version {version.version} was disabled while it was renewed; no new version was made",
        )
    return None


def _holds_key_of(cert: CertificateSnapshot, op: PendingOperation) -> bool:
    """Whether a pending operation's CSR carries the certificate's own (compromised) key."""
    return bool(cert.cer and op.csr and same_public_key(cert.cer, op.csr))


def _old_version(old: CertificateSnapshot | None) -> compromise.OldVersion | None:
    if old is None:
        return None
    return compromise.OldVersion(
        old.version, old.enabled, old.cer is not None, cert_tags.tag(old.tags, cert_tags.REVOCATION)
    )


def _ca_words(result: Pending | Denied) -> dict[str, str]:
    """The audit fields for what the CA said about its request: its id, its own message, who must approve it."""
    words = {"ca_request_id": result.request_id, "ca_message": result.ca_message}
    if isinstance(result, Pending):
        words["approver"] = result.approver
    return {key: value for key, value in words.items() if value}
