"""``certlc renew NAME --vault V``: one renewal now, through the same workflow the queue function runs.

Exit 0 when the certificate was renewed or there is nothing to do (not due, not managed, already in flight,
or ``--dry-run`` would renew); 1 when the renewal failed, was refused, is left retrying or waiting for the CA,
or the certificate does not exist; 2 for a usage or configuration mistake (a vault not in ``CERTLC_VAULTS``,
an unknown ``CERTLC_CA``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from renewal.messages import RenewalRequest

DONE = {"renewed", "skipped"}
NOT_DONE_SKIPS = {"not_found"}  # a certificate that does not exist is not "nothing to do"
CA_PROBE_TIMEOUT = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="certificate name in Key Vault")
    parser.add_argument("--vault", required=True, help="vault name (must be in CERTLC_VAULTS)")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check everything a renewal checks (vault, certificate, decision, CA adapter, profile, that the CA "
        "answers) and change nothing",
    )
    parser.add_argument("--force", action="store_true", help="renew even if the certificate is not due yet")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def exit_code(status: str, reason: str) -> int:
    return 0 if status in DONE and reason not in NOT_DONE_SKIPS else 1


def run(args: argparse.Namespace) -> int:
    from certlc.cli import UserError
    from certlc.commands.common import checked_runtime

    runtime = checked_runtime(args.env, dry_run=args.dry_run)
    if args.vault.lower() not in runtime.settings.vaults:
        known = ", ".join(v.name for v in runtime.settings.vaults.values())
        raise UserError(f"vault {args.vault!r} is not in CERTLC_VAULTS ({known})")
    request = _request(args)
    result = runtime.workflow.handle(request)
    status, reason, message = result.status, result.reason, result.message
    if args.dry_run and reason == "dry_run":
        status, reason, message = _check_issuer(runtime, request, message)
    if args.json:
        print(
            json.dumps(
                {
                    "status": status,
                    "reason": reason,
                    "message": message,
                    "new_version": result.new_version,
                    "retry_in_seconds": result.retry_in_seconds,
                    "dry_run": args.dry_run,
                }
            )
        )
    else:
        print(f"{args.vault}/{args.name}: {status} ({reason}) {message}")
    return exit_code(status, reason)


def _request(args: argparse.Namespace) -> RenewalRequest:
    """An operator's renewal: renewed when due (``--force``: always), sent and audited as ``manual``."""
    return RenewalRequest(vault=args.vault, name=args.name, trigger="manual", force=args.force)


def _check_issuer(runtime: Any, request: RenewalRequest, would: str) -> tuple[str, str, str]:
    """What a real run checks before it submits: the CA adapter the decision picks (a tag may name one), its
    profile, and that the CA answers (the doctor's read-only probe). A certificate the real run would fail
    fails the dry run with the same exit code, 1; an unknown ``CERTLC_CA`` is exit 2 before any of this."""
    from certlc.doctor.cas import check_ca
    from renewal.ca.base import CaConfigError
    from renewal.decide import Input, decide

    vault = runtime.settings.vaults[request.vault.lower()]
    cert = runtime.keyvault(vault).current(request.name)
    verdict = decide(Input(request, runtime.settings.vaults, cert, runtime.clock(), runtime.settings.window))
    name = (verdict.ca or runtime.settings.window.default_ca).strip().lower()
    try:
        ca = runtime.workflow.ca_for(name)
    except CaConfigError as exc:
        return "failed", "ca_error", f"would fail: {exc}"
    profiles = getattr(ca, "profiles", None)
    if isinstance(profiles, dict) and verdict.profile and verdict.profile not in profiles:
        offered = ", ".join(sorted(profiles))
        return "failed", "ca_denied", f"would fail: CA {name!r} does not offer profile {verdict.profile!r} ({offered})"
    check = check_ca(name, runtime.env, CA_PROBE_TIMEOUT)
    if not check.ok:
        detail = f"{check.detail}; fix: {check.fix}" if getattr(check, "fix", "") else check.detail
        return "failed", "ca_unavailable", f"would renew, but CA {name!r} does not answer: {detail}"
    return "skipped", "dry_run", f"{would}; CA {name!r} answers"
