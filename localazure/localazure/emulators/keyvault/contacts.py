"""Certificate contacts (``/certificates/contacts``): set (PUT), get, delete; one list per vault.

Kept in the state folder as ``contacts/<vault>/contacts.json``. Before any set and after a delete,
a get answers 404 (what the SDK's own contacts test expects of Key Vault).
"""

from __future__ import annotations

from typing import Any

from .bundles import Vault
from .errors import Response, contacts_not_found
from .store import Store

KIND = "contacts"
DOC = "contacts"


def _bundle(vault: Vault, contacts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": f"{vault.base_url}/certificates/contacts", "contacts": [dict(c) for c in contacts]}


class Contacts:
    def __init__(self, store: Store) -> None:
        self._store = store

    def _get(self, vault: Vault) -> list[dict[str, Any]]:
        record = self._store.doc(KIND, vault.name, DOC)
        if record is None:
            raise contacts_not_found()
        return record["contacts"]

    def set(self, vault: Vault, body: Any) -> Response:
        contacts = [
            {k: v for k, v in c.items() if k in ("email", "name", "phone") and v is not None}
            for c in body.get("contacts") or []
        ]
        with self._store.lock:
            self._store.save_doc(KIND, vault.name, DOC, {"contacts": contacts})
        return Response(200, _bundle(vault, contacts))

    def get(self, vault: Vault) -> Response:
        return Response(200, _bundle(vault, self._get(vault)))

    def delete(self, vault: Vault) -> Response:
        with self._store.lock:
            contacts = self._get(vault)
            self._store.remove_doc(KIND, vault.name, DOC)
        return Response(200, _bundle(vault, contacts))
