"""Key Vault's bearer challenge and a tiny RBAC model (token -> role -> allowed actions).

Roles mirror the built-in roles certlc relies on: ``officer`` is Key Vault Certificates
Officer plus Key Vault Secrets User (downloads), ``reader`` is Key Vault Certificates
User-like read access without secrets, ``none`` is an identity with no role assignment.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum

from .errors import KeyVaultError

CHALLENGE = (
    'Bearer authorization="https://login.windows.net/00000000-0000-0000-0000-000000000000", '
    'resource="https://vault.azure.net"'
)
DEFAULT_TOKENS: dict[str, str] = {
    "certlc-local-officer": "officer",
    "certlc-local-reader": "reader",
    "certlc-local-none": "none",
}


class Action(Enum):
    CERT_READ = "Microsoft.KeyVault/vaults/certificates/read"
    CERT_WRITE = "Microsoft.KeyVault/vaults/certificates/write"
    SECRET_READ = "Microsoft.KeyVault/vaults/secrets/getSecret/action"  # noqa: S105 - an RBAC action name


ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    "officer": frozenset(Action),
    "reader": frozenset({Action.CERT_READ}),
    "none": frozenset(),
}


class TokenAuthorizer:
    def __init__(self, tokens: Mapping[str, str]) -> None:
        unknown = {role for role in tokens.values() if role not in ROLE_ACTIONS}
        if unknown:
            raise ValueError(f"unknown role(s) {sorted(unknown)}: use one of {sorted(ROLE_ACTIONS)}")
        self._tokens = dict(tokens)

    @property
    def tokens(self) -> dict[str, str]:
        return dict(self._tokens)

    def first_token(self, role: str) -> str:
        for token, token_role in self._tokens.items():
            if token_role == role:
                return token
        raise LookupError(f"no token with role {role!r} is configured")

    def authorize(self, authorization: str | None, action: Action, vault: str) -> str:
        """Return the caller's role, or raise the 401/403 Key Vault would answer."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise KeyVaultError(
                401,
                "Unauthorized",
                "AKV10000: Request is missing a Bearer or PoP token.",
                headers={"WWW-Authenticate": CHALLENGE},
            )
        role = self._tokens.get(token)
        if role is None:
            raise KeyVaultError(
                401,
                "Unauthorized",
                "AKV10032: Invalid issuer. The token is not valid for this emulator.",
                headers={"WWW-Authenticate": CHALLENGE},
            )
        if action not in ROLE_ACTIONS[role]:
            raise KeyVaultError(
                403,
                "Forbidden",
                "Caller is not authorized to perform action on resource.\r\n"
                f"Caller: role={role}\r\nAction: '{action.value}'\r\n"
                f"Assignment: (not found)\r\nVault: {vault}\r\n",
                inner_code="ForbiddenByRbac",
            )
        return role
