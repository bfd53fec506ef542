"""Builds the Azure SDK clients from app settings; heavy SDKs are imported lazily.

Identity: ``DefaultAzureCredential`` (managed identity in Azure). For the local
emulator only, ``CERTLC_LOCAL_TOKEN`` gives a static bearer token; it is refused
for any vault that is not on loopback so it can never leak to a real service.
``CERTLC_KEYVAULT_CA_BUNDLE`` trusts the emulator's own CA.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from renewal.errors import ConfigError

QUEUE_CONNECTION_DEFAULT = "CertlcStorage"
QUEUE_NAME_DEFAULT = "certlc-renewals"


class ConnectionConfigError(ConfigError):
    """A connection setting is missing or points somewhere it must not."""


class StaticTokenCredential:
    """A ``TokenCredential`` that always returns one token (local emulators only)."""

    def __init__(self, token: str, lifetime_seconds: int = 3600) -> None:
        self._token = token
        self._lifetime = lifetime_seconds

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, int(time.time()) + self._lifetime)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo(self._token, int(time.time()) + self._lifetime)


def is_loopback_host(host: str) -> bool:
    if host.strip("[]") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    return is_loopback_host(urlsplit(url).hostname or "")


def credential_for(url: str, env: Mapping[str, str]) -> Any:
    token = env.get("CERTLC_LOCAL_TOKEN", "")
    if token:
        if not is_loopback_url(url):
            raise ConnectionConfigError(
                f"CERTLC_LOCAL_TOKEN is set but {url} is not a loopback address: "
                "a static token is for the local emulators only; unset it to use managed identity"
            )
        return StaticTokenCredential(token)
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def certificate_client(vault_url: str, env: Mapping[str, str], **kwargs: Any) -> Any:
    from azure.keyvault.certificates import CertificateClient

    options: dict[str, Any] = {}
    bundle = env.get("CERTLC_KEYVAULT_CA_BUNDLE", "")
    if bundle:
        options["connection_verify"] = bundle
        options["verify_challenge_resource"] = False
    options.update(kwargs)
    return CertificateClient(vault_url, credential_for(vault_url, env), **options)


def queue_client(env: Mapping[str, str], queue_name: str | None = None, **kwargs: Any) -> Any:
    """A queue client speaking the Functions host's base64 message encoding.

    The connection follows the Functions convention: ``<Conn>`` holds a connection
    string, or ``<Conn>__queueServiceUri`` names the endpoint for identity-based access.
    """
    from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

    connection = env.get("CERTLC_QUEUE_CONNECTION", QUEUE_CONNECTION_DEFAULT)
    name = queue_name or env.get("CERTLC_QUEUE_NAME", QUEUE_NAME_DEFAULT)
    codecs = {"message_encode_policy": TextBase64EncodePolicy(), "message_decode_policy": TextBase64DecodePolicy()}
    codecs.update(kwargs)
    conn_string = env.get(connection, "")
    if conn_string:
        return QueueClient.from_connection_string(conn_string, name, **codecs)
    service_uri = env.get(f"{connection}__queueServiceUri", "")
    if not service_uri:
        raise ConnectionConfigError(
            f"no queue connection: set {connection} (connection string) or "
            f"{connection}__queueServiceUri (identity-based)"
        )
    from azure.identity import DefaultAzureCredential

    return QueueClient(service_uri, name, credential=DefaultAzureCredential(), **codecs)
