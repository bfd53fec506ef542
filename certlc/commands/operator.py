"""Operator actions in the audit trail: who ran a command that changes what certlc does, where, and on what.

``certlc failed retry/remove/purge`` and ``certlc renew --force/--compromise`` each write one ``operator_action``
record per certificate (or failed-store entry) they acted on, to the sinks the app's own records go to
(``renewal.audit.audit_from_env``: the ``certlc.audit`` log, ``CERTLC_AUDIT_FILE``, the renewal history in Log
Analytics), so the history shows each manual intervention beside the renewals and the metrics count them. A dry
run acts on nothing and audits nothing; the caller records only what was done.
"""

from __future__ import annotations

import getpass
import socket
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from renewal.audit import Audit, AuditEvent, audit_from_env
from renewal.clock import Clock

UNKNOWN_USER = "unknown"


@dataclass(frozen=True)
class Operator:
    user: str
    host: str


@dataclass(frozen=True)
class Target:
    """What one action touched: a certificate, and the failed-store entry when the action was on one (an entry
    may name no certificate: a poison message certlc could not read)."""

    vault: str
    name: str
    entry_id: str = ""
    detail: str = ""  # what the entry said: its store and reason


def entry_target(entry: Any) -> Target:
    """A failed-store entry (``renewal.queue.FailedEntry``) as what an action touched."""
    return Target(entry.vault or "", entry.name or "", entry.id, f"{entry.store} entry: {entry.reason}")


def current_operator() -> Operator:
    """The account and host running this command. ``getpass.getuser`` reads the login environment variables, then
    the password database, and raises in a container whose uid has no entry: the record says so instead."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError, ImportError):
        user = UNKNOWN_USER
    return Operator(user=user or UNKNOWN_USER, host=socket.gethostname())


def operator_audit(env: Mapping[str, str], clock: Clock) -> Audit:
    """The app's audit sinks, from the command's settings, on the app's clock, so the records sort among the
    renewals' (the local stack's clock may be moved)."""
    return audit_from_env(env, clock=clock)


def record_action(
    audit: Audit,
    action: str,
    targets: Iterable[Target],
    operator: Operator,
    *,
    correlation_id: str | None = None,
    **fields: Any,
) -> list[dict[str, Any]]:
    """One ``operator_action`` record per target, sharing a correlation id: the renewal's when the action started
    one (``renew --force``), so it folds under it, else this command's own."""
    run_id = correlation_id or uuid.uuid4().hex
    return [
        audit.record(
            AuditEvent.OPERATOR_ACTION,
            vault=target.vault,
            name=target.name,
            correlation_id=run_id,
            attempt=None,
            action=action,
            user=operator.user,
            host=operator.host,
            **({"entry_id": target.entry_id, "detail": target.detail} if target.entry_id else {}),
            **fields,
        )
        for target in targets
    ]
