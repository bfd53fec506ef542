"""The Key Vault REST routes the emulator answers, with the RBAC action each needs."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .auth import Action
from .backup import Backups
from .bundles import Vault
from .certificates import Certificates
from .contacts import Contacts
from .errors import Response
from .issuers import Issuers
from .schemas import OPERATIONS
from .throttling import weight


@dataclass(frozen=True)
class Services:
    """What the handlers act on: the certificates and the vault-wide records beside them."""

    certificates: Certificates
    issuers: Issuers
    contacts: Contacts
    backups: Backups


Handler = Callable[[Services, Vault, Mapping[str, str], Mapping[str, str], Any], Response]
_NAME = r"(?P<name>[^/]+)"
_VERSION = r"(?:/(?P<version>[^/]*))?/?"


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    operation: str  # the spec's operationId: schemas.OPERATIONS says what the request may carry
    action: Action
    handler: Handler
    throttle_kind: str = "other"


def _route(method: str, path: str, operation: str, action: Action, handler: Handler, kind: str = "other") -> Route:
    return Route(method, re.compile(f"^{path}$"), operation, action, handler, kind)


R, W = Action.CERT_READ, Action.CERT_WRITE
_ISSUER = r"/certificates/issuers/(?P<name>[^/]+)/?"
ROUTES: tuple[Route, ...] = (
    # Key Vault's own segments under /certificates first: they would otherwise read as certificate names.
    _route("GET", r"/certificates/issuers/?", "GetCertificateIssuers", R, lambda s, v, m, q, b: s.issuers.list(v, q)),
    _route("PUT", _ISSUER, "SetCertificateIssuer", W, lambda s, v, m, q, b: s.issuers.set(v, m["name"], b)),
    _route("PATCH", _ISSUER, "UpdateCertificateIssuer", W, lambda s, v, m, q, b: s.issuers.update(v, m["name"], b)),
    _route("GET", _ISSUER, "GetCertificateIssuer", R, lambda s, v, m, q, b: s.issuers.get(v, m["name"])),
    _route("DELETE", _ISSUER, "DeleteCertificateIssuer", W, lambda s, v, m, q, b: s.issuers.delete(v, m["name"])),
    _route("PUT", r"/certificates/contacts/?", "SetCertificateContacts", W, lambda s, v, m, q, b: s.contacts.set(v, b)),
    _route("GET", r"/certificates/contacts/?", "GetCertificateContacts", R, lambda s, v, m, q, b: s.contacts.get(v)),
    _route(
        "DELETE",
        r"/certificates/contacts/?",
        "DeleteCertificateContacts",
        W,
        lambda s, v, m, q, b: s.contacts.delete(v),
    ),
    _route("POST", r"/certificates/restore/?", "RestoreCertificate", W, lambda s, v, m, q, b: s.backups.restore(v, b)),
    _route(
        "POST",
        rf"/certificates/{_NAME}/backup/?",
        "BackupCertificate",
        W,  # the blob carries the private keys: an officer's action, not a reader's
        lambda s, v, m, q, b: s.backups.backup(v, m["name"]),
    ),
    _route("GET", r"/certificates/?", "GetCertificates", R, lambda s, v, m, q, b: s.certificates.list(v, q)),
    _route(
        "POST",
        rf"/certificates/{_NAME}/create",
        "CreateCertificate",
        W,
        lambda s, v, m, q, b: s.certificates.create(v, m["name"], b),
        "create",
    ),
    _route(
        "POST",
        rf"/certificates/{_NAME}/import",
        "ImportCertificate",
        W,
        lambda s, v, m, q, b: s.certificates.import_(v, m["name"], b),
    ),
    _route(
        "GET",
        rf"/certificates/{_NAME}/pending",
        "GetCertificateOperation",
        R,
        lambda s, v, m, q, b: s.certificates.get_pending(v, m["name"], q),
    ),
    _route(
        "PATCH",
        rf"/certificates/{_NAME}/pending",
        "UpdateCertificateOperation",
        W,
        lambda s, v, m, q, b: s.certificates.cancel_pending(v, m["name"], b, q),
    ),
    _route(
        "DELETE",
        rf"/certificates/{_NAME}/pending",
        "DeleteCertificateOperation",
        W,
        lambda s, v, m, q, b: s.certificates.delete_pending(v, m["name"], q),
    ),
    _route(
        "POST",
        rf"/certificates/{_NAME}/pending/merge",
        "MergeCertificate",
        W,
        lambda s, v, m, q, b: s.certificates.merge(v, m["name"], b),
    ),
    _route(
        "GET",
        rf"/certificates/{_NAME}/policy",
        "GetCertificatePolicy",
        R,
        lambda s, v, m, q, b: s.certificates.get_policy(v, m["name"]),
    ),
    _route(
        "PATCH",
        rf"/certificates/{_NAME}/policy",
        "UpdateCertificatePolicy",
        W,
        lambda s, v, m, q, b: s.certificates.update_policy(v, m["name"], b),
    ),
    _route(
        "GET",
        rf"/certificates/{_NAME}/versions",
        "GetCertificateVersions",
        R,
        lambda s, v, m, q, b: s.certificates.list_versions(v, m["name"], q),
    ),
    _route(
        "GET",
        rf"/certificates/{_NAME}{_VERSION}",
        "GetCertificate",
        R,
        lambda s, v, m, q, b: s.certificates.get(v, m["name"], m.get("version")),
    ),
    _route(
        "PATCH",
        rf"/certificates/{_NAME}{_VERSION}",
        "UpdateCertificate",
        W,
        lambda s, v, m, q, b: s.certificates.update(v, m["name"], m.get("version"), b),
    ),
    _route(
        "DELETE",
        rf"/certificates/{_NAME}/?",
        "DeleteCertificate",
        W,
        lambda s, v, m, q, b: s.certificates.delete(v, m["name"]),
    ),
    _route(
        "GET",
        r"/deletedcertificates/?",
        "GetDeletedCertificates",
        R,
        lambda s, v, m, q, b: s.certificates.list_deleted(v, q),
    ),
    _route(
        "GET",
        rf"/deletedcertificates/{_NAME}/?",
        "GetDeletedCertificate",
        R,
        lambda s, v, m, q, b: s.certificates.get_deleted(v, m["name"]),
    ),
    _route(
        "DELETE",
        rf"/deletedcertificates/{_NAME}/?",
        "PurgeDeletedCertificate",
        W,
        lambda s, v, m, q, b: s.certificates.purge(v, m["name"]),
    ),
    _route(
        "POST",
        rf"/deletedcertificates/{_NAME}/recover",
        "RecoverDeletedCertificate",
        W,
        lambda s, v, m, q, b: s.certificates.recover(v, m["name"]),
    ),
    _route(
        "GET",
        rf"/secrets/{_NAME}{_VERSION}",
        "GetSecret",
        Action.SECRET_READ,
        lambda s, v, m, q, b: s.certificates.secret(v, m["name"], m.get("version")),
    ),
)


# Operations on one named certificate: Key Vault's limits charge them at the weight of the certificate's key
# (throttling.weight). Secrets, issuers, contacts, lists and restores carry no key type and weigh 1.
KEYED_OPERATIONS = frozenset(OPERATIONS) - {
    "GetCertificates",
    "GetDeletedCertificates",
    "RestoreCertificate",
    "GetSecret",
    "GetCertificateIssuers",
    "SetCertificateIssuer",
    "UpdateCertificateIssuer",
    "GetCertificateIssuer",
    "DeleteCertificateIssuer",
    "SetCertificateContacts",
    "GetCertificateContacts",
    "DeleteCertificateContacts",
}


def throttle_weight(route: Route, services: Services, vault: str, params: Mapping[str, str], body: bytes) -> int:
    """The request's weight against its kind's budget: from the policy's ``key_props`` a create or import
    carries, else from the stored certificate's policy (live or deleted), else 1."""
    if route.operation not in KEYED_OPERATIONS or "name" not in params:
        return 1
    if route.operation in ("CreateCertificate", "ImportCertificate") and body.strip():
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            parsed = None
        policy = parsed.get("policy") if isinstance(parsed, dict) else None
        if isinstance(policy, dict):  # a policy without key_props makes the default key: RSA 2048, weight 1
            return weight(route.throttle_kind, policy.get("key_props"))
    # Without a policy in the body, the stored certificate's key applies (none stored: weight 1).
    cert = services.certificates._store.get(vault, params["name"])  # a read; Certificates has no accessor for it
    return weight(route.throttle_kind, cert.policy.get("key_props") if cert is not None else None)


def match(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    for route in ROUTES:
        if route.method == method:
            found = route.pattern.match(path)
            if found:
                return route, {k: v for k, v in found.groupdict().items() if v}
    return None
