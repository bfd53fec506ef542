"""Persistent state of every vault: certificates, versions, pending operations, keys.

One JSON file per certificate (``<state>/vaults/<vault>/<name>.json``) and one PEM per
key (``<state>/keys/<id>.pem``), all written atomically with mode 0600. Names are
case-insensitive as in Key Vault; the first spelling is kept for ids. Vault-wide documents
that are not certificates (issuers, contacts) live beside them:
``<state>/<kind>/<vault>/<name>.json`` (``save_doc``/``docs``/``remove_doc``).
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from renewal.atomic import write_atomically


def _private_dir(path: Path) -> Path:
    """A folder only the owner may enter (0700), also when it existed before."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def _write_atomic(path: Path, data: bytes) -> None:
    """In a private folder, made when missing."""
    _private_dir(path.parent)
    write_atomically(path, data)


@dataclass
class Version:
    version: str
    cer: str  # base64 DER of the leaf
    chain: list[str]  # base64 DER of the issuers, leaf excluded
    key_id: str
    attributes: dict[str, Any]  # enabled, nbf, exp, created, updated
    tags: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/x-pkcs12"
    events_sent: list[str] = field(default_factory=list)
    # The disabled version Key Vault shows while a manual (issuer Unknown) create is pending: no certificate
    # yet (cer is ""), filled and enabled by the merge. Only made in the "placeholder" pending-version mode.
    placeholder: bool = False


@dataclass
class Pending:
    request_id: str
    csr: str  # base64 DER
    key_id: str
    issuer: dict[str, Any]
    status: str = "inProgress"
    status_details: str | None = None
    cancellation_requested: bool = False
    target: str | None = None
    attributes: dict[str, Any] | None = None
    tags: dict[str, str] | None = None


@dataclass
class Certificate:
    name: str
    policy: dict[str, Any]
    versions: list[Version] = field(default_factory=list)
    pending: Pending | None = None
    deleted: dict[str, int] | None = None  # deletedDate, scheduledPurgeDate

    def latest(self) -> Version | None:
        """Versions are kept in creation order (created times can tie within a second)."""
        return self.versions[-1] if self.versions else None

    def current(self) -> Version | None:
        """The newest enabled version with a certificate: the one expiry events are about."""
        enabled = [v for v in self.versions if v.attributes.get("enabled", True) and not v.placeholder]
        return enabled[-1] if enabled else None

    def latest_issued(self) -> Version | None:
        """The newest version that holds a certificate (placeholders left out)."""
        issued = [v for v in self.versions if not v.placeholder]
        return issued[-1] if issued else None

    def placeholder(self) -> Version | None:
        return next((v for v in self.versions if v.placeholder), None)

    def find(self, version: str) -> Version | None:
        return next((v for v in self.versions if v.version == version.lower()), None)

    @staticmethod
    def from_json(data: dict[str, Any]) -> Certificate:
        pending = data.get("pending")
        return Certificate(
            name=data["name"],
            policy=data["policy"],
            versions=[Version(**v) for v in data.get("versions", [])],
            pending=Pending(**pending) if pending else None,
            deleted=data.get("deleted"),
        )


def new_id() -> str:
    return uuid.uuid4().hex


class Store:
    """Thread-safe; callers hold ``store.lock`` around read-modify-write sequences."""

    def __init__(self, root: Path) -> None:
        self.root = _private_dir(root)
        _private_dir(root / "vaults")
        _private_dir(root / "keys")
        self.lock = threading.RLock()
        self._vaults: dict[str, dict[str, Certificate]] = {}
        self._load()

    def _vault_dir(self, vault: str) -> Path:
        return self.root / "vaults" / vault

    def _load(self) -> None:
        vaults_dir = self.root / "vaults"
        if not vaults_dir.exists():
            return
        for vault_dir in sorted(p for p in vaults_dir.iterdir() if p.is_dir()):
            certs = self._vaults.setdefault(vault_dir.name, {})
            for file in sorted(vault_dir.glob("*.json")):
                cert = Certificate.from_json(json.loads(file.read_text()))
                certs[cert.name.lower()] = cert

    def add_vault(self, vault: str) -> None:
        with self.lock:
            self._vaults.setdefault(vault, {})
            _private_dir(self._vault_dir(vault))

    def vaults(self) -> list[str]:
        return sorted(self._vaults)

    def get(self, vault: str, name: str) -> Certificate | None:
        return self._vaults[vault].get(name.lower())

    def all(self, vault: str) -> list[Certificate]:
        with self.lock:
            return list(self._vaults[vault].values())

    def save(self, vault: str, cert: Certificate) -> None:
        with self.lock:
            self._vaults[vault][cert.name.lower()] = cert
            data = json.dumps(asdict(cert), indent=1, sort_keys=True).encode()
            _write_atomic(self._vault_dir(vault) / f"{cert.name.lower()}.json", data)

    def remove(self, vault: str, name: str) -> None:
        with self.lock:
            self._vaults[vault].pop(name.lower(), None)
            (self._vault_dir(vault) / f"{name.lower()}.json").unlink(missing_ok=True)

    def save_key(self, pem: bytes) -> str:
        key_id = new_id()
        _write_atomic(self.root / "keys" / f"{key_id}.pem", pem)
        return key_id

    def load_key(self, key_id: str) -> bytes:
        return (self.root / "keys" / f"{key_id}.pem").read_bytes()

    # -- vault-wide documents (issuers, contacts) ----------------------------------------------------
    def _doc_dir(self, kind: str, vault: str) -> Path:
        if vault not in self._vaults:
            raise KeyError(vault)
        return self.root / kind / vault

    def save_doc(self, kind: str, vault: str, name: str, data: dict[str, Any]) -> None:
        with self.lock:
            _write_atomic(
                self._doc_dir(kind, vault) / f"{name.lower()}.json", json.dumps(data, sort_keys=True).encode()
            )

    def doc(self, kind: str, vault: str, name: str) -> dict[str, Any] | None:
        path = self._doc_dir(kind, vault) / f"{name.lower()}.json"
        with self.lock:
            return json.loads(path.read_text()) if path.exists() else None

    def docs(self, kind: str, vault: str) -> list[dict[str, Any]]:
        folder = self._doc_dir(kind, vault)
        with self.lock:
            return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []

    def remove_doc(self, kind: str, vault: str, name: str) -> None:
        with self.lock:
            (self._doc_dir(kind, vault) / f"{name.lower()}.json").unlink(missing_ok=True)

    def secret_key(self, name: str, size: int = 32) -> bytes:
        """A random key kept in the state folder (made on first use), e.g. for sealing backups."""
        path = self.root / f"{name}.key"
        with self.lock:
            if not path.exists():
                _write_atomic(path, os.urandom(size))
            return path.read_bytes()

    def save_meta(self, name: str, data: dict[str, Any]) -> None:
        _write_atomic(self.root / f"{name}.json", json.dumps(data).encode())

    def load_meta(self, name: str) -> dict[str, Any]:
        path = self.root / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else {}
