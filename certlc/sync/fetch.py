"""Reads a certificate's latest secret from an allow-listed vault with the app's credentials."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from certlc.sync.bundle import Bundle, parse_secret
from certlc.sync.errors import RenewalPending, SyncConfigError, SyncError
from renewal.vaults import Vault, is_valid_object_name, vaults_from_env

SYNC_EXTRA_INSTALL = "pip install 'certlc[sync]' (in a checkout: pip install '.[sync]')"


def secret_client(vault_url: str, env: Mapping[str, str], **kwargs: Any) -> Any:
    """A ``SecretClient`` with managed identity, or the local emulator's token and CA bundle, and the same
    connect and read deadlines as the renewal's certificate client."""
    try:
        from azure.keyvault.secrets import SecretClient
    except ModuleNotFoundError:
        raise SyncConfigError(f"certlc sync needs the Key Vault secrets SDK: {SYNC_EXTRA_INSTALL}") from None

    from renewal.clients import credential_for, keyvault_client_options

    return SecretClient(vault_url, credential_for(vault_url, env), **keyvault_client_options(env, **kwargs))


def resolve_vault(vault: str, name: str, env: Mapping[str, str]) -> Vault:
    """The vault from ``CERTLC_VAULTS``: a server only ever talks to a vault the operator listed."""
    vaults = vaults_from_env(env)
    found = vaults.get(vault.lower())
    if found is None:
        raise SyncConfigError(f"vault {vault!r} is not in CERTLC_VAULTS ({', '.join(sorted(vaults)) or 'empty'})")
    if not is_valid_object_name(name):
        raise SyncConfigError(f"{name!r} is not a valid Key Vault certificate name (1-127 of 0-9, a-z, A-Z, -)")
    return found


def fetch_bundle(vault: Vault, name: str, env: Mapping[str, str]) -> Bundle:
    """The latest version of ``name``: Key Vault keeps a certificate's key and chain as a secret of that name."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )

    from renewal.clients import is_timeout

    with secret_client(vault.url, env) as client:
        try:
            secret = client.get_secret(name)
        except ResourceNotFoundError as exc:
            raise SyncConfigError(f"certificate {name!r} was not found in vault {vault.name}") from exc
        except ClientAuthenticationError as exc:
            raise SyncError(f"{vault.name}: could not authenticate to Key Vault: {exc.message}") from exc
        except HttpResponseError as exc:
            if exc.status_code == 403 and "SecretDisabled" in _error_codes(exc):
                raise RenewalPending(
                    f"{vault.name}/{name}: a renewal is in progress (Key Vault keeps its new version disabled until "
                    "it is merged); keeping the current files"
                ) from exc
            if exc.status_code == 403:
                raise SyncConfigError(
                    f"{vault.name}: this identity may not read the secret {name!r} (grant Key Vault Secrets User)"
                ) from exc
            raise SyncError(f"{vault.name}/{name}: Key Vault answered {exc.status_code}: {exc.message}") from exc
        except (ServiceRequestError, ServiceResponseError) as exc:
            if is_timeout(exc):
                raise SyncError(
                    f"{vault.name}: Key Vault did not answer in time (CERTLC_KEYVAULT_CONNECT_TIMEOUT / "
                    "CERTLC_KEYVAULT_READ_TIMEOUT); a later round tries again"
                ) from exc
            raise SyncError(f"{vault.name}: Key Vault is unreachable: {exc.message}") from exc
    if not secret.value:
        raise SyncError(f"{vault.name}/{name}: the secret is empty")
    return parse_secret(secret.value, secret.properties.content_type or "", secret.properties.version or "", name)


def _error_codes(exc: Any) -> set[str]:
    """Key Vault's error code and inner error code (a disabled secret: ``Forbidden`` / ``SecretDisabled``)."""
    error = getattr(exc, "error", None)
    inner = getattr(error, "innererror", None) or {}
    codes = {getattr(error, "code", None), inner.get("code") if isinstance(inner, dict) else None}
    return {str(code) for code in codes if code}
