"""Errors of the sync agent: mistakes the operator fixes (exit 2) and failed rounds (exit 1)."""

from __future__ import annotations

from renewal.errors import ConfigError


class SyncConfigError(ConfigError):
    """The command line, a file permission or the vault setup needs fixing; retrying will not help."""


class SyncError(Exception):
    """A round failed (Key Vault unreachable, reload or verification failed); a later round may succeed."""


class RenewalPending(SyncError):
    """Key Vault refuses the secret as disabled: a renewal's new version is waiting for its CA; keep the files."""
