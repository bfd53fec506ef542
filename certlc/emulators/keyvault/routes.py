"""The Key Vault REST routes the emulator answers, with the RBAC action each needs."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .auth import Action
from .bundles import Vault
from .certificates import Certificates
from .response import Response

Handler = Callable[[Certificates, Vault, Mapping[str, str], Mapping[str, str], Any], Response]
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
ROUTES: tuple[Route, ...] = (
    _route("GET", r"/certificates/?", "GetCertificates", R, lambda s, v, m, q, b: s.list(v, q)),
    _route(
        "POST",
        rf"/certificates/{_NAME}/create",
        "CreateCertificate",
        W,
        lambda s, v, m, q, b: s.create(v, m["name"], b),
        "create",
    ),
    _route(
        "POST",
        rf"/certificates/{_NAME}/import",
        "ImportCertificate",
        W,
        lambda s, v, m, q, b: s.import_(v, m["name"], b),
    ),
    _route(
        "GET",
        rf"/certificates/{_NAME}/pending",
        "GetCertificateOperation",
        R,
        lambda s, v, m, q, b: s.get_pending(v, m["name"]),
    ),
    _route(
        "PATCH",
        rf"/certificates/{_NAME}/pending",
        "UpdateCertificateOperation",
        W,
        lambda s, v, m, q, b: s.cancel_pending(v, m["name"], b),
    ),
    _route(
        "DELETE",
        rf"/certificates/{_NAME}/pending",
        "DeleteCertificateOperation",
        W,
        lambda s, v, m, q, b: s.delete_pending(v, m["name"]),
    ),
    _route(
        "POST",
        rf"/certificates/{_NAME}/pending/merge",
        "MergeCertificate",
        W,
        lambda s, v, m, q, b: s.merge(v, m["name"], b),
    ),
    _route(
        "GET",
        rf"/certificates/{_NAME}/policy",
        "GetCertificatePolicy",
        R,
        lambda s, v, m, q, b: s.get_policy(v, m["name"]),
    ),
    _route(
        "PATCH",
        rf"/certificates/{_NAME}/policy",
        "UpdateCertificatePolicy",
        W,
        lambda s, v, m, q, b: s.update_policy(v, m["name"], b),
    ),
    _route(
        "GET",
        rf"/certificates/{_NAME}/versions",
        "GetCertificateVersions",
        R,
        lambda s, v, m, q, b: s.list_versions(v, m["name"], q),
    ),
    _route(
        "GET",
        rf"/certificates/{_NAME}{_VERSION}",
        "GetCertificate",
        R,
        lambda s, v, m, q, b: s.get(v, m["name"], m.get("version")),
    ),
    _route(
        "PATCH",
        rf"/certificates/{_NAME}{_VERSION}",
        "UpdateCertificate",
        W,
        lambda s, v, m, q, b: s.update(v, m["name"], m.get("version"), b),
    ),
    _route("DELETE", rf"/certificates/{_NAME}/?", "DeleteCertificate", W, lambda s, v, m, q, b: s.delete(v, m["name"])),
    _route(
        "GET",
        rf"/deletedcertificates/{_NAME}/?",
        "GetDeletedCertificate",
        R,
        lambda s, v, m, q, b: s.get_deleted(v, m["name"]),
    ),
    _route(
        "DELETE",
        rf"/deletedcertificates/{_NAME}/?",
        "PurgeDeletedCertificate",
        W,
        lambda s, v, m, q, b: s.purge(v, m["name"]),
    ),
    _route(
        "POST",
        rf"/deletedcertificates/{_NAME}/recover",
        "RecoverDeletedCertificate",
        W,
        lambda s, v, m, q, b: s.recover(v, m["name"]),
    ),
    _route(
        "GET",
        rf"/secrets/{_NAME}{_VERSION}",
        "GetSecret",
        Action.SECRET_READ,
        lambda s, v, m, q, b: s.secret(v, m["name"], m.get("version")),
    ),
)


def match(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    for route in ROUTES:
        if route.method == method:
            found = route.pattern.match(path)
            if found:
                return route, {k: v for k, v in found.groupdict().items() if v}
    return None
