"""The ARM side: Zones_Get and RecordSets_Get/CreateOrUpdate/Delete over HTTPS, behind a bearer token and RBAC.

Tokens map to roles, and roles to the RBAC actions they grant (``*`` patterns as in role definitions):
``txt-writer`` is the custom role the template creates for certlc, ``contributor`` is DNS Zone
Contributor, ``reader`` is Reader, ``none`` an identity with no role on the zone.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ..armfront import ArmError, RoleGate, bad_request
from . import schemas
from .store import RecordSet, Store, Zone

log = logging.getLogger(__name__)

ZONE_READ = "Microsoft.Network/dnsZones/read"
TXT_ACTIONS = tuple(f"Microsoft.Network/dnsZones/TXT/{verb}" for verb in ("read", "write", "delete"))
ROLES: dict[str, frozenset[str]] = {
    "txt-writer": frozenset({ZONE_READ, *TXT_ACTIONS}),
    "contributor": frozenset({"Microsoft.Network/dnsZones/*"}),
    "reader": frozenset({"*/read"}),
    "none": frozenset(),
}
DEFAULT_TOKENS = {
    "certlc-local-officer": "txt-writer",
    "certlc-local-dns-contributor": "contributor",
    "certlc-local-reader": "reader",
    "certlc-local-none": "none",
}
_ZONE = (
    r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
    r"/providers/Microsoft\.Network/dnsZones/(?P<zone>[^/]+)"
)
ZONE_PATH = re.compile(f"^{_ZONE}$", re.IGNORECASE)
RECORD_SET_PATH = re.compile(f"^{_ZONE}/(?P<type>[^/]+)/(?P<name>[^/]+)$", re.IGNORECASE)
VERBS = {"GET": "read", "PUT": "write", "DELETE": "delete"}


class Arm:
    """Routes one request to the store; every answer is ``(status, body, headers)``."""

    def __init__(self, store: Store, tokens: Mapping[str, str]) -> None:
        self.gate = RoleGate(ROLES, tokens)
        self.store = store
        self.requests: list[dict[str, Any]] = []  # what clients sent, for tests to read
        self._log_lock = threading.Lock()

    def handle(self, method: str, target: str, headers: Any, body: bytes) -> tuple[int, Any, dict[str, str]]:
        split = urlsplit(target)
        path, query = unquote(split.path), dict(parse_qsl(split.query, keep_blank_values=True))
        try:
            parsed = json.loads(body) if body.strip() else None
        except ValueError:
            parsed = body[:200].decode(errors="replace")
        with self._log_lock:
            self.requests.append({"method": method, "path": path, "query": query, "body": parsed})
        try:
            return self._route(method, path, query, headers, parsed)
        except ArmError as exc:
            return exc.status, exc.body(), exc.headers
        except Exception:  # a bug, never the client's fault: answer it instead of dropping the connection
            log.exception("%s %s failed", method, path)
            return 500, {"error": {"code": "InternalServerError", "message": f"The emulator failed on {method}"}}, {}

    def _route(self, method: str, path: str, query: dict[str, str], headers: Any, body: Any) -> tuple[int, Any, dict]:
        role = self.gate.role(headers.get("Authorization"))
        zone_match, set_match = ZONE_PATH.match(path), RECORD_SET_PATH.match(path)
        if zone_match and method == "GET":
            self.gate.authorize(role, ZONE_READ, path)
            schemas.check_api_version(query)
            zone = self.store.zone(zone_match["sub"], zone_match["rg"], zone_match["zone"])
            return 200, _zone_body(zone), {}
        if set_match is None or method not in VERBS:
            raise ArmError(404, "NotFound", f"The emulator does not implement {method} {path}")
        rtype = set_match["type"].upper()
        if rtype not in schemas.RECORD_TYPES:
            raise bad_request(f"The record type {set_match['type']!r} is not one of {', '.join(schemas.RECORD_TYPES)}.")
        self.gate.authorize(role, f"Microsoft.Network/dnsZones/{rtype}/{VERBS[method]}", path)
        schemas.check_api_version(query)
        if rtype not in ("A", "TXT"):
            raise schemas.unsupported(rtype)
        zone = self.store.zone(set_match["sub"], set_match["rg"], set_match["zone"])
        name = set_match["name"]
        if method == "GET":
            found = self.store.get(zone, rtype, name)
            return 200, _record_set_body(zone, rtype, name, found), {"ETag": found.etag}
        if method == "DELETE":
            existed = self.store.delete(zone, rtype, name, headers.get("If-Match"))
            return (200 if existed else 204), None, {}
        properties = schemas.check_record_set(rtype, body)
        records = properties.get(schemas.RECORD_ARRAYS[rtype]) or []
        if rtype == "A":
            _check_addresses(records)
        new = RecordSet(ttl=properties.get("TTL", 3600), metadata=properties.get("metadata") or {}, records=records)
        written, created = self.store.put(zone, rtype, name, new, headers.get("If-Match"), headers.get("If-None-Match"))
        return (201 if created else 200), _record_set_body(zone, rtype, name, written), {"ETag": written.etag}


def _check_addresses(records: list[dict[str, Any]]) -> None:
    for record in records:
        try:
            ipaddress.IPv4Address(record.get("ipv4Address", ""))
        except ValueError:
            raise bad_request(f"{record.get('ipv4Address')!r} is not a valid IPv4 address.") from None


def _zone_body(zone: Zone) -> dict[str, Any]:
    return {
        "id": zone.arm_id,
        "etag": zone.etag,
        "location": "global",
        "name": zone.name,
        "type": "Microsoft.Network/dnsZones",
        "properties": {
            "maxNumberOfRecordSets": 10000,
            "numberOfRecordSets": len(zone.record_sets),
            "nameServers": list(zone.name_servers),
            "zoneType": "Public",
        },
    }


def _record_set_body(zone: Zone, rtype: str, name: str, found: RecordSet) -> dict[str, Any]:
    fqdn = zone.name if name == "@" else f"{name}.{zone.name}"
    return {
        "id": f"{zone.arm_id}/{rtype}/{name}",
        "name": name,
        "type": f"Microsoft.Network/dnsZones/{rtype}",
        "etag": found.etag,
        "properties": {
            "metadata": found.metadata,
            "TTL": found.ttl,
            "fqdn": f"{fqdn}.",
            "provisioningState": "Succeeded",
            schemas.RECORD_ARRAYS[rtype]: found.records,
        },
    }
