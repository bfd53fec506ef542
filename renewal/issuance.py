"""First issuance: a certificate certlc creates in Key Vault and has its CA sign, through the parts a renewal uses.

The certificate's lock and record (``renewal.ledger``), Key Vault's pending operation (the key never leaves the
vault), the CSR checked against the policy, one CA request, the merge, the audit trail (trigger ``issue``) and the
notice. ``certlc issue`` checks what it can first (the name is free, the CA's profile can issue the policy) and calls
``Issuer.issue`` with the policy; an issuance the CA leaves pending (AD CS manager approval) goes to the renewal queue
with trigger ``issue`` and the functions follow it (``RenewalWorkflow.handle`` hands such a request here), the policy
then read from Key Vault.

Key Vault shows a certificate whose only version is pending either as that disabled version without a certificate
or not at all (the emulator's two ``pending_version`` modes): both read as "no certificate yet" here.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from renewal import tags as cert_tags
from renewal.ca.base import Denied, Issued, Pending
from renewal.csrcheck import CsrMismatch, check_csr_against_policy
from renewal.keyvault import CertificateSnapshot, KeyVault, PendingExists, PendingOperation
from renewal.ledger import LockLost, LockUnavailable, RenewalRecord
from renewal.messages import RenewalRequest
from renewal.pacing.limits import key_kind
from renewal.x509info import csr_to_pem, pem_chain_to_der

log = logging.getLogger("certlc.issuance")

NO_VERSION = ""  # an issuance's record names no version: there is none before the merge
Step = Literal[
    "issued_already", "exists", "in_flight", "merge_recorded_chain", "poll_ca_request", "take_over", "create"
]


@dataclass(frozen=True)
class IssueStep:
    step: Step
    reason: str


@dataclass(frozen=True)
class Issuance:
    """What ``Issuer.issue`` did: ``status`` issued, pending, exists, skipped (issued already) or failed."""

    status: str
    reason: str
    message: str
    version: str | None = None
    request: RenewalRequest | None = None


def issuance_step(
    existing: CertificateSnapshot | None,
    pending: PendingOperation | None,
    record: RenewalRecord | None,
    request: RenewalRequest,
    now: datetime,
) -> IssueStep:
    """Where an issuance stands, from what Key Vault and its record show. A certificate that already holds one is
    this issuance's own (a redelivery after the merge), one an identical issuance made (the same CA, profile and
    names), or someone else's, never replaced. A record of another issuance that will come back waits for it."""
    if existing is not None and existing.cer is not None:
        if cert_tags.tag(existing.tags, cert_tags.CORRELATION) == request.correlation_id:
            return IssueStep("issued_already", "this issuance merged it already")
        return IssueStep("exists", f"{existing.name!r} already holds a certificate (version {existing.version})")
    mine = record if record is not None and record.version == NO_VERSION else None
    if mine and mine.owner != request.correlation_id and mine.owner_will_return(now):
        return IssueStep("in_flight", f"issuance {mine.owner} waits for its CA; it finishes this one")
    if mine and mine.chain_pem:
        return IssueStep("merge_recorded_chain", "the CA issued before the last attempt ended: its chain is merged")
    if (mine and mine.ca_request_id) or request.ca_request_id:
        return IssueStep("poll_ca_request", "the CA has the request: it is followed, never sent again")
    if pending is not None and pending.status == "inprogress":
        return IssueStep("take_over", "a pending operation nobody finished (an interrupted issuance): its CSR is used")
    return IssueStep("create", "nothing in Key Vault yet: a new certificate with its first pending version")


def issue_tags(ca: str, profile: str) -> dict[str, str]:
    """The tags an issued certificate carries from its first version: which CA and profile renew it."""
    return {cert_tags.CA: ca, cert_tags.PROFILE: profile}


@dataclass
class Issuer:
    """First issuance with a renewal workflow's adapters (``renewal.workflow.RenewalWorkflow``)."""

    workflow: Any

    def issue(self, request: RenewalRequest, policy: Any | None = None, ca: str | None = None) -> Issuance:
        """Issue ``request.name`` through CA adapter ``ca`` with profile ``request.ca_profile``: ``policy`` and
        ``ca`` for a new certificate; None when following a request the CA left pending (Key Vault holds the
        policy, the record names the CA)."""
        wf = self.workflow
        vault = wf.vaults[request.vault.lower()]
        kv: KeyVault = wf.keyvault_for(vault)
        try:
            with wf.ledger.hold(request.vault, request.name) as held:
                if held is None:
                    delay = 2 * wf.backoff.base_seconds
                    wf.retries.send(request, delay)
                    return Issuance("pending", "locked_elsewhere", "another instance holds the lock; queued", None)
                from renewal.workflow import Progress

                progress = Progress(request, held, timedelta(seconds=2 * wf.backoff.base_seconds))
                return self._issue(kv, progress, policy, ca)
        except (LockLost, LockUnavailable) as exc:
            wf.retries.send(request, 2 * wf.backoff.base_seconds)
            return Issuance("pending", "lock_unavailable", f"{exc}; queued", None, request)

    def _issue(self, kv: KeyVault, progress: Any, policy: Any | None, ca_given: str | None) -> Issuance:
        wf, request = self.workflow, progress.request
        now = wf.clock()
        existing = kv.get(request.name)
        pending = kv.get_pending(request.name)
        record = progress.held.record
        step = issuance_step(existing, pending, record, request, now)
        if step.step in ("issued_already", "exists", "in_flight"):
            wf.reporter.audit("skipped", request, reason=step.step, detail=step.reason)
            status = {"issued_already": "skipped", "exists": "exists", "in_flight": "pending"}[step.step]
            version = existing.version if existing is not None else None
            return Issuance(status, step.step, step.reason, version, request)
        if policy is None:
            policy = kv.policy(request.name)
        if policy is None:
            return self._failed(progress, "policy_lost", "Key Vault has no policy for it any more: issue it again")
        ca_name = self._ca_name(record, existing, ca_given)
        if not ca_name:
            return self._failed(progress, "ca_unknown", "no CA names this issuance any more: issue it again")
        ca = wf.ca_for(ca_name)
        profile = request.ca_profile or ""
        if not record or record.version != NO_VERSION:
            wf.reporter.audit("renewal_initiated", request, ca=ca.name, profile=profile, trigger=request.trigger)
        if step.step == "merge_recorded_chain":
            assert record is not None
            result: Issued | Pending | Denied = Issued(record.chain_pem)
        elif step.step == "poll_ca_request":
            ca_request = (record.ca_request_id if record and record.ca_request_id else None) or request.ca_request_id
            assert ca_request is not None
            csr = self._csr(kv, request)
            progress.note(now, version=NO_VERSION, ca=ca.name, ca_request_id=ca_request)
            result = ca.poll(ca_request, csr_to_pem(csr))
        else:
            csr = self._new_csr(kv, progress, policy, ca.name, step.step == "take_over")
            try:
                check_csr_against_policy(csr, policy)
            except CsrMismatch as exc:
                progress.fence(now, "delete_pending", version=NO_VERSION, ca=ca.name)
                kv.delete_pending(request.name)
                return self._failed(progress, "csr_policy_mismatch", f"the CSR does not match the policy: {exc}")
            progress.fence(now, "submit", version=NO_VERSION, ca=ca.name)
            wf.reporter.audit("submitted", request, ca=ca.name, profile=profile)
            result = ca.submit(csr_to_pem(csr), profile, None)
        if isinstance(result, Denied):
            progress.fence(wf.clock(), "delete_pending", version=NO_VERSION, ca=ca.name)
            kv.delete_pending(request.name)
            wf.reporter.audit("denied", request, ca=ca.name, detail=result.reason)
            return self._failed(progress, "ca_denied", f"the CA {ca.name!r} denied the request: {result.reason}")
        if isinstance(result, Pending):
            waiting = replace(request, ca_request_id=result.request_id, ca_profile=profile, attempt=request.attempt)
            progress.note(
                now,
                state="pending",
                version=NO_VERSION,
                ca=ca.name,
                ca_request_id=result.request_id,
                next_action_at=now + timedelta(seconds=result.retry_after_seconds),
            )
            wf.reporter.audit("pending", waiting, ca=ca.name, detail=result.detail, ca_request_id=result.request_id)
            wf.retries.send(waiting, result.retry_after_seconds)
            said = result.detail or "the CA has not decided yet"
            return Issuance("pending", "ca_pending", f"{said}; certlc merges it once the CA issues", None, waiting)
        if step.step != "merge_recorded_chain":
            progress.note(now, state="issued", version=NO_VERSION, ca=ca.name, chain_pem=tuple(result.chain_pem))
            wf.reporter.audit("issued", request, ca=ca.name)
        return self._merge(kv, progress, result, ca.name, profile)

    @staticmethod
    def _ca_name(record: RenewalRecord | None, existing: CertificateSnapshot | None, given: str | None) -> str:
        """The CA that has (or gets) the request: the record's, else the one given, else the one a pending version's
        tag names (Key Vault shows the create's tags on it, where it shows the version)."""
        if record is not None and record.version == NO_VERSION and record.ca:
            return record.ca
        named = cert_tags.tag(existing.tags, cert_tags.CA) if existing is not None else None
        return given or named or ""

    def _new_csr(self, kv: KeyVault, progress: Any, policy: Any, ca: str, take_over: bool) -> bytes:
        wf, request = self.workflow, progress.request
        op: PendingOperation | None = None
        if not take_over:
            wf.pacer.acquire(request.vault, key_kind(policy))
            progress.fence(wf.clock(), "create_pending", version=NO_VERSION, ca=ca)
            tags = issue_tags(ca, request.ca_profile or "")
            try:
                op = kv.create_pending(request.name, policy, tags)
                wf.reporter.audit("csr_created", request, kv_request_id=op.request_id)
            except PendingExists:
                op = None
        if op is None:
            op = kv.get_pending(request.name)
            if op is None or not op.csr:
                raise LockUnavailable("the pending operation vanished while it was taken over; trying again")
            wf.reporter.audit("csr_reused", request, kv_request_id=op.request_id, orphan=True)
        if not op.csr:
            raise LockUnavailable("Key Vault returned a pending operation without a CSR; trying again")
        progress.request = replace(request, kv_request_id=op.request_id)
        return op.csr

    def _csr(self, kv: KeyVault, request: RenewalRequest) -> bytes:
        op = kv.get_pending(request.name)
        if op is None or not op.csr:
            raise LockUnavailable("the pending operation for the CA request is gone")
        return op.csr

    def _merge(self, kv: KeyVault, progress: Any, issued: Issued, ca: str, profile: str) -> Issuance:
        wf, request = self.workflow, progress.request
        today = wf.clock().strftime("%Y-%m-%d")
        tags: Mapping[str, str] = issue_tags(ca, profile) | {
            cert_tags.CORRELATION: request.correlation_id,
            cert_tags.LAST_OUTCOME: f"renewed {today}",
        }
        progress.fence(wf.clock(), "merge", version=NO_VERSION, ca=ca)
        after = kv.merge(request.name, pem_chain_to_der(issued.chain_pem), tags)
        wf.reporter.audit("merged", request, new_version=after.version)
        try:
            wf.reporter.renewed(request, after, after, ca)
        except Exception:  # a failed notice never turns into a second issuance
            log.exception("the notice of %s/%s's issuance could not be sent", request.vault, request.name)
        with contextlib.suppress(LockUnavailable):  # done: a later issuance of the name must not follow this record
            progress.held.clear()
        return Issuance("issued", "issued", f"{request.name!r} issued as version {after.version}", after.version)

    def _failed(self, progress: Any, reason: str, message: str) -> Issuance:
        wf, request = self.workflow, progress.request
        progress.held.clear()
        wf.failed_store.add(request, request.to_json(), reason, message, wf.clock())
        wf.reporter.audit("failed", request, reason=reason, detail=message)
        try:
            wf.reporter.failed(request, None, reason, message, escalate=False)
        except Exception:
            log.exception("the failure notice of %s/%s could not be sent", request.vault, request.name)
        return Issuance("failed", reason, message, None, request)
