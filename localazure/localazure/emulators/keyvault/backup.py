"""Certificate backup and restore: ``POST /certificates/{name}/backup`` and ``POST /certificates/restore``.

The backup is an opaque blob, as Key Vault's is: the certificate's policy, every version that holds a
certificate (ids, attributes, tags) and their private keys, sealed with AES-GCM under a key kept in the
state folder (``backup.key``), so a blob restores into any vault of the same emulator state and a changed
blob is refused. Pending operations and their placeholder versions are not part of a backup.
Restoring under a name that exists in the vault, live or deleted, answers 409 as Key Vault does.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import zlib
from dataclasses import asdict
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import bundles
from .bundles import Vault
from .certificates import check_name
from .errors import Response, bad_parameter, certificate_not_found, conflict
from .store import Certificate, Store, Version

MAGIC = b"certlc-kv-backup-1"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Backups:
    def __init__(self, store: Store) -> None:
        self._store = store

    def _aead(self) -> AESGCM:
        return AESGCM(self._store.secret_key("backup"))

    def backup(self, vault: Vault, name: str) -> Response:
        with self._store.lock:
            cert = self._store.get(vault.name, check_name(name))
            if cert is None or cert.deleted is not None:
                raise certificate_not_found(name)
            versions = [asdict(v) for v in cert.versions if not v.placeholder]
            if not versions:
                raise certificate_not_found(name)
            keys = {v["key_id"]: self._store.load_key(v["key_id"]).decode() for v in versions}
        payload = {"name": cert.name, "policy": cert.policy, "versions": versions, "keys": keys}
        nonce = os.urandom(12)
        sealed = self._aead().encrypt(nonce, zlib.compress(json.dumps(payload).encode()), MAGIC)
        return Response(200, {"value": _b64url(MAGIC + nonce + sealed)})

    def _open(self, value: str) -> dict[str, Any]:
        try:
            blob = _unb64url(value)
            if not blob.startswith(MAGIC):
                raise ValueError("not a backup of this emulator")
            nonce, sealed = blob[len(MAGIC) : len(MAGIC) + 12], blob[len(MAGIC) + 12 :]
            payload = json.loads(zlib.decompress(self._aead().decrypt(nonce, sealed, MAGIC)))
            if not isinstance(payload, dict) or not isinstance(payload.get("versions"), list):
                raise ValueError("no versions")
            return payload
        except (binascii.Error, ValueError, InvalidTag, zlib.error) as exc:
            raise bad_parameter("Backup blob contains invalid or corrupt version.") from exc

    def restore(self, vault: Vault, body: Any) -> Response:
        payload = self._open(body["value"])
        name = payload["name"]
        with self._store.lock:
            existing = self._store.get(vault.name, name)
            if existing is not None:
                state = "a deleted certificate" if existing.deleted is not None else "a certificate"
                raise conflict(f"There is already {state} named {name} in this vault; the backup was not restored.")
            key_ids = {old: self._store.save_key(pem.encode()) for old, pem in payload["keys"].items()}
            versions = [Version(**{**v, "key_id": key_ids[v["key_id"]]}) for v in payload["versions"]]
            cert = Certificate(name=name, policy=payload["policy"], versions=versions)
            self._store.save(vault.name, cert)
            return Response(200, bundles.certificate(vault, cert, versions[-1]))
