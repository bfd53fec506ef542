"""JSON shapes of Key Vault responses (CertificateBundle, item, operation, deleted, secret)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from . import policy as policies
from .pki import add_months, x5t
from .store import Certificate, Pending, Version

RECOVERY = {"recoveryLevel": "CustomizedRecoverable+Purgeable", "recoverableDays": 7}
PENDING_DETAILS_SELF = (
    "Pending certificate created. Certificate request is in progress. This may take some time based on the "
    "issuer provider. Please check again later."
)
PENDING_DETAILS_UNKNOWN = "Pending certificate created. Please Perform Merge to complete the request."


@dataclass(frozen=True)
class Vault:
    """The vault a request reached: its name and the origin clients use for it."""

    name: str
    base_url: str
    api_version: str


def x5t_of(version: Version) -> str:
    return x5t(x509.load_der_x509_certificate(base64.b64decode(version.cer)))


def certificate(vault: Vault, cert: Certificate, version: Version) -> dict[str, Any]:
    """A placeholder version (pending manual create) has no ``x5t`` and no ``cer``, as Key Vault shows it."""
    base = vault.base_url
    body: dict[str, Any] = {
        "id": f"{base}/certificates/{cert.name}/{version.version}",
        "kid": f"{base}/keys/{cert.name}/{version.version}",
        "sid": f"{base}/secrets/{cert.name}/{version.version}",
    }
    if not version.placeholder:
        body["x5t"] = x5t_of(version)
        body["cer"] = version.cer
    body["attributes"] = {**version.attributes, **RECOVERY}
    if version.tags:
        body["tags"] = dict(version.tags)
    body["policy"] = policies.render(cert.policy, base, cert.name)
    if cert.pending is not None:
        body["pending"] = {"id": f"{base}/certificates/{cert.name}/pending"}
    return body


def item(vault: Vault, cert: Certificate, version: Version, *, with_version: bool) -> dict[str, Any]:
    suffix = f"/{version.version}" if with_version else ""
    body: dict[str, Any] = {"id": f"{vault.base_url}/certificates/{cert.name}{suffix}"}
    if not version.placeholder:
        body["x5t"] = x5t_of(version)
    body["attributes"] = dict(version.attributes)
    body["subject"] = ""
    if version.tags:
        body["tags"] = dict(version.tags)
    return body


def operation(vault: Vault, cert: Certificate, pending: Pending) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f"{vault.base_url}/certificates/{cert.name}/pending",
        "issuer": dict(pending.issuer),
        "csr": pending.csr,
        "cancellation_requested": pending.cancellation_requested,
        "status": pending.status,
    }
    if pending.status == "inProgress" and pending.status_details:
        body["status_details"] = pending.status_details
    if pending.target:
        body["target"] = pending.target
    body["request_id"] = pending.request_id
    return body


def deleted(vault: Vault, cert: Certificate) -> dict[str, Any]:
    assert cert.deleted is not None
    head = {"recoveryId": f"{vault.base_url}/deletedcertificates/{cert.name}", **cert.deleted}
    latest = cert.latest()
    if latest is None:  # only a pending operation: Key Vault shows its disabled placeholder version
        created = cert.policy["attributes"]["created"]
        return {
            **head,
            "id": f"{vault.base_url}/certificates/{cert.name}",
            "attributes": {**placeholder_attributes(cert.policy, created), **RECOVERY},
            "policy": policies.render(cert.policy, vault.base_url, cert.name),
        }
    return {**head, **certificate(vault, cert, latest)}


def pending_only_item(vault: Vault, cert: Certificate) -> dict[str, Any]:
    """A certificate with only a pending operation, as ``includePending=true`` lists it."""
    placeholder = cert.placeholder()
    if placeholder is not None:
        return item(vault, cert, placeholder, with_version=False)
    created = cert.policy["attributes"]["created"]
    return {
        "id": f"{vault.base_url}/certificates/{cert.name}",
        "attributes": placeholder_attributes(cert.policy, created),
        "subject": "",
    }


def deleted_item(vault: Vault, cert: Certificate) -> dict[str, Any]:
    """A DeletedCertificateItem: the item of the newest version with the recovery fields."""
    assert cert.deleted is not None
    latest = cert.latest()
    body = pending_only_item(vault, cert) if latest is None else item(vault, cert, latest, with_version=False)
    return {"recoveryId": f"{vault.base_url}/deletedcertificates/{cert.name}", **cert.deleted, **body}


def placeholder_attributes(policy: dict[str, Any], created: int) -> dict[str, Any]:
    """As recorded for a pending-only certificate: disabled, nbf 10 minutes before creation, exp validity later."""
    start = datetime.fromtimestamp(created, tz=UTC)
    exp = add_months(start, int(policy["x509_props"]["validity_months"]))
    return {"enabled": False, "nbf": created - 600, "exp": int(exp.timestamp()), "created": created, "updated": created}


def secret(vault: Vault, cert: Certificate, version: Version, value: str) -> dict[str, Any]:
    base = vault.base_url
    body: dict[str, Any] = {
        "value": value,
        "contentType": version.content_type,
        "id": f"{base}/secrets/{cert.name}/{version.version}",
        "managed": True,
        "attributes": {**version.attributes, **RECOVERY},
        "kid": f"{base}/keys/{cert.name}/{version.version}",
    }
    if version.tags:
        body["tags"] = dict(version.tags)
    return body
