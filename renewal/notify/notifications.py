"""What certlc tells people, as typed values that render themselves for every channel.

Each notification renders a subject, a plain-text body and an HTML body from one
summary sentence and a list of facts, so the channels cannot drift apart. Dates are
shown as ISO-8601 in UTC with the label "UTC": an operator in another time zone or
locale reads the same thing, and naive datetimes are refused because their meaning
depends on the machine that made them.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, ClassVar

from renewal.clock import iso_utc, require_aware


def display_utc(value: datetime) -> str:
    """Human form: ISO-8601 in UTC with the label, never a local zone or locale format."""
    return f"{iso_utc(value)} (UTC)"


def incident_key(about: str, kind: str) -> str:
    """``certlc:<vault>/<name>:<kind>``: the PagerDuty dedup key and the Opsgenie alias."""
    return f"certlc:{about}:{kind}"


class Notification:
    """Shared rendering; subclasses supply ``kind``, ``severity``, ``subject``, ``summary`` and ``facts``."""

    kind: ClassVar[str]
    severity: ClassVar[str]  # info, warning or error: webhook colours, log levels, channel routing
    recipients: tuple[str, ...]
    channels: tuple[str, ...]  # names from the certlc-notify tag; empty: every channel (renewal.notify.routing)
    vault: str  # vault and name: every kind about one certificate; the others override ``about``
    name: str

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, datetime):
                object.__setattr__(self, f.name, require_aware(value, f.name))
        object.__setattr__(self, "recipients", tuple(self.recipients))
        object.__setattr__(self, "channels", tuple(self.channels))

    @property
    def about(self) -> str:
        """What it is about, ``vault/name``: the stable part of a paging incident's key."""
        return f"{self.vault}/{self.name}"

    @property
    def incident_key(self) -> str:
        """Stable per certificate and kind, so a daily repeat updates one open incident instead of paging again."""
        return incident_key(self.about, self.kind)

    def resolves(self) -> tuple[str, ...]:
        """Incident keys this notification closes (a renewal ends what the failures and warnings opened)."""
        return ()

    @property
    def subject(self) -> str:
        raise NotImplementedError

    @property
    def summary(self) -> str:
        raise NotImplementedError

    def facts(self) -> list[tuple[str, str]]:
        raise NotImplementedError

    def text_body(self) -> str:
        width = max((len(label) for label, _ in self.facts()), default=0)
        lines = [self.summary, ""]
        lines += [f"{label + ':':<{width + 1}} {value}" for label, value in self.facts()]
        return "\n".join(lines) + "\n"

    def html_body(self) -> str:
        rows = "".join(
            f'<tr><th style="text-align:left;padding-right:1em">{html.escape(label)}</th>'
            f"<td>{html.escape(value)}</td></tr>"
            for label, value in self.facts()
        )
        return f"<!DOCTYPE html><html><body><p>{html.escape(self.summary)}</p><table>{rows}</table></body></html>"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields for the generic webhook (dates as ISO-8601 UTC)."""
        body: dict[str, Any] = {"kind": self.kind, "severity": self.severity, "subject": self.subject}
        for f in fields(self):  # type: ignore[arg-type]
            if f.name == "channels":  # routing, not content: the generic payload stays as it was
                continue
            value = getattr(self, f.name)
            if isinstance(value, datetime):
                value = iso_utc(value)
            elif isinstance(value, tuple):
                value = list(value)
            body[f.name] = value
        body["summary"] = self.summary
        return body


@dataclass(frozen=True)
class Renewed(Notification):
    vault: str
    name: str
    old_version: str | None
    new_version: str
    thumbprint: str
    expires_on: datetime
    ca: str
    recipients: tuple[str, ...] = ()
    canary: bool = False  # the canary's scheduled renewal (renewal.canary): it proves the path, nothing was due
    explanation_url: str = ""  # renewed early because the ACME CA asked (ARI, RFC 9773): the CA's page saying why
    channels: tuple[str, ...] = ()

    kind: ClassVar[str] = "renewed"
    severity: ClassVar[str] = "info"

    def resolves(self) -> tuple[str, ...]:
        cleared = (RenewalFailed.kind, ExpiringWithoutRenewal.kind, Escalation.kind)
        return tuple(incident_key(self.about, kind) for kind in cleared)

    @property
    def subject(self) -> str:
        return f"[certlc] Renewed {'canary ' if self.canary else ''}certificate {self.name} in {self.vault}"

    @property
    def summary(self) -> str:
        text = (
            f"The certificate for {self.name} in {self.vault} was renewed by {self.ca}; "
            f"the new version expires on {display_utc(self.expires_on)}."
        )
        if self.canary:
            text += " This was the canary's scheduled renewal: the CA path and this alert channel work."
        if self.explanation_url:
            text += f" It was renewed early because the CA asked for it; the CA explains why at {self.explanation_url}"
        return text

    def facts(self) -> list[tuple[str, str]]:
        return [
            ("Vault", self.vault),
            ("Certificate", self.name),
            ("Previous version", self.old_version or "(none)"),
            ("New version", self.new_version),
            ("New thumbprint", self.thumbprint),
            ("Expires", display_utc(self.expires_on)),
            ("Issued by", self.ca),
            *_explanation(self.explanation_url),
        ]


@dataclass(frozen=True)
class RenewalFailed(Notification):
    vault: str
    name: str
    reason_code: str
    reason: str
    action: str  # what the operator should do about it
    permanent: bool
    attempt: int
    recipients: tuple[str, ...] = ()
    ca_request_id: str = ""  # the CA's number for a request it refused, as its operator looks it up
    ca_message: str = ""  # the CA's own disposition message, unparaphrased
    explanation_url: str = ""  # the renewal was early because the ACME CA asked (ARI): the CA's page saying why
    channels: tuple[str, ...] = ()

    kind: ClassVar[str] = "renewal_failed"
    severity: ClassVar[str] = "error"

    @property
    def subject(self) -> str:
        state = "failed" if self.permanent else f"failed (attempt {self.attempt}, will retry)"
        return f"[certlc] Renewal {state}: {self.name} in {self.vault}"

    @property
    def summary(self) -> str:
        outcome = (
            "This failure is permanent: certlc will not retry until the cause is fixed."
            if self.permanent
            else "certlc will retry automatically."
        )
        return f"Renewing the certificate for {self.name} in {self.vault} failed: {self.reason} {outcome}"

    def facts(self) -> list[tuple[str, str]]:
        facts = [
            ("Vault", self.vault),
            ("Certificate", self.name),
            ("Reason code", self.reason_code),
            ("Reason", self.reason),
            ("What to do", self.action),
            ("Permanent", "yes" if self.permanent else "no"),
            ("Attempt", str(self.attempt)),
        ]
        ca_words = (("CA request id", self.ca_request_id), ("CA's message", self.ca_message))
        return facts + [(label, value) for label, value in ca_words if value] + _explanation(self.explanation_url)


def _explanation(url: str) -> list[tuple[str, str]]:
    """The fact for a renewal the CA asked for early (ARI's explanationURL), when there is one."""
    return [("Why the CA asked for an early renewal", url)] if url else []


@dataclass(frozen=True)
class ServingProblem(Notification):
    """A place that uses the certificate does not serve the renewed version (``renewal.targets``), or serves a
    certificate about to expire, whether Key Vault holds it or not."""

    vault: str
    name: str
    target: str
    problem: str  # not_served or served_expiring
    detail: str
    recipients: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()

    kind: ClassVar[str] = "serving"
    severity: ClassVar[str] = "warning"

    @property
    def subject(self) -> str:
        what = (
            "serves a certificate about to expire" if self.problem == "served_expiring" else "still serves the old one"
        )
        return f"[certlc] {self.name} in {self.vault} was renewed, but {self.target} {what}"

    @property
    def summary(self) -> str:
        return f"The certificate for {self.name} in {self.vault}: {self.detail}"

    def facts(self) -> list[tuple[str, str]]:
        return [("Vault", self.vault), ("Certificate", self.name), ("Where", self.target), ("Problem", self.problem)]


@dataclass(frozen=True)
class CompromiseHandled(Notification):
    """A compromise renewal is done: a new key serves, the old version is disabled, and the old certificate is revoked
    at its CA, or a person must revoke it (``instructions``), or the CA refused. Targets still serving the old
    certificate are named: they serve a key that is exposed and, once revoked, a certificate clients reject."""

    vault: str
    name: str
    old_version: str
    new_version: str
    ca: str
    revocation: str  # revoked, awaiting, refused or gone
    cause: str = "compromise"  # compromise (an operator said so) or revoked (its CA revoked it on its own)
    detail: str = ""  # the CA's words, or the error that refused it
    instructions: str = ""  # what a person must run where the CA offers certlc no revocation
    serial: str = ""
    still_serving: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()

    kind: ClassVar[str] = "compromise"

    @property
    def severity(self) -> str:  # type: ignore[override]
        done = self.revocation == "revoked" and not self.still_serving
        return "warning" if done else "error"

    @property
    def subject(self) -> str:
        left = {
            "revoked": "revoked",
            "awaiting": "a person must revoke the old certificate",
            "refused": "the CA refused to revoke the old certificate",
            "gone": "the old version is gone",
        }[self.revocation]
        after = "its CA revoked it" if self.cause == "revoked" else "a compromise"
        return f"[certlc] {self.name} in {self.vault} has a new key after {after}: {left}"

    @property
    def summary(self) -> str:
        said = {
            "revoked": f"The old certificate is revoked at {self.ca}.",
            "awaiting": f"{self.ca} offers certlc no way to revoke: revoke it now with the command below; certlc shows "
            "it as awaiting until the CA's CRL lists it.",
            "refused": f"{self.ca} refused to revoke the old certificate: revoke it by hand.",
            "gone": "The old version is no longer in the vault: certlc could not revoke it.",
        }[self.revocation]
        serving = f" Still serving the old certificate: {', '.join(self.still_serving)}." if self.still_serving else ""
        return (
            f"{self.name} in {self.vault} was renewed as {self.new_version} with a new key; version "
            f"{self.old_version} is disabled in Key Vault. {said}{serving}"
        )

    def facts(self) -> list[tuple[str, str]]:
        rows = [
            ("Vault", self.vault),
            ("Certificate", self.name),
            ("Old version (disabled)", self.old_version),
            ("New version", self.new_version),
            ("CA", self.ca),
            ("Revocation", self.revocation),
        ]
        rows += [("Serial", self.serial)] if self.serial else []
        rows += [("CA said", self.detail)] if self.detail else []
        rows += [("Run", self.instructions)] if self.instructions else []
        rows += [("Still serving the old certificate", ", ".join(self.still_serving))] if self.still_serving else []
        return rows


@dataclass(frozen=True)
class ExpiringWithoutRenewal(Notification):
    vault: str
    name: str
    expires_on: datetime
    days_left: int
    recipients: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    why: str = ""  # why nobody renews it, in the words `certlc status` uses

    kind: ClassVar[str] = "expiring"
    severity: ClassVar[str] = "warning"

    @property
    def subject(self) -> str:
        return f"[certlc] {self.summary}"

    @property
    def summary(self) -> str:
        # Wording kept from certlc so existing mail rules keep matching.
        return f"The certificate for {self.name} in {self.vault} will expire within the next {self.days_left} days"

    def facts(self) -> list[tuple[str, str]]:
        return [
            ("Vault", self.vault),
            ("Certificate", self.name),
            ("Expires", display_utc(self.expires_on)),
            ("Days left", str(self.days_left)),
        ] + ([("Why", self.why)] if self.why else [])


@dataclass(frozen=True)
class Escalation(Notification):
    """Close to expiry (the workflow's escalation window, 7 days) and still not renewed: act now."""

    vault: str
    name: str
    expires_on: datetime
    days_left: int
    last_error: str = ""
    recipients: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()

    kind: ClassVar[str] = "escalation"
    severity: ClassVar[str] = "error"

    @property
    def subject(self) -> str:
        return f"[certlc] URGENT: {self.name} in {self.vault} expires in {self.days_left} days and is not renewed"

    @property
    def summary(self) -> str:
        return (
            f"The certificate for {self.name} in {self.vault} expires on {display_utc(self.expires_on)} "
            f"({self.days_left} days left) and has still not been renewed. Renew it by hand or fix the "
            "cause below before it expires."
        )

    def facts(self) -> list[tuple[str, str]]:
        return [
            ("Vault", self.vault),
            ("Certificate", self.name),
            ("Expires", display_utc(self.expires_on)),
            ("Days left", str(self.days_left)),
            ("Last error", self.last_error or "(none recorded)"),
        ]


@dataclass(frozen=True)
class MessageRejected(Notification):
    """A queue message nobody can act on (unreadable, unknown kind, a vault not managed): it went to the failed
    store; someone should look at what sends it. One per cause and hour, whatever the number of messages."""

    reason_code: str
    reason: str
    sample: str  # the start of the message, to find its sender
    recipients: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()

    kind: ClassVar[str] = "message_rejected"
    severity: ClassVar[str] = "warning"

    @property
    def about(self) -> str:
        return f"queue/{self.reason_code}"

    @property
    def subject(self) -> str:
        return f"[certlc] A renewal queue message was rejected: {self.reason_code}"

    @property
    def summary(self) -> str:
        return (
            f"certlc rejected a message on its renewal queue: {self.reason} It is in the failed store "
            "(`certlc failed list`); further messages with this cause within the hour are not announced again."
        )

    def facts(self) -> list[tuple[str, str]]:
        return [("Reason code", self.reason_code), ("Reason", self.reason), ("Message starts", self.sample)]
