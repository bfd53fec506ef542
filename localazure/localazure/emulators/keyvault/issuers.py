"""Certificate issuers (``/certificates/issuers``): set, get, update, delete, list.

An issuer is a vault-wide record (provider, credentials, organization details, attributes) kept in
the state folder as ``issuers/<vault>/<name>.json``. The emulator stores them and answers them as Key
Vault does (``IssuerBundle``; the password is never returned); it has no CA connector behind any
provider, so creating a certificate with a stored issuer is still refused (see certificates.py).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .bundles import Vault
from .clock import Clock
from .errors import Response, bad_parameter, issuer_not_found
from .paging import page
from .store import Store

KIND = "issuers"
# Key Vault's built-in issuer names: they are not stored issuers.
BUILT_IN = ("self", "unknown")


def _bundle(vault: Vault, record: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f"{vault.base_url}/certificates/issuers/{record['name']}",
        "provider": record["provider"],
    }
    credentials = {k: v for k, v in (record.get("credentials") or {}).items() if k != "pwd"}
    if credentials:
        body["credentials"] = credentials
    org = record.get("org_details")
    if org is not None:
        body["org_details"] = copy.deepcopy(org)
    body["attributes"] = dict(record["attributes"])
    return body


class Issuers:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def _get(self, vault: Vault, name: str) -> dict[str, Any]:
        record = self._store.doc(KIND, vault.name, name)
        if record is None:
            raise issuer_not_found(name)
        return record

    def set(self, vault: Vault, name: str, body: Any) -> Response:
        if name.lower() in BUILT_IN:
            raise bad_parameter(f"Issuer name {name!r} is reserved: 'Self' and 'Unknown' are built in")
        now = self._clock.epoch()
        with self._store.lock:
            old = self._store.doc(KIND, vault.name, name)
            record = {
                "name": old["name"] if old else name,
                "provider": body["provider"],
                "credentials": body.get("credentials"),
                "org_details": body.get("org_details"),
                "attributes": {
                    "enabled": bool((body.get("attributes") or {}).get("enabled", True)),
                    "created": old["attributes"]["created"] if old else now,
                    "updated": now,
                },
            }
            self._store.save_doc(KIND, vault.name, name, record)
            return Response(200, _bundle(vault, record))

    def update(self, vault: Vault, name: str, body: Any) -> Response:
        with self._store.lock:
            record = self._get(vault, name)
            if body.get("provider") is not None:
                record["provider"] = body["provider"]
            for section in ("credentials", "org_details"):
                if body.get(section) is not None:
                    record[section] = {**(record.get(section) or {}), **body[section]}
            if "enabled" in (body.get("attributes") or {}):
                record["attributes"]["enabled"] = bool(body["attributes"]["enabled"])
            record["attributes"]["updated"] = self._clock.epoch()
            self._store.save_doc(KIND, vault.name, name, record)
            return Response(200, _bundle(vault, record))

    def get(self, vault: Vault, name: str) -> Response:
        return Response(200, _bundle(vault, self._get(vault, name)))

    def delete(self, vault: Vault, name: str) -> Response:
        with self._store.lock:
            record = self._get(vault, name)
            self._store.remove_doc(KIND, vault.name, name)
            return Response(200, _bundle(vault, record))

    def list(self, vault: Vault, query: Mapping[str, str]) -> Response:
        body = page(
            self._store.docs(KIND, vault.name),
            lambda r: r["name"].upper(),
            query,
            f"{vault.base_url}/certificates/issuers",
            vault.api_version,
            lambda r: {"id": f"{vault.base_url}/certificates/issuers/{r['name']}", "provider": r["provider"]},
        )
        return Response(200, body)
