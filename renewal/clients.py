"""Builds the Azure SDK clients from app settings; heavy SDKs are imported lazily.

Identity: ``DefaultAzureCredential`` (managed identity in Azure). For the local
emulator only, ``CERTLC_LOCAL_TOKEN`` gives a static bearer token; it is refused
for any vault that is not on loopback so it can never leak to a real service.
``CERTLC_KEYVAULT_CA_BUNDLE`` trusts the emulator's own CA.

Time: every Key Vault request has a connect and a read deadline
(``CERTLC_KEYVAULT_CONNECT_TIMEOUT``, ``CERTLC_KEYVAULT_READ_TIMEOUT``) instead of the SDK's
300 s, and a request that runs out of time is not retried inside the call: the error goes
to the caller at once (the renewal retries it from the queue, with back-off), so one call
waits at most the connect plus the read deadline per request it sends.

Storage (queues and the lock's blobs) gets the same treatment with fixed deadlines: the storage SDKs'
defaults (20 s to connect, 60 s per read, three retries 15 s apart and more) kept a command on a stopped
Azurite busy for 80 s; here a refused connection is retried three times within about 7 s, and a request
over its deadline is not repeated.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from renewal.errors import ConfigError, causes
from renewal.setting_values import seconds_setting
from renewal.trust import ca_bundle

QUEUE_CONNECTION_DEFAULT = "CertlcStorage"
QUEUE_NAME_DEFAULT = "certlc-renewals"
KEYVAULT_CONNECT_TIMEOUT_DEFAULT = 10.0
KEYVAULT_READ_TIMEOUT_DEFAULT = 30.0
STORAGE_CONNECT_TIMEOUT = 10.0
STORAGE_READ_TIMEOUT = 30.0
STORAGE_RETRIES = 3  # after 1, 2 and 4 s


class ConnectionConfigError(ConfigError):
    """A connection setting is missing or points somewhere it must not."""


@dataclass(frozen=True)
class KeyVaultTimeouts:
    """Seconds to open a connection to Key Vault, and to wait for each read of its answer."""

    connect: float = KEYVAULT_CONNECT_TIMEOUT_DEFAULT
    read: float = KEYVAULT_READ_TIMEOUT_DEFAULT


def keyvault_timeouts(env: Mapping[str, str]) -> KeyVaultTimeouts:
    return KeyVaultTimeouts(
        connect=seconds_setting(
            env, "CERTLC_KEYVAULT_CONNECT_TIMEOUT", KEYVAULT_CONNECT_TIMEOUT_DEFAULT, ConnectionConfigError
        ),
        read=seconds_setting(env, "CERTLC_KEYVAULT_READ_TIMEOUT", KEYVAULT_READ_TIMEOUT_DEFAULT, ConnectionConfigError),
    )


def is_timeout(exc: BaseException) -> bool:
    """Whether a request failed because a connect or read deadline passed.

    requests reports a stall in the middle of a body as a ``ConnectionError`` wrapping urllib3's
    ``ReadTimeoutError``, azure-core turns that into a plain ``ServiceRequestError``, and smtplib a
    reply that never came into ``SMTPServerDisconnected``, so the wrapped exceptions are looked at too.
    """
    import requests
    import urllib3.exceptions
    from azure.core.exceptions import ServiceRequestTimeoutError, ServiceResponseTimeoutError

    kinds = (
        TimeoutError,
        requests.Timeout,
        urllib3.exceptions.TimeoutError,
        ServiceRequestTimeoutError,
        ServiceResponseTimeoutError,
    )
    refused = urllib3.exceptions.NewConnectionError  # a refused connection, though it subclasses ConnectTimeoutError
    return any(isinstance(e, kinds) and not isinstance(e, refused) for e in causes(exc))


def _retry_policy(**options: Any) -> Any:
    """The SDK's retry policy (``retry_*`` options honoured), except that a request over its deadline is not
    sent again: four tries of a stalled GET would wait four read deadlines plus back-off."""
    from azure.core.pipeline.policies import RetryPolicy

    class TimeoutsNotRetried(RetryPolicy):
        def increment(self, settings: Any, response: Any = None, error: Any = None) -> bool:
            if error is not None and is_timeout(error):
                return False
            return super().increment(settings, response=response, error=error)

    return TimeoutsNotRetried(**options)


def storage_client_options(retry_class: type, **kwargs: Any) -> dict[str, Any]:
    """Options of a storage client: deadlines, and ``retry_class`` (the package's own ``ExponentialRetry``)
    with short back-off and no retry of a request over its deadline; ``kwargs`` override them (the doctor
    asks for no retries at all with ``retry_total=0``)."""
    options: dict[str, Any] = {"connection_timeout": STORAGE_CONNECT_TIMEOUT, "read_timeout": STORAGE_READ_TIMEOUT}
    if "retry_total" not in kwargs and "retry_policy" not in kwargs:

        class TimeoutsNotRetried(retry_class):
            def increment(self, settings: Any, request: Any, response: Any = None, error: Any = None) -> bool:
                if error is not None and is_timeout(error):
                    return False
                return super().increment(settings, request, response=response, error=error)

            def get_backoff_time(self, settings: Any) -> float:
                return float(2 ** max(0, settings["count"] - 1))

        options["retry_policy"] = TimeoutsNotRetried(retry_total=STORAGE_RETRIES)
    return options | kwargs


def keyvault_client_options(
    env: Mapping[str, str], timeouts: KeyVaultTimeouts | None = None, **kwargs: Any
) -> dict[str, Any]:
    """Options of every Key Vault SDK client (certificates here, secrets in ``certlc sync``).

    ``connection_timeout`` and ``read_timeout`` go to azure-core's ``RequestsTransport``, which sends
    them to requests as ``timeout=(connect, read)``; ``kwargs`` override them.
    """
    timeouts = timeouts or keyvault_timeouts(env)
    options: dict[str, Any] = {"connection_timeout": timeouts.connect, "read_timeout": timeouts.read}
    bundle = ca_bundle(env, "CERTLC_KEYVAULT_CA_BUNDLE", ConnectionConfigError)
    if bundle:
        options["connection_verify"] = bundle
        options["verify_challenge_resource"] = False
    options.update(kwargs)
    if "retry_policy" not in options:
        options["retry_policy"] = _retry_policy(**options)
    return options


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


def certificate_client(
    vault_url: str, env: Mapping[str, str], *, timeouts: KeyVaultTimeouts | None = None, **kwargs: Any
) -> Any:
    """``timeouts`` already parsed (the runtime's settings), else read from ``env``."""
    from azure.keyvault.certificates import CertificateClient

    options = keyvault_client_options(env, timeouts, **kwargs)
    return CertificateClient(vault_url, credential_for(vault_url, env), **options)


def _storage_client(
    client_class: Any, env: Mapping[str, str], name: str, service: str, purpose: str, options: dict[str, Any]
) -> Any:
    """A storage client on the queues' connection, following the Functions convention: ``<Conn>`` holds a
    connection string, or ``<Conn>__<service>ServiceUri`` names the endpoint for identity-based access."""
    connection = env.get("CERTLC_QUEUE_CONNECTION", QUEUE_CONNECTION_DEFAULT)
    conn_string = env.get(connection, "")
    if conn_string:
        return client_class.from_connection_string(conn_string, name, **options)
    service_uri = env.get(f"{connection}__{service}ServiceUri", "")
    if not service_uri:
        raise ConnectionConfigError(
            f"no {purpose}: set {connection} (connection string) or {connection}__{service}ServiceUri (identity-based)"
        )
    from azure.identity import DefaultAzureCredential

    return client_class(service_uri, name, credential=DefaultAzureCredential(), **options)


def queue_client(env: Mapping[str, str], queue_name: str | None = None, **kwargs: Any) -> Any:
    """A queue client speaking the Functions host's base64 message encoding."""
    from azure.storage.queue import ExponentialRetry, QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

    name = queue_name or env.get("CERTLC_QUEUE_NAME", QUEUE_NAME_DEFAULT)
    codecs = {"message_encode_policy": TextBase64EncodePolicy(), "message_decode_policy": TextBase64DecodePolicy()}
    options = storage_client_options(ExponentialRetry, **(codecs | kwargs))
    return _storage_client(QueueClient, env, name, "queue", "queue connection", options)


def blob_container_client(env: Mapping[str, str], container: str, **kwargs: Any) -> Any:
    """A blob container client on the queues' connection (the renewal lock's container)."""
    from azure.storage.blob import ContainerClient, ExponentialRetry

    options = storage_client_options(ExponentialRetry, **kwargs)
    return _storage_client(ContainerClient, env, container, "blob", "blob connection for the renewal lock", options)
