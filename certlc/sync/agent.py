"""One sync round: fetch, compare, write, reload, verify, and roll back when the server did not take it.

Each step that changes the server is audited into the app's own trail (``renewal.audit``: the ``certlc.audit`` log,
``CERTLC_AUDIT_FILE``, the renewal history in Log Analytics), one correlation id per round: ``written``,
``reloaded``, ``verified`` and ``rolled_back``, each naming the vault, certificate, version and this host, so the
history shows where a renewed certificate was deployed and whether it is served."""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from certlc.sync import files
from certlc.sync.bundle import Bundle, thumbprint
from certlc.sync.errors import RenewalPending, SyncError
from certlc.sync.fetch import fetch_bundle
from certlc.sync.reload import run_reload
from certlc.sync.verify import Endpoint, wait_until_served
from renewal.audit import Audit, AuditEvent
from renewal.vaults import Vault

log = logging.getLogger("certlc.sync")


@dataclass(frozen=True)
class SyncConfig:
    vault: Vault
    name: str
    targets: files.Targets
    env: Mapping[str, str] = field(repr=False)
    reload: list[str] | None = None
    reload_timeout: float = 60.0
    verify: Endpoint | None = None
    verify_timeout: float = 30.0
    audit: Audit = field(default_factory=Audit, repr=False)


@dataclass(frozen=True)
class RoundResult:
    vault: str
    name: str
    action: str  # unchanged | updated | rolled_back | failed
    reason: str
    version: str | None = None
    thumbprint: str | None = None

    @property
    def ok(self) -> bool:
        return self.action in ("unchanged", "updated")


def _on_disk(cert: Path) -> str | None:
    """The thumbprint of the certificate file before this round, to check a rollback against."""
    try:
        return thumbprint(x509.load_pem_x509_certificate(cert.read_bytes()))
    except (OSError, ValueError):
        return None


class _Trail:
    """One round's audit records: its correlation id, the version written, this host."""

    def __init__(self, config: SyncConfig, bundle: Bundle) -> None:
        self.config = config
        self.bundle = bundle
        self.correlation_id = uuid.uuid4().hex
        self.host = socket.gethostname()

    def __call__(self, event: AuditEvent, **fields: Any) -> None:
        self.config.audit.record(
            event,
            vault=self.config.vault.name,
            name=self.config.name,
            correlation_id=self.correlation_id,
            attempt=None,
            new_version=self.bundle.version,
            trigger="sync",
            host=self.host,
            thumbprint=self.bundle.thumbprint,
            **fields,
        )


def _apply(config: SyncConfig, expected: str) -> None:
    """Makes the server load the files on disk again and checks it serves ``expected`` (the rollback's check)."""
    if config.reload:
        run_reload(config.reload, config.reload_timeout)
    if config.verify:
        wait_until_served(config.verify, expected, config.verify_timeout)


def _roll_back(config: SyncConfig, created: list[Path], old: str | None, failure: SyncError) -> tuple[str, str]:
    files.restore(config.targets, created)
    if old is None:
        return "failed", f"{failure}; there were no previous files, so the new ones were removed"
    log.warning("%s/%s: restored the previous files after: %s", config.vault.name, config.name, failure)
    try:
        _apply(config, old)
    except SyncError as again:
        return "failed", f"{failure}; rolled back the files, but the server did not come back: {again}"
    return "rolled_back", f"{failure}; the previous certificate is in place and served again"


def sync_once(config: SyncConfig) -> RoundResult:
    """Raises SyncConfigError for mistakes; everything else that goes wrong is in the result."""
    bundle: Bundle | None = None

    def result(action: str, reason: str) -> RoundResult:
        version, thumb = (bundle.version, bundle.thumbprint) if bundle else (None, None)
        return RoundResult(config.vault.name, config.name, action, reason, version, thumb)

    files.check_writable(config.targets)
    try:
        bundle = fetch_bundle(config.vault, config.name, config.env)
    except RenewalPending as exc:
        return result("unchanged", str(exc))
    except SyncError as exc:
        return result("failed", str(exc))
    if files.on_disk_thumbprint(config.targets, bundle) == bundle.thumbprint:
        return result("unchanged", "up to date")
    old = _on_disk(config.targets.cert)
    try:
        created = files.install(config.targets, bundle)
    except OSError as exc:
        return result("failed", f"could not write the files ({exc}); the previous ones are unchanged")
    log.info("%s/%s: wrote version %s", config.vault.name, config.name, bundle.version)
    trail = _Trail(config, bundle)
    trail(AuditEvent.WRITTEN, old_thumbprint=old, files=[str(path) for path in config.targets.written(bundle)])
    step = "reload_failed"
    try:
        if config.reload:
            run_reload(config.reload, config.reload_timeout)
            trail(AuditEvent.RELOADED, command=config.reload[0])
        step = "not_served"
        if config.verify:
            seen = wait_until_served(config.verify, bundle.thumbprint, config.verify_timeout)
            trail(AuditEvent.VERIFIED, endpoint=str(config.verify), server_name=seen.host, not_after=seen.not_after)
    except SyncError as exc:
        action, reason = _roll_back(config, created, old, exc)
        trail(AuditEvent.ROLLED_BACK, reason=step, detail=reason, old_thumbprint=old, restored=action == "rolled_back")
        return result(action, reason)
    return result("updated", f"now version {bundle.version}")
