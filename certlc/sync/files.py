"""The server's files: written atomically, the previous set kept as ``*.previous`` for a rollback."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from certlc.sync import bundle as pieces
from certlc.sync.bundle import Bundle, thumbprint
from certlc.sync.errors import SyncConfigError
from renewal.atomic import write_atomically

PUBLIC_MODE = 0o644
KEY_MODE = 0o600
PREVIOUS_SUFFIX = ".previous"


@dataclass(frozen=True)
class Targets:
    """Where the server reads its certificate, key and (optionally) chain and full chain."""

    cert: Path
    key: Path
    chain: Path | None = None
    fullchain: Path | None = None

    def modes(self) -> list[tuple[Path, int]]:
        """Each file with the mode it must have: the key is readable by its owner only."""
        wanted = [(self.cert, PUBLIC_MODE), (self.chain, PUBLIC_MODE), (self.fullchain, PUBLIC_MODE)]
        return [(path, mode) for path, mode in wanted if path is not None] + [(self.key, KEY_MODE)]

    def paths(self) -> list[Path]:
        return [path for path, _ in self.modes()]

    def written(self, bundle: Bundle) -> list[Path]:
        """The files a version fills: no chain file when its leaf's issuer is a root, as an empty one would read as
        a chain of nothing."""
        return [path for path in self.paths() if path != self.chain or bundle.chain]

    def contents(self, bundle: Bundle) -> dict[Path, bytes]:
        data = {self.cert: pieces.cert_pem(bundle), self.key: bundle.key_pem}
        if self.chain is not None and bundle.chain:
            data[self.chain] = pieces.chain_pem(bundle)
        if self.fullchain is not None:
            data[self.fullchain] = pieces.fullchain_pem(bundle)
        return data


def previous(path: Path) -> Path:
    return path.with_name(path.name + PREVIOUS_SUFFIX)


def check_writable(targets: Targets) -> None:
    """Fails before anything is fetched or written, so a permission mistake never leaves half a change."""
    paths = targets.paths()
    if len({p.resolve() for p in paths}) != len(paths):
        raise SyncConfigError("--cert, --key, --chain and --fullchain must be different files")
    for path in paths:
        folder = path.parent
        if folder.exists() and not folder.is_dir():
            raise SyncConfigError(f"{folder} is not a folder (needed for {path.name})")
        if not folder.is_dir():
            raise SyncConfigError(f"{folder} does not exist: create it before syncing {path.name} into it")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise SyncConfigError(f"no permission to write in {folder} (needed for {path.name}); run as its owner")


def on_disk_thumbprint(targets: Targets, bundle: Bundle) -> str | None:
    """The thumbprint of the certificate on disk, or None when a file ``bundle`` fills is missing or unreadable, or
    a chain file it has no use for is still there."""
    wanted = targets.written(bundle)
    if not all(p.is_file() for p in wanted) or any(p.exists() for p in targets.paths() if p not in wanted):
        return None
    try:
        return thumbprint(x509.load_pem_x509_certificate(targets.cert.read_bytes()))
    except (OSError, ValueError):
        return None


def install(targets: Targets, bundle: Bundle) -> list[Path]:
    """Keeps every existing file as ``*.previous``, then writes the new set and removes a chain file the new
    version has no use for; returns the files that did not exist before.

    All backups are made before the first new file is written, so a failure part-way is undone from them.
    """
    created = [path for path in targets.paths() if not path.exists()]
    for path, mode in targets.modes():
        if path in created:
            previous(path).unlink(missing_ok=True)
        else:
            write_atomically(previous(path), path.read_bytes(), mode=mode)
    contents = targets.contents(bundle)
    try:
        for path, mode in targets.modes():
            if path in contents:
                write_atomically(path, contents[path], mode=mode)
            else:
                path.unlink(missing_ok=True)
    except BaseException:
        restore(targets, created)
        raise
    return created


def restore(targets: Targets, created: list[Path]) -> None:
    """Puts the ``*.previous`` files back and removes the files the failed round created."""
    for path, mode in targets.modes():
        if path in created:
            path.unlink(missing_ok=True)
        else:
            write_atomically(path, previous(path).read_bytes(), mode=mode)
