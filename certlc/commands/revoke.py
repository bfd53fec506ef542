"""``certlc revoke NAME [--version V] --reason R``: revoke at its CA a version nobody should trust any more.

Refused (exit 1, nothing done) for the current version unless ``--force`` (a certificate in use would stop being
trusted; a key that may be exposed is ``certlc renew NAME --compromise``, which renews first), and refused while a
target the last target check saw still serves that version. The CA is the one that renews the certificate (tag
``certlc-ca``, else ``CERTLC_CA``). Where the CA offers certlc no revocation (AD CS web enrollment), the command
prints what a person must run, and the version shows as awaiting until its CA's CRL lists it. The version is tagged
``certlc-revocation`` with what the CA did, so a second run does not ask again; the operator's action is audited.

Exit 0 revoked (also when it already was, and when a person must finish it), 1 refused (by certlc or the CA) or the
CA did not answer, 2 a usage mistake (an unknown reason, a vault not in ``CERTLC_VAULTS``).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from typing import Any

from renewal.ca.base import REVOCATION_REASONS

# the reason as users type it (certbot's --reason words, kebab-case) or as RFC 5280 names it
REASON_WORDS = {
    "unspecified": "unspecified",
    "keycompromise": "keyCompromise",
    "key-compromise": "keyCompromise",
    "affiliationchanged": "affiliationChanged",
    "affiliation-changed": "affiliationChanged",
    "superseded": "superseded",
    "cessationofoperation": "cessationOfOperation",
    "cessation-of-operation": "cessationOfOperation",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="certificate name in Key Vault")
    parser.add_argument("--vault", help="vault name (must be in CERTLC_VAULTS; optional when it lists one vault)")
    parser.add_argument("--version", help="the version to revoke (default: the current one, which needs --force)")
    parser.add_argument(
        "--reason",
        required=True,
        help="why, as RFC 5280 names it: key-compromise, superseded, cessation-of-operation, affiliation-changed, "
        "unspecified",
    )
    parser.add_argument("--force", action="store_true", help="revoke the current version (it stops being trusted)")
    parser.add_argument("--dry-run", action="store_true", help="check everything and change nothing")


@dataclass(frozen=True)
class Revocation:
    """What happened to the version, as printed."""

    vault: str
    name: str
    version: str
    status: str  # revoked, awaiting, refused, would_revoke
    reason: str
    message: str
    serial: str = ""
    instructions: str = ""

    def line(self) -> str:
        then = f"\n  run: {self.instructions}" if self.instructions else ""
        return f"{self.vault}/{self.name} version {self.version}: {self.status} ({self.reason}) {self.message}{then}"


def reason_of(word: str) -> str:
    from certlc.cli import UserError

    reason = REASON_WORDS.get(word.strip().lower())
    if reason is None or reason not in REVOCATION_REASONS:
        raise UserError(f"unknown revocation reason {word!r}; use one of {', '.join(sorted(set(REASON_WORDS)))}")
    return reason


def run(args: argparse.Namespace) -> int:
    from certlc.cli import NotFound, UserError
    from certlc.commands.common import checked_runtime, chosen_vault
    from renewal.vaults import is_valid_object_name

    reason = reason_of(args.reason)
    if not is_valid_object_name(args.name):
        raise UserError(f"{args.name!r} cannot be a Key Vault certificate name: 1-127 letters, digits and hyphens")
    runtime = checked_runtime(args.env, dry_run=args.dry_run)
    vault = chosen_vault(runtime.settings.vaults, args.vault)
    kv = runtime.keyvault(vault)
    current = kv.current(args.name)
    if current is None:
        raise NotFound(f"certificate {args.name!r} does not exist in vault {vault.name}")
    version = kv.version(args.name, args.version) if args.version else current
    if version is None:
        raise NotFound(f"{vault.name}/{args.name} has no version {args.version}")
    done = revoke_version(runtime, current, version, reason, force=args.force, dry_run=args.dry_run)
    if args.output == "json":
        print(json.dumps(asdict(done) | {"dry_run": args.dry_run}))
    else:
        print(done.line())
    return 0 if done.status in ("revoked", "awaiting", "would_revoke") else 1


def revoke_version(runtime: Any, current: Any, version: Any, reason: str, *, force: bool, dry_run: bool) -> Revocation:
    """Gather what the refusal needs (the version, the targets serving it, its revocation tag), decide, then ask the
    CA and tag the version."""
    from renewal import compromise
    from renewal import tags as cert_tags
    from renewal.ca.base import AwaitingPerson, CaError, CaUnavailable, Revoked
    from renewal.decide import ca_of
    from renewal.x509info import der_to_pem, thumbprint

    def answer(status: str, message: str, **extra: str) -> Revocation:
        return Revocation(version.vault, version.name, version.version, status, reason, message, **extra)

    if version.cer is None:
        return answer("refused", "this version holds no certificate (a pending create): nothing to revoke")
    said = compromise.revocation_state(version.tags)
    if said == "revoked":
        return answer("revoked", f"already revoked ({cert_tags.tag(version.tags, cert_tags.REVOCATION)})")
    if version.version == current.version and not force:
        return answer(
            "refused",
            "this is the current version: revoking it stops it being trusted wherever it is used; renew first "
            "(`certlc renew NAME --compromise` renews with a new key and revokes the old), or pass --force",
        )
    serving = runtime.workflow.serving(version.vault, version.name, thumbprint(version.cer))
    if serving:
        return answer("refused", f"still served by {', '.join(serving)} (the last target check): move them first")
    ca_name = ca_of(current.tags, runtime.settings.window)
    ca = runtime.workflow.ca_for(ca_name)
    if dry_run:
        return answer("would_revoke", f"would ask CA {ca_name!r} to revoke it")
    audit_revocation(runtime, version, reason)
    try:
        result: Any = ca.revoke(der_to_pem(version.cer), reason)
    except CaUnavailable as exc:
        return answer("refused", f"CA {ca_name!r} did not answer: {exc}; nothing was revoked, run it again")
    except CaError as exc:
        return answer("refused", f"CA {ca_name!r} refused: {exc}")
    today = runtime.clock()
    state = "revoked" if isinstance(result, Revoked) else "awaiting"
    kept = {k: v for k, v in version.tags.items() if k.strip().lower() != cert_tags.WARNED}
    runtime.keyvault(runtime.settings.vaults[version.vault.lower()]).update_tags(
        version.name, version.version, kept | {cert_tags.REVOCATION: f"{state} {reason} {today:%Y-%m-%d}"}
    )
    if isinstance(result, AwaitingPerson):
        return answer(
            "awaiting",
            f"CA {ca_name!r} offers certlc no revocation: a person must revoke it; certlc shows it as awaiting until "
            "the CA's CRL lists it",
            serial=result.serial,
            instructions=result.instructions,
        )
    return answer(
        "revoked", f"revoked at CA {ca_name!r}" + (f": {result.detail}" if result.detail else ""), serial=result.serial
    )


def audit_revocation(runtime: Any, version: Any, reason: str) -> None:
    """The operator's action, before the CA is asked: who revoked which version, and why."""
    from certlc.commands.operator import Target, current_operator, operator_audit, record_action

    record_action(
        operator_audit(runtime.env, runtime.clock),
        "revoke",
        [Target(version.vault, version.name)],
        current_operator(),
        version=version.version,
        reason=reason,
    )
