"""The ARM side: WebApps_ListFunctions and WebApps_GetAppSettingsKeyVaultReferences over HTTPS, behind a bearer token
and RBAC, each paged through ``nextLink`` as the specification declares them (``x-ms-pageable``).

Tokens map to roles, and roles to the RBAC actions they grant (``*`` patterns as in role definitions): ``reader`` is
Reader (``*/read``), ``website-contributor`` is Website Contributor (``Microsoft.Web/sites/*``), ``none`` an identity
with no role on the app. As ARM does, the caller's role is checked at the app's scope before the app is looked up.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from ..armfront import ArmError, RoleGate
from . import schemas
from .indexing import NOTHING_PUBLISHED, Code

log = logging.getLogger(__name__)

FUNCTIONS_READ = "Microsoft.Web/sites/functions/read"
CONFIG_READ = "Microsoft.Web/sites/config/read"
ROLES: dict[str, frozenset[str]] = {
    "website-contributor": frozenset({"Microsoft.Web/sites/*"}),
    "reader": frozenset({"*/read"}),
    "none": frozenset(),
}
DEFAULT_TOKENS = {
    "certlc-local-officer": "reader",  # the local stack's one token: the doctor only reads the app
    "certlc-local-reader": "reader",
    "certlc-local-website-contributor": "website-contributor",
    "certlc-local-none": "none",
}
_SITE = r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Web/sites/(?P<site>[^/]+)"
OPERATIONS = {  # the path after the app -> the action it needs and the collection it answers
    "functions": (FUNCTIONS_READ, "FunctionEnvelopeCollection"),
    "config/configreferences/appsettings": (CONFIG_READ, "ApiKVReferenceCollection"),
}
OPERATION_PATH = re.compile(f"^{_SITE}/(?P<operation>{'|'.join(map(re.escape, OPERATIONS))})$", re.IGNORECASE)
DEFAULT_PAGE_SIZE = 50


@dataclass
class Site:
    """A Function App: its settings, the identity that resolves its Key Vault references (a Key Vault emulator
    token; None: no managed identity), and what its last publish indexed."""

    subscription: str
    resource_group: str
    name: str
    settings: dict[str, str] = field(default_factory=dict)
    identity_token: str | None = None
    code: Code = NOTHING_PUBLISHED

    @property
    def arm_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Web/sites/{self.name}"
        )


class Arm:
    """Routes one request; every answer is ``(status, body, headers)``. ``references(site)`` gives the app's Key Vault
    references as ``ApiKVReference`` bodies, resolved when asked."""

    def __init__(
        self,
        tokens: Mapping[str, str],
        references: Callable[[Site], list[dict[str, Any]]],
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        self.gate = RoleGate(ROLES, tokens)
        self.page_size = page_size
        self.base_url = ""  # the listener's origin, for nextLink; set once it listens
        self._references = references
        self._sites: dict[tuple[str, str, str], Site] = {}
        self._lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []  # what clients sent, for tests to read

    def add(self, site: Site) -> Site:
        with self._lock:
            self._sites[_key(site.subscription, site.resource_group, site.name)] = site
        return site

    def site(self, subscription: str, resource_group: str, name: str) -> Site:
        found = self._sites.get(_key(subscription, resource_group, name))
        if found is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.Web/sites/{name}' under resource group '{resource_group}' was not found.",
            )
        return found

    def handle(self, method: str, target: str, headers: Any, body: bytes) -> tuple[int, Any, dict[str, str]]:
        split = urlsplit(target)
        path, query = unquote(split.path), dict(parse_qsl(split.query, keep_blank_values=True))
        with self._lock:
            self.requests.append({"method": method, "path": path, "query": query})
        try:
            return self._route(method, path, query, headers)
        except ArmError as exc:
            return exc.status, exc.body(), exc.headers
        except Exception:  # a bug, never the client's fault: answer it instead of dropping the connection
            log.exception("%s %s failed", method, path)
            return 500, {"error": {"code": "InternalServerError", "message": f"The emulator failed on {method}"}}, {}

    def _route(self, method: str, path: str, query: dict[str, str], headers: Any) -> tuple[int, Any, dict[str, str]]:
        role = self.gate.role(headers.get("Authorization"))
        match = OPERATION_PATH.match(path)
        if match is None or method != "GET":
            raise ArmError(404, "NotFound", f"The emulator does not implement {method} {path}")
        operation = next(op for op in OPERATIONS if op.lower() == match["operation"].lower())
        action, collection = OPERATIONS[operation]
        self.gate.authorize(role, action, path)
        schemas.check_api_version(query)
        site = self.site(match["sub"], match["rg"], match["site"])
        items = _functions(site) if operation == "functions" else self._references(site)
        try:
            start = int(query.get("$skipToken", "0"))
        except ValueError:
            raise ArmError(400, "InvalidSkipToken", "The $skipToken is not one this service gave.") from None
        page: dict[str, Any] = {"value": items[start : start + self.page_size]}
        if start + self.page_size < len(items):
            version = quote(query["api-version"], safe="")
            page["nextLink"] = f"{self.base_url}{path}?api-version={version}&$skipToken={start + self.page_size}"
        return 200, schemas.check_served(collection, page), {}


def _key(*parts: str) -> tuple[str, str, str]:
    subscription, resource_group, name = (part.lower() for part in parts)
    return subscription, resource_group, name


def _functions(site: Site) -> list[dict[str, Any]]:
    """One ``FunctionEnvelope`` per function the last publish indexed, with its bindings as the worker reported them."""
    return [
        {
            "id": f"{site.arm_id}/functions/{function.name}",
            "name": f"{site.name}/{function.name}",
            "type": "Microsoft.Web/sites/functions",
            "properties": {
                "config": {"bindings": [dict(binding) for binding in function.bindings]},
                "language": "python",
                "isDisabled": False,
            },
        }
        for function in site.code.functions
    ]
