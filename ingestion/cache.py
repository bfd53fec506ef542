"""Per-version certificate details kept between runs, so Key Vault is read only for new versions.

A JSON file keyed by vault/name/thumbprint (a new version has a new thumbprint).
Locally it lives in the state dir; in Azure the default is the instance's temp dir,
which survives between timer runs on a warm instance and is simply rebuilt when lost.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

from ingestion.rows import CertificateDetails
from renewal.atomic import write_atomically

FORMAT_VERSION = 4  # 2: details carry the policy's AutoRenew action; 3: and the ARI identifier; 4: the AD CS template


def default_cache_path(env: Mapping[str, str]) -> Path:
    configured = env.get("CERTLC_INGEST_CACHE", "")
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / "certlc" / "ingest-cache.json"


def cache_key(vault: str, name: str, thumbprint: str) -> str:
    return f"{vault.lower()}/{name.lower()}/{thumbprint.upper()}"


class DetailCache:
    def __init__(self, path: Path, entries: dict[str, CertificateDetails] | None = None) -> None:
        self.path = path
        self.entries: dict[str, CertificateDetails] = entries or {}

    @classmethod
    def load(cls, path: Path) -> DetailCache:
        """An unreadable or foreign cache costs detail reads, never a failed run."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != FORMAT_VERSION:
                return cls(path)
            return cls(path, {k: CertificateDetails(**v) for k, v in data["entries"].items()})
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return cls(path)

    def get(self, key: str) -> CertificateDetails | None:
        return self.entries.get(key)

    def save(self, keep: Mapping[str, CertificateDetails]) -> None:
        """Write only the entries still in use, atomically."""
        self.entries = dict(keep)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"format": FORMAT_VERSION, "entries": {k: asdict(v) for k, v in self.entries.items()}}
        write_atomically(self.path, json.dumps(payload))
