"""Move a pinned reference to a new Key Vault version: the one write a rollout makes, the smallest each API allows.

Which write, per kind (api-versions as ``discover`` reads them):

- ``app_gateway``: Application Gateway has no write for one ``sslCertificates`` entry (it is a property of the
  gateway, not a resource of its own), so the gateway is read (ApplicationGateways_Get) and written back whole
  (ApplicationGateways_CreateOrUpdate, a PUT) with only that certificate's ``keyVaultSecretId`` changed, under the
  gateway's ``etag`` (``If-Match``): a change made in between fails the write (412, transient) instead of being lost.
- ``front_door``: a Front Door secret has no PATCH (the 2024-02-01 API offers Secrets_Create, _Get, _Delete and
  _ListByProfile), so it is read and PUT back (Secrets_Create) with only ``parameters.secretVersion`` changed.
- ``api_management``: ApiManagementService_Update is a PATCH, but ``hostnameConfigurations`` is an array and a PATCH
  replaces an array whole: the PATCH carries only ``properties.hostnameConfigurations``, every entry as read, that
  host name's ``keyVaultId`` changed. The body is written as JSON, not through the SDK's update model, which would
  also send the defaults it fills in (``developerPortalStatus``, ``disableGateway``, ``legacyPortalStatus``...).
- ``container_apps``: an environment certificate's PATCH carries tags only (``CertificatePatch``), so it is read and
  PUT back (Certificates_CreateOrUpdate) with only ``certificateKeyVaultProperties.keyVaultUrl`` changed.
- ``app_service``: nothing to write: a certificate imported from Key Vault names no version and follows the newest by
  itself (``RolloutError``).

The write is a compare-and-swap: it is made only while the reference still names ``target.pinned_version``; a
reference found pinned to any other version, or versionless, is left alone (``RolloutError``, not transient). Whether
to move a reference at all is the lead's pure decision; this function only performs the write it is asked for.
Each request has ``timeout`` seconds to connect and to read and is not retried.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from typing import Any

from renewal.targets.azure.discover import client_options
from renewal.targets.model import Target

WRITE_ROLES = {
    "app_gateway": "Network Contributor (Microsoft.Network/applicationGateways/write)",
    "front_door": "CDN Profile Contributor (Microsoft.Cdn/profiles/secrets/write)",
    "api_management": "API Management Service Contributor (Microsoft.ApiManagement/service/write)",
    "container_apps": "Contributor on the environment (Microsoft.App/managedEnvironments/certificates/write)",
}
_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/[^/]+/[^/]+/(?P<name>[^/]+)"
    r"/(?P<child_type>[^/]+)/(?P<child>[^/]+)$",
    re.IGNORECASE,
)
_VERSIONED = re.compile(r"^(?P<base>https://[^/]+/secrets/[^/]+)(?:/(?P<version>[^/]*))?/?$")


class RolloutError(Exception):
    """The write was not made; ``transient`` when trying again later may succeed."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class Rollout:
    """The write made: the reference before and after."""

    resource_id: str
    before: str
    after: str


def update_reference(
    target: Target,
    new_version: str,
    credential: Any,
    *,
    base_url: str | None = None,
    timeout: float = 30.0,
    connection_verify: str | None = None,
) -> Rollout:
    """Move ``target`` (pinned to ``target.pinned_version``) to ``new_version``; see the module for each write."""
    from azure.core.exceptions import AzureError, HttpResponseError

    if target.kind == "app_service":
        raise RolloutError(
            f"{target.name}: App Service certificates imported from Key Vault follow the newest version by themselves"
        )
    if target.kind not in WRITE_ROLES:
        raise RolloutError(f"{target.name}: certlc does not write {target.kind} references")
    if target.pickup != "pinned" or not target.pinned_version:
        raise RolloutError(f"{target.name}: only a pinned reference is moved, this one is {target.pickup}")
    if not re.fullmatch(r"[0-9A-Za-z]{1,64}", new_version):
        raise RolloutError(f"{new_version!r} is not a Key Vault version")
    match = _ID.match(target.resource_id)
    if match is None:
        raise RolloutError(f"{target.name}: {target.resource_id!r} is not the id of a reference certlc can write")
    options = client_options(base_url, timeout, connection_verify, polling_interval=1)
    writer = {
        "app_gateway": _app_gateway,
        "front_door": _front_door,
        "api_management": _api_management,
        "container_apps": _container_apps,
    }[target.kind]
    try:
        before, after = writer(match, target, new_version, credential, options, timeout)
    except HttpResponseError as exc:
        code = getattr(getattr(exc, "error", None), "code", None) or ""
        if exc.status_code == 403:
            raise RolloutError(
                f"{target.name}: the identity may not write {target.resource_id} (HTTP 403 {code}): grant it "
                f"{WRITE_ROLES[target.kind]}"
            ) from exc
        transient = exc.status_code in (408, 409, 412, 429) or (exc.status_code or 0) >= 500
        raise RolloutError(f"{target.name}: ARM answered HTTP {exc.status_code} {code}", transient=transient) from exc
    except AzureError as exc:
        raise RolloutError(f"{target.name}: ARM could not be reached: {type(exc).__name__}", transient=True) from exc
    return Rollout(target.resource_id, before, after)


def _moved(target: Target, current: str | None, new_version: str) -> str:
    """``current`` with its version replaced, when it still names the target's pinned version."""
    match = _VERSIONED.match(current or "")
    if match is None:
        raise RolloutError(f"{target.name}: the reference {current!r} is not a Key Vault secret URL")
    if (match["version"] or "") != target.pinned_version:
        found = match["version"] or "no version (versionless)"
        raise RolloutError(f"{target.name}: the reference names {found}, not {target.pinned_version}: left alone")
    return f"{match['base']}/{new_version}"


def _app_gateway(
    match: re.Match[str], target: Target, new_version: str, credential: Any, options: dict, timeout: float
):
    from azure.mgmt.network import NetworkManagementClient

    with NetworkManagementClient(credential, match["sub"], **options) as client:
        gateway = client.application_gateways.get(match["rg"], match["name"])
        certificate = next(
            (c for c in gateway.ssl_certificates or () if (c.name or "").lower() == match["child"].lower()), None
        )
        if certificate is None:
            raise RolloutError(f"{target.name}: the gateway has no SSL certificate {match['child']} any more")
        before = certificate.key_vault_secret_id
        certificate.key_vault_secret_id = _moved(target, before, new_version)
        poller = client.application_gateways.begin_create_or_update(
            match["rg"], match["name"], gateway, headers={"If-Match": gateway.etag} if gateway.etag else {}
        )
        poller.result(timeout=timeout)
        return before, certificate.key_vault_secret_id


def _front_door(match: re.Match[str], target: Target, new_version: str, credential: Any, options: dict, timeout: float):
    from azure.mgmt.cdn import CdnManagementClient

    with CdnManagementClient(credential, match["sub"], **options) as client:
        secret = client.secrets.get(match["rg"], match["name"], match["child"])
        parameters = secret.parameters
        if getattr(parameters, "type", None) != "CustomerCertificate":
            raise RolloutError(f"{target.name}: the secret is not a customer certificate any more")
        if parameters.use_latest_version or parameters.secret_version != target.pinned_version:
            found = "the latest version" if parameters.use_latest_version else parameters.secret_version
            raise RolloutError(f"{target.name}: the secret names {found}, not {target.pinned_version}: left alone")
        before = parameters.secret_version
        parameters.secret_version = new_version
        poller = client.secrets.begin_create(match["rg"], match["name"], match["child"], secret)
        poller.result(timeout=timeout)
        return before, new_version


def _api_management(
    match: re.Match[str], target: Target, new_version: str, credential: Any, options: dict, timeout: float
):
    from azure.mgmt.apimanagement import ApiManagementClient

    with ApiManagementClient(credential, match["sub"], **options) as client:
        service = client.api_management_service.get(match["rg"], match["name"])
        configurations = list(service.hostname_configurations or ())
        entry = next((c for c in configurations if (c.host_name or "").lower() == match["child"].lower()), None)
        if entry is None:
            raise RolloutError(f"{target.name}: the service has no host name {match['child']} any more")
        before = entry.key_vault_id
        entry.key_vault_id = _moved(target, before, new_version)
        # The SDK's update model fills defaults (developerPortalStatus, disableGateway, enableClientCertificate,
        # legacyPortalStatus, restore) that would be written too: the body is the one member, serialized as is.
        body = {"properties": {"hostnameConfigurations": [entry.serialize() for entry in configurations]}}
        client.api_management_service.begin_update(
            match["rg"], match["name"], io.BytesIO(json.dumps(body).encode()), content_type="application/json"
        ).result(timeout=timeout)
        return before, entry.key_vault_id


def _container_apps(
    match: re.Match[str], target: Target, new_version: str, credential: Any, options: dict, timeout: float
):
    from azure.mgmt.appcontainers import ContainerAppsAPIClient

    with ContainerAppsAPIClient(credential, match["sub"], **options) as client:
        certificate = client.certificates.get(match["rg"], match["name"], match["child"])
        vault = certificate.properties.certificate_key_vault_properties if certificate.properties else None
        if vault is None:
            raise RolloutError(f"{target.name}: the certificate is not imported from Key Vault any more")
        before = vault.key_vault_url
        vault.key_vault_url = _moved(target, before, new_version)
        client.certificates.create_or_update(match["rg"], match["name"], match["child"], certificate)
        return before, vault.key_vault_url
