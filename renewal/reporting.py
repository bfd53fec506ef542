"""Outcomes to people and to the audit trail: the workflow's ``Reporter``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from renewal import tags as cert_tags
from renewal.ca.base import AwaitingPerson, Denied, RevocationResult, Revoked
from renewal.compromise import Unfinished
from renewal.keyvault import CertificateSnapshot
from renewal.messages import RenewalRequest
from renewal.notify import (
    CompromiseHandled,
    Escalation,
    ExpiringWithoutRenewal,
    MessageRejected,
    Notifier,
    RenewalFailed,
    Renewed,
    ServingProblem,
    channels_from_tags,
    recipients_from_tags,
)
from renewal.x509info import thumbprint

log = logging.getLogger("certlc.renewal")

ACTIONS = {
    "vault_not_allowed": "Add the vault to CERTLC_VAULTS if certlc should manage it; otherwise ignore.",
    "invalid_name": "Check the event source: the certificate name is not a valid Key Vault name.",
    "no_profile": "Set the tag certlc-profile on the certificate or the app setting CERTLC_CA_PROFILE.",
    "ca_denied": "Ask the CA operator why the request was denied, fix it, then run `certlc failed retry`.",
    "csr_policy_mismatch": "Check the certificate policy in Key Vault, then run `certlc failed retry`.",
    "pending_lost": "Someone cancelled the pending request; run `certlc failed retry` to start over.",
    "keyvault_error": "Check the function identity's role on the vault (Key Vault Certificates Officer).",
    "retries_exhausted": "It expired while certlc retried: fix the last error's cause, then `certlc failed retry`.",
    "ca_error": "Fix the CA adapter settings named in the reason, then run `certlc failed retry`.",
}
DEFAULT_ACTION = "Read the reason, fix the cause, then run `certlc failed retry`."
STILL_TRYING_ACTION = "Fix the cause in the last error if you can; certlc renews by itself once it is gone."
REJECTED_NOTICE_EVERY = timedelta(hours=1)  # per cause: a sender of bad messages must not flood anyone
SAMPLE_CHARACTERS = 200


class Reporter:
    def __init__(self, notifier: Notifier, audit: Any, env: Mapping[str, str], clock: Callable[[], datetime]) -> None:
        self._notifier = notifier
        self._audit = audit
        self._env = env
        self._clock = clock
        self._rejected_noticed: dict[str, datetime] = {}  # cause → when it was last announced (this process)

    def audit(self, event: str, request: RenewalRequest, **fields: Any) -> None:
        """Every step carries the renewal's trigger, so the history says what started each one, and the CA request
        the renewal follows once the CA took one, so each renewal's row names it."""
        fields.setdefault("trigger", request.trigger)
        if request.ca_request_id:
            fields.setdefault("ca_request_id", request.ca_request_id)
        self._audit.record(
            event,
            vault=request.vault,
            name=request.name,
            correlation_id=request.correlation_id,
            attempt=request.attempt,
            **fields,
        )

    def renewed(
        self,
        request: RenewalRequest,
        before: CertificateSnapshot,
        after: CertificateSnapshot,
        ca: str,
        explanation_url: str = "",
    ) -> None:
        notification = Renewed(
            vault=request.vault,
            name=request.name,
            old_version=before.version if before is not after else None,
            new_version=after.version,
            thumbprint=thumbprint(after.cer) if after.cer else "",
            expires_on=after.expires_on,
            ca=ca,
            recipients=tuple(recipients_from_tags(after.tags, self._env)),
            channels=channels_from_tags(after.tags),
            canary=request.trigger == "canary",
            explanation_url=explanation_url,
        )
        self._send(request, notification)

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
        """``permanent=False``: the renewal goes on by itself (a transient failure past its attempts)."""
        recipients = tuple(recipients_from_tags(cert.tags if cert else {}, self._env))
        channels = channels_from_tags(cert.tags if cert else {})
        if escalate and cert is not None and cert.expires_on is not None:
            days = max(0, (cert.expires_on - self._clock()).days)
            self._send(
                request,
                Escalation(
                    vault=request.vault,
                    name=request.name,
                    expires_on=cert.expires_on,
                    days_left=days,
                    last_error=message,
                    recipients=recipients,
                    channels=channels,
                ),
            )
        self._send(
            request,
            RenewalFailed(
                vault=request.vault,
                name=request.name,
                reason_code=reason,
                reason=message,
                action=ACTIONS.get(reason, DEFAULT_ACTION) if permanent else STILL_TRYING_ACTION,
                permanent=permanent,
                attempt=request.attempt,
                recipients=recipients,
                channels=channels,
                ca_request_id=denied.request_id if denied else "",
                ca_message=denied.ca_message if denied else "",
            ),
        )

    def compromise_handled(
        self,
        request: RenewalRequest,
        current: CertificateSnapshot,
        unfinished: Unfinished,
        ca: str,
        old: CertificateSnapshot | None,
        revocation: RevocationResult | None,
        error: str,
        still_serving: tuple[str, ...] = (),
    ) -> None:
        """A compromise renewal's word (``renewal.compromise``): what the CA did with the old certificate, or what a
        person must run."""
        state = cert_tags.tag(old.tags, cert_tags.REVOCATION) if old is not None else None
        said = (state or "").split(" ", 1)[0]
        if revocation is not None:
            said = "revoked" if isinstance(revocation, Revoked) else "awaiting"
        notification = CompromiseHandled(
            vault=request.vault,
            name=request.name,
            old_version=unfinished.old_version,
            new_version=current.version,
            cause="revoked" if unfinished.revoked_by_ca else "compromise",
            ca=ca,
            revocation=said if said in ("revoked", "awaiting", "refused") else "gone",
            detail=revocation.detail if isinstance(revocation, Revoked) else error,
            instructions=revocation.instructions if isinstance(revocation, AwaitingPerson) else "",
            serial=revocation.serial if revocation is not None else "",
            still_serving=still_serving,
            recipients=tuple(recipients_from_tags(current.tags, self._env)),
            channels=channels_from_tags(current.tags),
        )
        self._send(request, notification)

    def rejected(self, reason: str, message: str, raw: str) -> None:
        """A queue message nobody can act on: one notice per cause and hour in this process, never a flood."""
        now = self._clock()
        last = self._rejected_noticed.get(reason)
        if last is not None and now - last < REJECTED_NOTICE_EVERY:
            return
        self._rejected_noticed[reason] = now
        sample = raw[:SAMPLE_CHARACTERS] + ("…" if len(raw) > SAMPLE_CHARACTERS else "")
        notice = MessageRejected(reason, message, sample, tuple(recipients_from_tags({}, self._env)))
        try:  # no audit record: the trail is per certificate, and this message names none (the failed store has it)
            report = self._notifier.send(notice)
        except Exception:
            log.exception("notice of a rejected queue message could not be sent")
            return
        log.info("rejected-message notice (%s): %s", reason, report.as_dict())

    def expiring(self, cert: CertificateSnapshot, days_left: int, *, escalate: bool = False, why: str = "") -> None:
        """The sweep's daily notice for a certificate nobody renews (``why``: the decision's words); inside the
        escalation window it becomes an escalation."""
        request = RenewalRequest(vault=cert.vault, name=cert.name, trigger="sweep", version=cert.version)
        recipients = tuple(recipients_from_tags(cert.tags, self._env))
        channels = channels_from_tags(cert.tags)
        if escalate:
            last = cert_tags.tag(cert.tags, cert_tags.LAST_OUTCOME) or why
            notification: Any = Escalation(
                vault=cert.vault,
                name=cert.name,
                expires_on=cert.expires_on,
                days_left=days_left,
                last_error=last,
                recipients=recipients,
                channels=channels,
            )
        else:
            notification = ExpiringWithoutRenewal(
                vault=cert.vault,
                name=cert.name,
                expires_on=cert.expires_on,
                days_left=days_left,
                recipients=recipients,
                channels=channels,
                why=why,
            )
        self._send(request, notification)

    def serving(self, cert: CertificateSnapshot, alert: Any) -> None:
        """A target of the certificate does not serve the renewed version, or serves one about to expire
        (``renewal.targets.decide.TargetAlert``)."""
        request = RenewalRequest(vault=cert.vault, name=cert.name, trigger="sweep", version=cert.version)
        notification = ServingProblem(
            vault=cert.vault,
            name=cert.name,
            target=alert.target.name,
            problem=alert.kind,
            detail=alert.message,
            recipients=tuple(recipients_from_tags(cert.tags, self._env)),
            channels=channels_from_tags(cert.tags),
        )
        self._send(request, notification)

    def _send(self, request: RenewalRequest, notification: Any) -> None:
        report = self._notifier.send(notification)
        self.audit("notified", request, kind=notification.kind, channels=report.as_dict())
