"""The ARM side: list by subscription, list a parent's children, GET, PUT and PATCH of the consumer resource types
(``schemas.TYPES``), behind a bearer token and RBAC, over HTTPS on loopback.

Tokens map to roles, and roles to the RBAC actions they grant (``*`` patterns as in role definitions): ``reader`` is
Reader (``*/read``); ``rollout`` reads everything and may write the references a renewal moves (the gateway, the
Front Door secret, the API Management service, the Container Apps certificate); ``contributor`` is Contributor;
``network-reader`` reads Microsoft.Network only (an identity that may read some types and not others); ``none`` has no
role. As ARM does, the role is checked at the request's scope before anything is looked up, and a subscription the
emulator does not hold answers 404 ``SubscriptionNotFound``.

A write answers what ARM answers once the operation is done: 201 on create, 200 on update, the resource with
``provisioningState`` ``Succeeded``, so an SDK's long-running poller finishes on the first answer. Two rules beyond
the schema are ARM's own: the ids a resource names inside itself (a listener's ``sslCertificate``) or in a sibling
(a custom domain's ``tlsSettings.secret``) must exist (400 ``InvalidResourceReference``), and a Key Vault reference
must be a Key Vault URL or resource id (400 ``InvalidRequestContent``). Every write gives the resource a new
``etag``; a write whose ``If-Match`` names another one is refused with 412 ``PreconditionFailed``.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ..armfront import ArmError, RoleGate, bad_request
from . import schemas

log = logging.getLogger(__name__)

ROLES: dict[str, frozenset[str]] = {
    "reader": frozenset({"*/read"}),
    "rollout": frozenset(
        {
            "*/read",
            "Microsoft.Network/applicationGateways/write",
            "Microsoft.Cdn/profiles/secrets/write",
            "Microsoft.Cdn/profiles/customDomains/write",
            "Microsoft.ApiManagement/service/write",
            "Microsoft.App/managedEnvironments/certificates/write",
            "Microsoft.Web/certificates/write",
        }
    ),
    "contributor": frozenset({"*"}),
    "network-reader": frozenset({"Microsoft.Network/*/read"}),
    "none": frozenset(),
}
DEFAULT_TOKENS = {
    "certlc-local-officer": "rollout",  # the local stack's one token: certlc discovers and moves references
    "certlc-local-reader": "reader",
    "certlc-local-contributor": "contributor",
    "certlc-local-network-reader": "network-reader",
    "certlc-local-none": "none",
}
LIST_PATH = re.compile(r"^/subscriptions/(?P<sub>[^/]+)/providers/(?P<ns>[^/]+)/(?P<type>[^/]+)$", re.IGNORECASE)
GROUP_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/(?P<ns>[^/]+)/(?P<rest>.+)$", re.IGNORECASE
)
KEYVAULT_URL = re.compile(r"^https://[^/\s]+/secrets/[0-9a-zA-Z-]{1,127}(/[0-9a-zA-Z]{1,64})?/?$")
KEYVAULT_SECRET_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.KeyVault/vaults/[^/]+/secrets/[^/]+$",
    re.IGNORECASE,
)
KEYVAULT_VAULT_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.KeyVault/vaults/[^/]+$", re.IGNORECASE
)
VERBS = {"GET": "read", "PUT": "write", "PATCH": "write"}
Hook = Callable[[str, dict[str, Any]], None]  # (type name, resource) -> None, may raise ArmError


def merge(current: Any, patch: Any) -> Any:
    """A PATCH's merge: objects member by member, anything else (arrays too) replaced."""
    if isinstance(current, dict) and isinstance(patch, dict):
        merged = dict(current)
        for key, value in patch.items():
            merged[key] = merge(current.get(key), value)
        return merged
    return copy.deepcopy(patch)


class Arm:
    """Routes one request over the resources; every answer is ``(status, body, headers)``."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self.gate = RoleGate(ROLES, tokens)
        self.subscriptions: set[str] = set()
        self.resources: dict[str, dict[str, Any]] = {}  # lower-case id -> the resource as served
        self.on_write: Hook | None = None  # what the service derives on a write (a Web certificate's thumbprint)
        self.requests: list[dict[str, Any]] = []  # what clients sent, for tests to read
        self.lock = threading.RLock()

    # -- control ----------------------------------------------------------------------------------

    def put(self, resource_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Seed (or replace) a resource as a PUT would, without a token: what tests and the stack start from."""
        rtype, names = _parse_id(resource_id)
        with self.lock:
            _, answer, _ = self._write("PUT", rtype, resource_id, names, dict(body))
        return answer

    def get(self, resource_id: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self._found(resource_id))

    # -- HTTP -------------------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: Any, body: bytes) -> tuple[int, Any, dict[str, str]]:
        split = urlsplit(target)
        path, query = unquote(split.path).rstrip("/"), dict(parse_qsl(split.query, keep_blank_values=True))
        try:
            parsed = json.loads(body) if body.strip() else None
        except ValueError:
            parsed = ValueError
        with self.lock:
            self.requests.append(
                {"method": method, "path": path, "query": query, "body": None if parsed is ValueError else parsed}
            )
        try:
            if parsed is ValueError:
                self.gate.role(headers.get("Authorization"))
                raise bad_request("The request content was not valid JSON.", "InvalidRequestContent")
            return self._route(method, path, query, headers, parsed)
        except ArmError as exc:
            return exc.status, exc.body(), exc.headers
        except Exception:  # a bug, never the client's fault: answer it instead of dropping the connection
            log.exception("%s %s failed", method, path)
            return 500, {"error": {"code": "InternalServerError", "message": f"The emulator failed on {method}"}}, {}

    def _route(self, method: str, path: str, query: dict[str, str], headers: Any, body: Any) -> tuple[int, Any, dict]:
        role = self.gate.role(headers.get("Authorization"))
        listing = LIST_PATH.match(path)
        if listing:
            rtype = schemas.resource_type(f"{listing['ns']}/{listing['type']}")
            if method != "GET":
                raise ArmError(405, "MethodNotAllowed", f"{method} is not allowed on a collection.")
            self.gate.authorize(role, f"{rtype.name}/read", path)
            schemas.check_api_version(rtype, query)
            self._subscription(listing["sub"])
            prefix = f"/subscriptions/{listing['sub']}/".lower()
            return 200, {"value": self._list(rtype.name, lambda key: key.startswith(prefix))}, {}
        match = GROUP_PATH.match(path)
        if match is None:
            raise ArmError(404, "NotFound", f"The emulator does not implement {method} {path}")
        segments = match["rest"].split("/")
        if len(segments) % 2 == 1:  # a parent's children: .../profiles/{name}/secrets
            rtype = schemas.resource_type("/".join([match["ns"], *segments[0::2]]))
            parent_id = path[: -len(segments[-1]) - 1]
            if method != "GET":
                raise ArmError(405, "MethodNotAllowed", f"{method} is not allowed on a collection.")
            self.gate.authorize(role, f"{rtype.name}/read", path)
            schemas.check_api_version(rtype, query)
            self._subscription(match["sub"])
            self._found(parent_id)
            prefix = parent_id.lower() + "/"
            return 200, {"value": self._list(rtype.name, lambda key: key.startswith(prefix))}, {}
        rtype = schemas.resource_type("/".join([match["ns"], *segments[0::2]]))
        if method not in VERBS:
            raise ArmError(405, "MethodNotAllowed", f"The emulator does not accept {method} on {rtype.name}.")
        self.gate.authorize(role, f"{rtype.name}/{VERBS[method]}", path)
        schemas.check_api_version(rtype, query)
        self._subscription(match["sub"])
        with self.lock:
            if method == "GET":
                return 200, copy.deepcopy(self._found(path)), {}
            if_match = headers.get("If-Match")
            current = self.resources.get(_canonical_id(path, rtype.name).lower())
            if if_match and if_match != "*" and (current is None or current.get("etag") != if_match):
                raise ArmError(
                    412, "PreconditionFailed", f"The etag in If-Match does not match the resource's ({rtype.name})."
                )
            return self._write(method, rtype.name, path, segments[1::2], body)

    # -- the store --------------------------------------------------------------------------------

    def _subscription(self, subscription: str) -> None:
        if subscription.lower() not in self.subscriptions:
            raise ArmError(404, "SubscriptionNotFound", f"The subscription '{subscription}' could not be found.")

    def _found(self, resource_id: str) -> dict[str, Any]:
        found = self.resources.get(resource_id.lower())
        if found is None:
            rtype, names = _parse_id(resource_id)
            group = resource_id.split("/")[4] if resource_id.count("/") >= 4 else ""
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource '{rtype}/{'/'.join(names)}' under resource group '{group}' was not found.",
            )
        return found

    def _list(self, type_name: str, where: Callable[[str], bool]) -> list[dict[str, Any]]:
        with self.lock:
            return [
                copy.deepcopy(resource)
                for key, resource in sorted(self.resources.items())
                if resource["type"].lower() == type_name.lower() and where(key)
            ]

    def _write(
        self, method: str, type_name: str, resource_id: str, names: list[str], body: Any
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        rtype = schemas.resource_type(type_name)
        schemas.check_body(rtype, method, body)
        resource_id = _canonical_id(resource_id, rtype.name)
        parent = rtype.parent
        if parent is not None:
            self._found(resource_id.rsplit("/", 2)[0])
        current = self.resources.get(resource_id.lower())
        if method == "PATCH":
            if current is None:
                self._found(resource_id)
            written = merge(current, body)
        else:
            written = copy.deepcopy(body)
        written["id"], written["name"], written["type"] = resource_id, names[-1], rtype.name
        written["etag"] = f'W/"{uuid.uuid4()}"'
        properties = written.setdefault("properties", {})
        if rtype.lro:
            properties["provisioningState"] = "Succeeded"
        _check_references(rtype.name, written, self.resources)
        if self.on_write is not None:
            self.on_write(rtype.name, written)
        self.subscriptions.add(resource_id.split("/")[2].lower())
        self.resources[resource_id.lower()] = written
        return (200 if current is not None else 201), copy.deepcopy(written), {}


def _parse_id(resource_id: str) -> tuple[str, list[str]]:
    match = GROUP_PATH.match(resource_id.rstrip("/"))
    segments = match["rest"].split("/") if match else []
    if not match or len(segments) % 2:
        raise ValueError(f"not a resource id: {resource_id!r}")
    return "/".join([match["ns"], *segments[0::2]]), segments[1::2]


def _canonical_id(resource_id: str, type_name: str) -> str:
    """The id with the type's own spelling of the namespace and types (ARM answers them so)."""
    match = GROUP_PATH.match(resource_id)
    assert match is not None
    types, names = type_name.split("/")[1:], match["rest"].split("/")[1::2]
    tail = "/".join(f"{t}/{n}" for t, n in zip(types, names, strict=True))
    return f"/subscriptions/{match['sub']}/resourceGroups/{match['rg']}/providers/{type_name.split('/')[0]}/{tail}"


def _check_references(type_name: str, resource: dict[str, Any], resources: Mapping[str, dict[str, Any]]) -> None:
    properties = resource["properties"]
    kind = type_name.lower()
    if kind == "microsoft.network/applicationgateways":
        certificates = {f"{resource['id']}/sslCertificates/{c.get('name', '')}".lower() for c in
                        properties.get("sslCertificates") or ()}  # fmt: skip
        for certificate in properties.get("sslCertificates") or ():
            secret = (certificate.get("properties") or {}).get("keyVaultSecretId")
            if secret is not None and not KEYVAULT_URL.match(secret):
                raise bad_request(
                    f"The keyVaultSecretId '{secret}' of SSL certificate '{certificate.get('name')}' is not a Key "
                    "Vault secret URL (https://{vault}.vault.azure.net/secrets/{name}[/{version}]).",
                    "InvalidRequestContent",
                )
        for listener in properties.get("httpListeners") or ():
            reference = ((listener.get("properties") or {}).get("sslCertificate") or {}).get("id")
            if reference and reference.lower() not in certificates:
                raise _dangling(reference, f"listener '{listener.get('name')}'")
    elif kind == "microsoft.cdn/profiles/secrets":
        parameters = properties.get("parameters") or {}
        source = (parameters.get("secretSource") or {}).get("id", "")
        if parameters.get("type") == "CustomerCertificate" and not KEYVAULT_SECRET_ID.match(source):
            raise bad_request(
                f"secretSource.id '{source}' is not a Key Vault secret resource id "
                "(/subscriptions/.../providers/Microsoft.KeyVault/vaults/{vault}/secrets/{name}).",
                "InvalidRequestContent",
            )
    elif kind == "microsoft.cdn/profiles/customdomains":
        reference = ((properties.get("tlsSettings") or {}).get("secret") or {}).get("id")
        if reference and reference.lower() not in resources:
            raise _dangling(reference, f"custom domain '{resource['name']}'")
    elif kind == "microsoft.web/certificates":
        vault = properties.get("keyVaultId")
        if vault is not None and not KEYVAULT_VAULT_ID.match(vault):
            raise bad_request(f"keyVaultId '{vault}' is not a Key Vault resource id.", "InvalidRequestContent")
    elif kind == "microsoft.apimanagement/service":
        for configuration in properties.get("hostnameConfigurations") or ():
            secret = configuration.get("keyVaultId")
            if secret is not None and not KEYVAULT_URL.match(secret):
                raise bad_request(
                    f"keyVaultId '{secret}' of host name '{configuration.get('hostName')}' is not a Key Vault "
                    "secret URL.",
                    "InvalidRequestContent",
                )
    elif kind == "microsoft.app/managedenvironments/certificates":
        url = (properties.get("certificateKeyVaultProperties") or {}).get("keyVaultUrl")
        if url is not None and not KEYVAULT_URL.match(url):
            raise bad_request(f"keyVaultUrl '{url}' is not a Key Vault secret URL.", "InvalidRequestContent")
    elif kind == "microsoft.app/containerapps":
        ingress = ((properties.get("configuration") or {}).get("ingress")) or {}
        for domain in ingress.get("customDomains") or ():
            reference = domain.get("certificateId")
            if reference and reference.lower() not in resources:
                raise _dangling(reference, f"custom domain '{domain.get('name')}'")


def _dangling(reference: str, where: str) -> ArmError:
    return bad_request(f"Resource {reference} referenced by {where} was not found.", "InvalidResourceReference")
