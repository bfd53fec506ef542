"""What an operation hands back to the HTTP layer: a :class:`Response`, or a :class:`KeyVaultError` raised with
Key Vault's error envelope ``{"error": {"code", "message", "innererror"?}}`` and an HTTP status.

Both live here because every operation module answers with them and none may import the server (it imports
them through the routes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

RECOVER_HINT = (
    "If you recently deleted this certificate you may be able to recover it using the correct recovery "
    "command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
)


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class KeyVaultError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        inner_code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.inner_code = inner_code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.inner_code:
            error["innererror"] = {"code": self.inner_code}
        return {"error": error}


def bad_parameter(message: str) -> KeyVaultError:
    return KeyVaultError(400, "BadParameter", message)


def certificate_not_found(name: str, version: str | None = None) -> KeyVaultError:
    ident = f"{name}/versions/{version}" if version else name
    return KeyVaultError(
        404,
        "CertificateNotFound",
        f"A certificate with (name/id) {ident} was not found in this key vault. {RECOVER_HINT}",
    )


def pending_not_found(name: str) -> KeyVaultError:
    return KeyVaultError(404, "PendingCertificateNotFound", f"Pending certificate not found: {name}")


def deleted_not_found(name: str) -> KeyVaultError:
    return KeyVaultError(404, "CertificateNotFound", f"Deleted Certificate not found: {name}")


def secret_not_found(name: str, version: str | None = None) -> KeyVaultError:
    ident = f"{name}/{version}" if version else name
    return KeyVaultError(
        404,
        "SecretNotFound",
        f"A secret with (name/id) {ident} was not found in this key vault. {RECOVER_HINT}",
    )


def secret_disabled() -> KeyVaultError:
    """What Key Vault answers for a disabled secret version (also the secret of a pending placeholder)."""
    return KeyVaultError(
        403, "Forbidden", "Operation get is not allowed on a disabled secret.", inner_code="SecretDisabled"
    )


def pending_conflict() -> KeyVaultError:
    """Create or import while the pending operation is inProgress (documented shape: code Forbidden, 409)."""
    return KeyVaultError(
        409,
        "Forbidden",
        "A new key vault certificate can not be created or imported while a pending key vault certificate's "
        "status is inProgress.",
    )


def issuer_not_found(name: str) -> KeyVaultError:
    return KeyVaultError(404, "CertificateIssuerNotFound", f"Issuer not found: {name}")


def contacts_not_found() -> KeyVaultError:
    return KeyVaultError(404, "ContactsNotFound", "Contacts not found")


def conflict(message: str) -> KeyVaultError:
    return KeyVaultError(409, "Conflict", message)
