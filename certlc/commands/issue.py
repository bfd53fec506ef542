"""``certlc issue NAME --dns NAME[,NAME] --ca CA [--profile P] [--subject DN] [--key K] [--validity MONTHS]``: a new
certificate, created in Key Vault and signed by a CA Key Vault does not integrate with, through the same pipeline a
renewal takes (``renewal.issuance``: the lock, one CA request, the merge, the audit trail with trigger ``issue``).

Checked before anything is created: the name is free (a certificate that exists is ``certlc adopt``'s), the CA
adapter is configured and its profile can issue the policy (``renewal.policy_change``'s rules: the key types every
adapter takes, the validity the profile issues). The policy's issuer is ``Unknown``, so Key Vault makes a CSR and
never renews it itself; the certificate is tagged with its CA and profile, so certlc renews it from then on.

Exit 0 issued; 1 the CA refused or left it pending (certlc finishes it once the CA decides), or the name is taken
(also by another run of the same command that got there first: `certlc status NAME` shows it); 2 a usage or
configuration mistake.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the new certificate's name in Key Vault")
    parser.add_argument("--dns", required=True, help="its DNS names, comma-separated (the first is the subject's CN)")
    parser.add_argument("--ca", required=True, help="the CA adapter that signs and renews it: local, cfssl, acme, adcs")
    parser.add_argument("--profile", help="the CA profile or AD CS template (default CERTLC_CA_PROFILE)")
    parser.add_argument("--subject", help="its subject (default CN=<first DNS name>)")
    parser.add_argument("--key", default="RSA-2048", help="RSA-2048 (default), RSA-3072, RSA-4096, EC-P256, EC-P384")
    parser.add_argument("--validity", type=int, metavar="MONTHS", help="months (default: what the CA profile issues)")
    parser.add_argument("--vault", help="vault name (must be in CERTLC_VAULTS; optional when it lists one vault)")
    parser.add_argument("--dry-run", action="store_true", help="check everything and create nothing")


def run(args: argparse.Namespace) -> int:
    from certlc.cli import UserError
    from certlc.commands.common import checked_runtime, chosen_vault
    from renewal.ca.base import CaConfigError, CaError
    from renewal.messages import RenewalRequest
    from renewal.policy_change import PolicyFileError, ca_limits, change_from_json, change_refused
    from renewal.vaults import is_valid_object_name

    if not is_valid_object_name(args.name):
        raise UserError(f"{args.name!r} cannot be a Key Vault certificate name: 1-127 letters, digits and hyphens")
    names = [n.strip() for n in args.dns.split(",") if n.strip()]
    form: dict[str, Any] = {"dns": names, "subject": args.subject or f"CN={names[0] if names else ''}"}
    form["key"] = args.key
    if args.validity is not None:
        form["validity_months"] = args.validity
    try:
        change = change_from_json(json.dumps(form))
    except PolicyFileError as exc:
        raise UserError(str(exc).replace('"dns"', "--dns").replace('"key"', "--key")) from None
    runtime = checked_runtime(args.env, dry_run=args.dry_run)
    vault = chosen_vault(runtime.settings.vaults, args.vault)
    ca_name = args.ca.strip().lower()
    try:
        ca = runtime.workflow.ca_for(ca_name)
    except CaConfigError as exc:
        raise UserError(str(exc)) from None
    profile = args.profile or runtime.settings.window.default_profile or ""
    existing = runtime.keyvault(vault).get(args.name)
    if existing is not None and existing.cer is not None:
        return _said(
            args, "exists", f"it exists already (version {existing.version}): `certlc adopt` puts it under certlc", 1
        )
    try:
        limits = ca_limits(ca_name, ca, profile)
    except CaError as exc:
        return _said(args, "failed", f"could not learn what CA {ca_name!r} issues: {exc}", 1)
    refused = change_refused(change, limits)
    if refused:
        return _said(args, "refused", refused, 1)
    policy = new_policy(change, limits.validity_days)
    if args.dry_run:
        return _said(args, "would_issue", f"would create it with CA {ca_name!r}, profile {profile!r}", 0)
    request = RenewalRequest(vault.name, args.name, "issue", ca_profile=profile)
    audit_issue(runtime, request, ca_name)
    from renewal.issuance import Issuer

    done = Issuer(runtime.workflow).issue(request, policy, ca_name)
    code = 0 if done.status in ("issued", "skipped") else 1
    return _said(args, done.status, done.message, code, version=done.version)


def new_policy(change: Any, validity_days: int | None) -> Any:
    """The policy of a certificate certlc issues: issuer ``Unknown`` (Key Vault makes the CSR and renews nothing
    itself), a new key each version, the validity the profile issues where the file gives none."""
    from azure.keyvault.certificates import CertificatePolicy

    from renewal.policy_change import DAYS_PER_MONTH, KEYS

    kty, size, curve = KEYS[change.key]
    months = change.validity_months or (max(1, round(validity_days / DAYS_PER_MONTH)) if validity_days else None)
    return CertificatePolicy(
        issuer_name="Unknown",
        subject=change.subject,
        san_dns_names=list(change.dns),
        key_type=kty,
        key_size=size,
        key_curve_name=curve,
        reuse_key=False,
        exportable=True,
        validity_in_months=months,
    )


def audit_issue(runtime: Any, request: Any, ca: str) -> None:
    """The operator's action, under the issuance's correlation id: who issued which certificate, through which CA."""
    from certlc.commands.operator import Target, current_operator, operator_audit, record_action

    record_action(
        operator_audit(runtime.env, runtime.clock),
        "issue",
        [Target(request.vault, request.name)],
        current_operator(),
        correlation_id=request.correlation_id,
        trigger=request.trigger,
        ca=ca,
        profile=request.ca_profile,
    )


def _said(args: argparse.Namespace, status: str, message: str, code: int, version: str | None = None) -> int:
    if args.output == "json":
        body = {"name": args.name, "status": status, "message": message, "version": version, "dry_run": args.dry_run}
        print(json.dumps(body))
    else:
        print(f"{args.name}: {status} {message}")
    return code
