"""The Key Vault adapter: the only place the renewal path talks to Key Vault.

It reads certificates and policies and drives pending operations; it never reads a
secret or a private key. SDK errors become the few exceptions the workflow decides on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from renewal.vaults import Vault


class KeyVaultError(Exception):
    """A Key Vault call failed; ``transient`` says whether retrying can help."""

    def __init__(
        self, message: str, *, transient: bool, status: int | None = None, retry_after_seconds: int | None = None
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status
        self.retry_after_seconds = retry_after_seconds


class PendingExists(Exception):
    """Key Vault refused a create because a pending operation already exists (409)."""


class PendingGone(Exception):
    """The pending operation to merge into no longer exists (404 PendingCertificateNotFound)."""


@dataclass(frozen=True)
class CertificateSnapshot:
    """Everything the decisions need about a certificate's current version, from one GET."""

    vault: str
    name: str
    version: str
    enabled: bool
    not_before: datetime | None
    expires_on: datetime | None
    issuer_name: str | None
    tags: Mapping[str, str]
    cer: bytes | None
    policy: Any = field(repr=False, compare=False)  # the SDK CertificatePolicy, passed back unchanged


@dataclass(frozen=True)
class PendingOperation:
    request_id: str | None
    status: str
    csr: bytes | None
    error: str | None = None


@dataclass(frozen=True)
class CertificateSummary:
    """One entry of a vault listing (no extra call per certificate)."""

    name: str
    version: str | None
    enabled: bool
    not_before: datetime | None
    expires_on: datetime | None
    tags: Mapping[str, str]
    has_certificate: bool = True  # the listing carries the version's x5t only when it holds a certificate
    thumbprint: str | None = None  # that x5t as Key Vault shows it (SHA-1, upper-case hex): which certificate it is


class KeyVault:
    def __init__(self, client: Any, vault: Vault) -> None:
        self._client = client
        self.vault = vault

    def get(self, name: str) -> CertificateSnapshot | None:
        with _translated(f"read certificate {name!r}") as t:
            try:
                cert = self._client.get_certificate(name)
            except t.not_found:
                return None
        return self._snapshot(cert)

    def version(self, name: str, version: str) -> CertificateSnapshot | None:
        """One version as it is now (its tags, whether it is enabled), or None when the certificate is gone."""
        with _translated(f"read version {version} of {name!r}") as t:
            try:
                cert = self._client.get_certificate_version(name, version)
            except t.not_found:
                return None
        return self._snapshot(cert)

    def current(self, name: str) -> CertificateSnapshot | None:
        """The version certlc decides on: the newest one, unless it is the disabled placeholder Key Vault may show
        for a pending create; then the newest good version, with the placeholder's policy (the certificate's)."""
        cert = self.get(name)
        if cert is None or not is_placeholder(cert):
            return cert
        good = self._last_good_version(name)
        return replace(good, policy=cert.policy, issuer_name=cert.issuer_name) if good else cert

    def versions(self, name: str) -> list[Any]:
        """Every version's properties (tags, created, expires): the last good version, and a certificate's history."""
        with _translated(f"list the versions of {name!r}"):
            return list(self._client.list_properties_of_certificate_versions(name))

    def _last_good_version(self, name: str) -> CertificateSnapshot | None:
        good = [p for p in self.versions(name) if p.enabled and p.x509_thumbprint and p.created_on]
        if not good:
            return None
        with _translated(f"read the last good version of {name!r}"):
            # created times have whole seconds and can tie; a renewed version expires later than the one it replaces
            newest = max(good, key=lambda p: (p.created_on, p.expires_on or p.created_on))
            return self._snapshot(self._client.get_certificate_version(name, newest.version))

    def create_pending(
        self, name: str, policy: Any, tags: Mapping[str, str], *, retry_throttled: bool = True
    ) -> PendingOperation:
        """Start a new version with the current policy; the CSR comes back in the same response. Without
        ``retry_throttled`` the SDK does not try again on its own: a 429 reaches the caller, whose shared budget
        must learn of it (``renewal.pacing``)."""
        options = {} if retry_throttled else {"retry_total": 0}
        with _translated(f"create a new version of {name!r}") as t:
            try:
                poller = self._client.begin_create_certificate(name, policy, tags=dict(tags), enabled=True, **options)
            except t.conflict as exc:
                raise PendingExists(str(exc)) from exc
            return _operation(poller.result())

    def get_pending(self, name: str) -> PendingOperation | None:
        with _translated(f"read the pending operation of {name!r}") as t:
            try:
                return _operation(self._client.get_certificate_operation(name))
            except t.not_found:
                return None

    def delete_pending(self, name: str) -> None:
        with _translated(f"delete the pending operation of {name!r}") as t:
            try:
                self._client.delete_certificate_operation(name)
            except t.not_found:
                return

    def merge(self, name: str, chain_der: list[bytes], tags: Mapping[str, str]) -> CertificateSnapshot:
        with _translated(f"merge the issued certificate into {name!r}") as t:
            try:
                cert = self._client.merge_certificate(name, chain_der, tags=dict(tags), enabled=True)
            except t.not_found as exc:
                raise PendingGone(str(exc)) from exc
        return self._snapshot(cert)

    def _snapshot(self, cert: Any) -> CertificateSnapshot:
        props = cert.properties
        return CertificateSnapshot(
            vault=self.vault.name,
            name=cert.name,
            version=props.version,
            enabled=bool(props.enabled),
            not_before=props.not_before,
            expires_on=props.expires_on,
            issuer_name=cert.policy.issuer_name if getattr(cert, "policy", None) else None,
            tags=dict(props.tags or {}),
            cer=bytes(cert.cer) if cert.cer else None,
            policy=getattr(cert, "policy", None),
        )

    def disable_version(self, name: str, version: str) -> None:
        """Retire a replaced version (``renewal.targets``): it stays in the vault, disabled; it can be enabled again."""
        with _translated(f"disabling version {version} of {name}"):
            self._client.update_certificate_properties(name, version, enabled=False)

    def policy(self, name: str) -> Any:
        """The certificate's policy (also while its first version is still pending); None when there is none."""
        with _translated(f"read the policy of {name!r}") as t:
            try:
                return self._client.get_certificate_policy(name)
            except t.not_found:
                return None

    def update_policy(self, name: str, policy: Any) -> None:
        """The certificate's policy, for its next version (a compromise renewal puts its key reuse back)."""
        with _translated(f"update the policy of {name!r}"):
            self._client.update_certificate_policy(name, policy)

    def update_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        with _translated(f"update the tags of {name!r}"):
            self._client.update_certificate_properties(name, version, tags=dict(tags))

    def list(self) -> Iterator[CertificateSummary]:
        with _translated(f"list certificates in {self.vault.name!r}"):
            for props in self._client.list_properties_of_certificates():
                yield CertificateSummary(
                    name=props.name,
                    version=props.version,
                    enabled=bool(props.enabled),
                    not_before=props.not_before,
                    expires_on=props.expires_on,
                    tags=dict(props.tags or {}),
                    has_certificate=props.x509_thumbprint is not None,
                    thumbprint=props.x509_thumbprint.hex().upper() if props.x509_thumbprint else None,
                )


POLICY_FIELDS = (
    "subject", "exportable", "key_type", "key_size", "key_curve_name", "enhanced_key_usage", "key_usage",
    "content_type", "validity_in_months", "lifetime_actions", "certificate_type", "certificate_transparency",
    "san_emails", "san_dns_names", "san_user_principal_names", "san_ip_addresses", "san_uris",
)  # fmt: skip


def with_key_reuse(policy: Any, reuse: bool) -> Any:
    """A copy of an SDK ``CertificatePolicy`` that differs only in ``reuse_key``, built from its public fields (the
    constructor takes each under its property's name)."""
    from azure.keyvault.certificates import CertificatePolicy

    kept = {f: getattr(policy, f) for f in POLICY_FIELDS if getattr(policy, f, None) is not None}
    return CertificatePolicy(issuer_name=policy.issuer_name, reuse_key=reuse, **kept)


def is_placeholder(cert: CertificateSnapshot | CertificateSummary) -> bool:
    """A version with no certificate in it and disabled: how Key Vault may show a create that is still pending.

    A version an operator disabled still carries its certificate; a placeholder has none (Key Vault still gives
    it nbf/exp from the policy's validity, so the dates cannot tell them apart).
    """
    has_certificate = cert.cer is not None if isinstance(cert, CertificateSnapshot) else cert.has_certificate
    return not cert.enabled and not has_certificate


def _operation(op: Any) -> PendingOperation:
    error = getattr(op, "error", None)
    return PendingOperation(
        request_id=getattr(op, "request_id", None),
        status=(op.status or "").lower(),
        csr=bytes(op.csr) if getattr(op, "csr", None) else None,
        error=getattr(error, "message", None) if error else None,
    )


class _translated:
    """Context manager mapping SDK errors onto KeyVaultError, keeping 404/409 catchable by the caller."""

    def __init__(self, doing: str) -> None:
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

        self.doing = doing
        self.not_found = ResourceNotFoundError
        self.conflict = ResourceExistsError

    def __enter__(self) -> _translated:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or isinstance(exc, PendingExists | PendingGone | KeyVaultError):
            return False
        from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

        if isinstance(exc, ServiceRequestError | ServiceResponseError):
            from renewal.clients import is_timeout

            if is_timeout(exc):  # over its deadline: retried from the queue like any outage, never permanent
                raise KeyVaultError(
                    f"could not {self.doing}: Key Vault did not answer in time ({exc}); the deadlines are "
                    "CERTLC_KEYVAULT_CONNECT_TIMEOUT and CERTLC_KEYVAULT_READ_TIMEOUT",
                    transient=True,
                ) from exc
            raise KeyVaultError(f"could not {self.doing}: Key Vault unreachable ({exc})", transient=True) from exc
        if isinstance(exc, HttpResponseError):
            status = exc.status_code
            retry_after = _retry_after(exc)
            if status in (401, 403):
                raise KeyVaultError(
                    f"could not {self.doing}: access denied ({status}); grant the function's identity "
                    "'Key Vault Certificates Officer' on the vault",
                    transient=False,
                    status=status,
                ) from exc
            transient = status is None or status == 429 or status >= 500
            raise KeyVaultError(
                f"could not {self.doing}: Key Vault answered {status}: {_error_message(exc)}",
                transient=transient,
                status=status,
                retry_after_seconds=retry_after,
            ) from exc
        return False


def _retry_after(exc: Any) -> int | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _error_message(exc: Any) -> str:
    error = getattr(exc, "error", None)
    if error is not None and getattr(error, "message", None):
        return f"{error.code}: {error.message}"
    return str(exc.message if hasattr(exc, "message") else exc).splitlines()[0]
