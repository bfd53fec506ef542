"""The one small interface every CA adapter implements.

``submit`` sends a CSR made by Key Vault (the private key never leaves the vault)
and answers with what the CA did; ``poll`` asks again about a request the CA left
pending (AD CS manager approval, ACME orders still processing), given the same CSR again
(Key Vault's pending operation keeps it), so an adapter keeps nothing on local disk. A CA that
cannot be reached, or does not answer within ``CERTLC_CA_TIMEOUT``, raises ``CaUnavailable``: that
is transient and retried with back-off. When the CA already has the request (it may even have
issued), the error names it (``request_id``) and the retry follows that request with ``poll``:
submitting again could issue a second certificate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from renewal.errors import ConfigError

CA_TIMEOUT_DEFAULT = 30.0  # seconds to connect to a CA, and to wait for each read of its answer


@dataclass(frozen=True)
class Issued:
    """The CA signed the CSR. ``chain_pem`` is leaf first, then intermediates (root optional)."""

    chain_pem: tuple[str, ...]
    request_id: str = ""  # the CA's id for the request, where it has one: followed if the chain is lost


@dataclass(frozen=True)
class Pending:
    """The CA accepted the request but has not decided yet; poll ``request_id`` later."""

    request_id: str
    retry_after_seconds: int = 3600
    detail: str = ""
    ca_message: str = ""  # the CA's own words about the request, for the operator
    approver: str = ""  # who must approve it, where the CA says so


@dataclass(frozen=True)
class Denied:
    """The CA refused the request; retrying the same request cannot help."""

    reason: str
    request_id: str = ""  # the CA's id for the request, where it has one (every result names it the same way)
    ca_message: str = ""  # the CA's own disposition message


CaResult = Issued | Pending | Denied

# RFC 5280's CRLReason names certlc takes (``certlc revoke --reason``), with their codes: what an ACME revokeCert,
# cfssl's revoke endpoint and ``certutil -revoke`` are given.
REVOCATION_REASONS = {
    "unspecified": 0,
    "keyCompromise": 1,
    "affiliationChanged": 3,
    "superseded": 4,
    "cessationOfOperation": 5,
}


@dataclass(frozen=True)
class Revoked:
    """The CA revoked the certificate (or says it already had). ``serial`` is the certificate's, in hex."""

    serial: str
    reason: str
    detail: str = ""  # the CA's words, e.g. "already revoked"


@dataclass(frozen=True)
class AwaitingPerson:
    """The CA offers certlc no way to revoke (AD CS web enrollment): a person must, with ``instructions``; the
    revocation counts as done once the CA's CRL or OCSP says so."""

    serial: str
    reason: str
    instructions: str  # the exact command, with the CA and the serial


RevocationResult = Revoked | AwaitingPerson


class CaError(Exception):
    """A CA adapter problem; the message says what to fix."""


class CaUnavailable(CaError):
    """The CA could not be reached or answered with a transient error."""

    def __init__(self, message: str, retry_after_seconds: int | None = None, request_id: str | None = None) -> None:
        """``request_id``: the CA has this request already (it may have issued): poll it, never submit again."""
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
        self.request_id = request_id


class CaConfigError(CaError, ConfigError):
    """The CA adapter is misconfigured (permanent until an operator fixes it)."""


class CertificateAuthority(Protocol):
    """What every adapter offers, its capabilities explicit rather than guessed: ``submit`` (with the certificate an
    ACME order replaces, RFC 9773; other CAs have no such field and ignore it), ``poll``, and ``withdraw``, which
    the workflow calls when it gives a renewal up and which answers False where the CA has no way to close a
    request it has not decided."""

    name: str

    def submit(self, csr_pem: bytes, profile: str, replaces: str | None = None) -> CaResult: ...

    def poll(self, request_id: str, csr_pem: bytes) -> CaResult:
        """``csr_pem`` is the CSR the request was made with (from Key Vault's pending operation)."""
        ...

    def withdraw(self, request_id: str, reason: str) -> bool:
        """Close a request the CA has not decided, so nobody approves a renewal certlc gave up; False when this CA
        cannot (the request then waits for its operator, and the failure notice says so)."""
        ...

    def revoke(self, certificate_pem: str, reason: str) -> RevocationResult:
        """Revoke a certificate this CA issued, ``reason`` one of ``REVOCATION_REASONS``: ``Revoked`` (also when
        the CA had already revoked it), or ``AwaitingPerson`` where only a person can. ``CaUnavailable`` when the
        CA cannot be reached (retried), ``CaError`` when it refuses (a certificate it did not issue)."""
        ...


class CannotWithdraw:
    """For a CA whose protocol has no way to close a request: cfssl signs at once; AD CS web enrollment offers its
    requester no deny of a pending request; ACME (RFC 8555) has no order cancellation, an order lapses by itself."""

    def withdraw(self, request_id: str, reason: str) -> bool:
        return False
