"""``certlc adopt NAME --ca CA [--profile P]``: put an existing Key Vault certificate under certlc, so certlc renews it
from now on through CA adapter CA with profile P (``renewal.adoption`` decides what that takes, and why).

Gather (the current version, its policy and pending operation, what the CA adapter's profile issues) → decide
(``renewal.adoption.decide``) → act: the operator action ``adopt`` is recorded with the fields changed and their old
values, then the policy is updated (issuer ``Unknown``, no ``AutoRenew``) when it changes, then the current version's
tags (every existing one kept). It renews nothing: the line says when certlc will (``renewal.decide.plan``).

Exit 0 adopted, already adopted, or a ``--dry-run`` that would adopt; 1 refused (nothing changed) or the certificate
does not exist; 2 a usage or configuration mistake (an unknown CA adapter, a vault not in ``CERTLC_VAULTS``).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="certificate name in Key Vault")
    parser.add_argument(
        "--ca", required=True, help="the CA adapter that renews it from now on: local, cfssl, acme, adcs"
    )
    parser.add_argument(
        "--profile",
        help="the CA's profile or template (default: tag certlc-profile, the AD CS template it names, "
        "CERTLC_CA_PROFILE)",
    )
    parser.add_argument("--vault", help="vault name (must be in CERTLC_VAULTS; optional when it lists one vault)")
    parser.add_argument("--dry-run", action="store_true", help="print what would change and change nothing")


@dataclass(frozen=True)
class Adopted:
    """What happened, as printed."""

    vault: str
    name: str
    version: str
    status: str  # adopted, would_adopt, already_adopted, refused
    reason: str
    message: str
    ca: str
    profile: str
    changes: dict[str, dict[str, Any]]  # field -> {"old", "new"}
    next_renewal: datetime | None = None

    def line(self) -> str:
        return f"{self.vault}/{self.name}: {self.status} ({self.reason}) {self.message}"

    def as_json(self, dry_run: bool) -> str:
        body = self.__dict__ | {"next_renewal": self.next_renewal.isoformat() if self.next_renewal else None}
        return json.dumps(body | {"dry_run": dry_run})


def run(args: argparse.Namespace) -> int:
    from certlc.cli import NotFound, UserError
    from certlc.commands.common import checked_runtime, chosen_vault
    from renewal.adoption import Reason
    from renewal.vaults import is_valid_object_name

    if not is_valid_object_name(args.name):
        raise UserError(f"{args.name!r} cannot be a Key Vault certificate name: 1-127 letters, digits and hyphens")
    if not args.ca.strip():
        raise UserError("--ca names the CA adapter that renews it: local, cfssl, acme or adcs")
    if args.profile is not None and not args.profile.strip():
        raise UserError("--profile is empty: name the CA's profile or template, or leave --profile out")
    runtime = checked_runtime(args.env, dry_run=args.dry_run)
    vault = chosen_vault(runtime.settings.vaults, args.vault)
    done = adopt(runtime, vault, args.name, args.ca, args.profile, dry_run=args.dry_run)
    if done.reason == Reason.NOT_FOUND:
        raise NotFound(done.message)
    print(done.as_json(args.dry_run) if args.output == "json" else done.line())
    return 1 if done.status == "refused" else 0


def adopt(runtime: Any, vault: Any, name: str, ca_name: str, profile: str | None, *, dry_run: bool) -> Adopted:
    """Gather, decide (``renewal.adoption``), then act unless refused, already adopted or a dry run."""
    from renewal import adoption
    from renewal.ca.base import CaError
    from renewal.decide import facts_of, plan
    from renewal.policy_change import ca_limits

    ca_name = ca_name.strip().lower()
    ca = runtime.workflow.ca_for(ca_name)  # CaConfigError (exit 2): an unknown adapter, or one with no settings
    kv = runtime.keyvault(vault)
    cert = kv.current(name)
    facts = facts_of(cert, runtime.settings.canary) if cert else None
    given = adoption.Input(
        vault.name,
        name,
        ca_name,
        profile.strip() if profile else None,
        runtime.settings.window,
        facts,
        policy=cert.policy if cert else None,
        pending=kv.get_pending(name) if cert else None,
    )
    wanted = adoption.profile_of(given)
    if facts is not None and wanted:
        try:
            given = replace(given, limits=ca_limits(ca_name, ca, wanted))
        except CaError as exc:
            why = f"could not learn what CA {ca_name!r} issues with profile {wanted!r}: {exc}; nothing changed"
            unknown = adoption.Adoption("refuse", adoption.Reason.CA_UNAVAILABLE, why)
            return _said(vault.name, name, facts.version, "refused", unknown)
    decided = adoption.decide(given)
    if decided.outcome == "refuse" or cert is None or facts is None:
        return _said(vault.name, name, cert.version if cert else "", "refused", decided)
    if decided.outcome == "already":
        return _said(vault.name, name, cert.version, "already_adopted", decided)
    verdict = plan(adoption.adopted_facts(facts, decided), runtime.clock(), runtime.settings.window)
    then = f"{decided.message}; it renews nothing now: {when(verdict, name)}"
    if dry_run:
        return _said(vault.name, name, cert.version, "would_adopt", decided, f"would adopt: {then}", verdict)
    _audit(runtime, cert, decided)
    if decided.policy_changes:
        kv.update_policy(name, adoption.adopted_policy(cert.policy))
    kv.update_tags(name, cert.version, decided.tags)
    return _said(vault.name, name, cert.version, "adopted", decided, then, verdict)


def when(verdict: Any, name: str) -> str:
    """When certlc renews it, as the one decision says; due now, how that comes about."""
    if verdict.outcome == "renew":
        return f"{verdict.message} (the next sweep queues it; `certlc renew {name}` renews it at once)"
    return verdict.message


def _said(
    vault: str, name: str, version: str, status: str, decided: Any, message: str = "", verdict: Any = None
) -> Adopted:
    return Adopted(
        vault,
        name,
        version,
        status,
        str(decided.reason),
        message or decided.message,
        decided.ca,
        decided.profile,
        {c.field: {"old": c.old, "new": c.new} for c in decided.changes},
        verdict.next_renewal if verdict is not None else None,
    )


def _audit(runtime: Any, cert: Any, decided: Any) -> None:
    """The operator's action, before anything is written: what adoption changes and the values it replaces (enough
    to undo it), with the version whose tags it sets."""
    from certlc.commands.operator import Target, current_operator, operator_audit, record_action

    record_action(
        operator_audit(runtime.env, runtime.clock),
        "adopt",
        [Target(cert.vault, cert.name)],
        current_operator(),
        version=cert.version,
        ca=decided.ca,
        profile=decided.profile,
        changed={c.field: c.new for c in decided.changes},
        old={c.field: c.old for c in decided.changes},
    )
