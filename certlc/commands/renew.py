"""``certlc renew NAME`` and ``certlc renew --all``: renewals now, in this process, through the same workflow the
queue function runs.

``--all`` renews what the sweep would queue (due, managed, nobody renewing it; an orphaned pending operation is
taken over), one after another, as certbot's ``renew`` does: one line per certificate it acted on, then a
summary; the others have nothing to do. ``--all --force`` renews every certificate certlc manages whatever its
dates (a CA migration), each request pinned to the version it saw, so a second run, another process's run or a
redelivery finds that version replaced and stops as superseded. ``--queue`` hands the requests to the renewal queue
instead, for the app's instances and workers to renew at the pace Key Vault's shared budget allows.
``NAME --policy FILE`` is a change renewal: the file's subject, DNS names, key or validity replace the policy's once
the CA adapter's profile can issue them (``renewal.policy_change``), then NAME is renewed as with ``--force``; exit 1
when the change is refused or not renewed, with Key Vault left as it was when refused.

Exit 0 when everything was renewed or queued, or there is nothing to do (not due,
not managed, already in flight, or ``--dry-run`` would renew); 1 when a renewal failed, was refused, is left
retrying or waiting for the CA, the certificate does not exist, or (``--all``) a certificate's last renewal
failed and nobody re-drove it; 2 for a usage or configuration mistake (a vault not in ``CERTLC_VAULTS``, an
unknown ``CERTLC_CA``, NAME with ``--all``, a NAME Key Vault cannot have); 130 when interrupted, with one line on
what the renewal may have left.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from renewal.messages import RenewalRequest

if TYPE_CHECKING:
    from renewal.policy_change import PolicyChange

DONE = {"renewed", "skipped", "queued"}
NOT_DONE_SKIPS = {"not_found"}  # a certificate that does not exist is not "nothing to do"
CA_PROBE_TIMEOUT = 5.0
FAILED_BEFORE = "failed_before"  # the sweep leaves it: a permanent failure nobody has re-driven


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument("name", nargs="?", help="certificate name in Key Vault")
    which.add_argument(
        "--all", action="store_true", help="renew every certificate that is due (what the sweep would queue)"
    )
    parser.add_argument(
        "--vault",
        help="vault name (must be in CERTLC_VAULTS; optional when it lists one vault); with --all: only this vault",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check everything a renewal checks (vault, certificate, decision, CA adapter, profile, that the CA "
        "answers) and change nothing",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="renew NAME even if it is not due yet; with --all: every certificate certlc manages (a CA migration)",
    )
    parser.add_argument(
        "--queue",
        action="store_true",
        help="with --all: queue the renewals for the app and its workers instead of renewing them in this process",
    )
    parser.add_argument(
        "--compromise",
        action="store_true",
        help="renew NAME now with a new key, whatever its dates, because its key may be exposed, then revoke the old "
        "certificate at its CA and disable its version (trigger compromise)",
    )
    parser.add_argument(
        "--version",
        dest="compromised_version",
        metavar="V",
        help="with --compromise: the version whose key is exposed (default: the current one); if a renewal replaced "
        "it meanwhile, only that version is revoked and disabled",
    )
    parser.add_argument(
        "--policy",
        metavar="FILE",
        help='with NAME: change its policy (JSON: {"subject", "dns", "key", "validity_months"}, each optional) and '
        "renew it now with the change, once its CA adapter's profile can issue it",
    )


@dataclass(frozen=True)
class Outcome:
    """What happened to one certificate, as printed: the workflow's result, or the sweep's reason to leave it."""

    vault: str
    name: str
    status: str
    reason: str
    message: str
    new_version: str | None = None
    retry_in_seconds: int | None = None

    @property
    def acted_on(self) -> bool:
        return self.status != "skipped" or self.reason == "dry_run"

    @property
    def counted_as(self) -> str:
        """Its word in the summary: a dry run's "would renew" is what it found to do, not a skip."""
        return "would_renew" if self.reason == "dry_run" else self.status

    def line(self) -> str:
        return f"{self.vault}/{self.name}: {self.status} ({self.reason}) {self.message}"


def exit_code(status: str, reason: str) -> int:
    return 0 if status in DONE and reason not in NOT_DONE_SKIPS else 1


def run(args: argparse.Namespace) -> int:
    from certlc.cli import UserError
    from certlc.commands.common import checked_runtime, chosen_vault
    from renewal.vaults import is_valid_object_name

    if not args.all and not args.name:
        raise UserError("name the certificate to renew, or pass --all to renew every one that is due")
    if args.queue and not args.all:
        raise UserError("--queue applies to --all: a named certificate is renewed in this process")
    if args.all and args.compromise:
        raise UserError("--compromise renews one certificate whose key may be exposed: name it instead of --all")
    if args.compromised_version and not args.compromise:
        raise UserError("--version names the version whose key is exposed: use it with --compromise")
    if args.policy and (args.all or args.compromise):
        raise UserError(
            "--policy changes one certificate's policy and renews it: name it, without --all or --compromise"
        )
    if args.name and not is_valid_object_name(args.name):  # refused here, before a renewal could record it failed
        raise UserError(
            f"{args.name!r} cannot be a Key Vault certificate name: 1-127 letters, digits and hyphens "
            "(`certlc status` lists the certificates)"
        )
    change = read_change(args.policy) if args.policy else None  # a bad file is exit 2 before any service is dialled
    runtime = checked_runtime(args.env, dry_run=args.dry_run)
    if args.all:
        vaults = runtime.settings.vaults
        if args.vault:
            vault = chosen_vault(vaults, args.vault)
            vaults = {vault.name.lower(): vault}
        with said_if_interrupted(args.dry_run, "renewals", "certlc status"):
            if args.force:
                requests, outcomes = forced_requests(runtime, vaults)
            else:
                requests, outcomes = swept_requests(runtime, vaults, args.dry_run)
            if args.force and not args.dry_run:
                for request in requests:
                    audit_intervention(runtime, request)
            act = queue_one if args.queue else renew_one
            outcomes = [act(runtime, request, args.dry_run) for request in requests] + outcomes
        return _report_all(outcomes, args.output, args.dry_run)
    vault = chosen_vault(runtime.settings.vaults, args.vault)
    if change is not None:
        return _report_change(change_renewal(runtime, vault, args.name, change, args.dry_run), args)
    trigger = "compromise" if args.compromise else "manual"
    request = RenewalRequest(  # a compromise names the version whose key is exposed: the one the operator saw
        vault=vault.name,
        name=args.name,
        trigger=trigger,
        force=args.force,
        version=exposed_version(runtime, vault, args),
    )
    if (args.force or args.compromise) and not args.dry_run:
        audit_intervention(runtime, request)
    which = f" --vault {vault.name}" if len(runtime.settings.vaults) > 1 else ""
    with said_if_interrupted(
        args.dry_run, f"the renewal of {vault.name}/{args.name}", f"certlc status {args.name}{which}"
    ):
        outcome = renew_one(runtime, request, args.dry_run)
    if args.output == "json":
        body = {k: v for k, v in asdict(outcome).items() if k not in ("vault", "name")}
        print(json.dumps(body | {"dry_run": args.dry_run}))
    else:
        print(outcome.line())
    return exit_code(outcome.status, outcome.reason)


def exposed_version(runtime: Any, vault: Any, args: argparse.Namespace) -> str | None:
    """The version a compromise is about: ``--version``, else the current one as read now (a renewal that replaces
    it before the compromise runs then leaves only it to revoke and disable)."""
    if not args.compromise:
        return None
    if args.compromised_version:
        return str(args.compromised_version).strip().lower()
    seen = runtime.keyvault(vault).current(args.name)
    return seen.version if seen else None


@contextmanager
def said_if_interrupted(dry_run: bool, what: str, see: str) -> Iterator[None]:
    """Ctrl-C half-way through a renewal still exits 130, with one line on what it may have left: Key Vault's
    pending operation (a new version waiting for its certificate), which the next sweep takes over."""
    try:
        yield
    except KeyboardInterrupt:
        if dry_run:
            print(f"certlc: {what} interrupted (dry run: nothing was changed)", file=sys.stderr)
        else:
            print(
                f"certlc: {what} interrupted: a certificate may be left with a pending operation in Key Vault, "
                f"which the next sweep takes over; see it with `{see}`",
                file=sys.stderr,
            )
        raise


def audit_intervention(runtime: Any, request: RenewalRequest) -> None:
    """``--force`` and ``--compromise`` overrule the renewal's own decision, so they are the operator's action,
    audited under the renewal's correlation id: its first step, and its trigger time."""
    from certlc.commands.operator import Target, current_operator, operator_audit, record_action

    action = "renew_compromise" if request.trigger == "compromise" else "renew_force"
    target = Target(request.vault, request.name)
    audit = operator_audit(runtime.env, runtime.clock)
    record_action(
        audit, action, [target], current_operator(), correlation_id=request.correlation_id, trigger=request.trigger
    )


def renew_one(runtime: Any, request: RenewalRequest, dry_run: bool) -> Outcome:
    """One request through the workflow; a dry run also checks what the real run would check before it submits."""
    result = runtime.workflow.handle(request)
    status, reason, message = result.status, result.reason, result.message
    if dry_run and reason == "dry_run":
        status, reason, message = _check_issuer(runtime, request, message)
    return Outcome(request.vault, request.name, status, reason, message, result.new_version, result.retry_in_seconds)


def queue_one(runtime: Any, request: RenewalRequest, dry_run: bool) -> Outcome:
    """The request to the renewal queue, for whichever instance or worker takes it (nothing in a dry run)."""
    if dry_run:
        return Outcome(request.vault, request.name, "skipped", "dry_run", "would queue its renewal")
    runtime.renewals.send(request)
    return Outcome(request.vault, request.name, "queued", request.trigger, "an instance renews it at Key Vault's pace")


def forced_requests(runtime: Any, vaults: dict[str, Any]) -> tuple[list[RenewalRequest], list[Outcome]]:
    """Every certificate certlc manages, whatever its dates: a forced request per certificate the one decision
    would renew now, pinned to its current version; the others are reported with the decision's reason (not
    managed, opted out, disabled ...)."""
    from renewal.decide import Input, decide, facts_of

    requests: list[RenewalRequest] = []
    left: list[Outcome] = []
    now = runtime.clock()
    for vault in vaults.values():
        kv = runtime.keyvault(vault)
        for summary in kv.list():
            cert = kv.current(summary.name)
            if cert is None:
                continue
            request = RenewalRequest(vault.name, cert.name, "manual", version=cert.version, force=True)
            facts = facts_of(cert, runtime.settings.canary)
            verdict = decide(Input(request, runtime.settings.vaults, facts, now, runtime.settings.window))
            if verdict.outcome == "renew":
                requests.append(request)
            else:
                left.append(_left(f"{vault.name}/{cert.name}", "skipped", str(verdict.reason), verdict.message))
    return requests, left


def swept_requests(runtime: Any, vaults: dict[str, Any], dry_run: bool) -> tuple[list[RenewalRequest], list[Outcome]]:
    """The sweep's decision (``renewal.sweep``), to act on here instead of through the queue: each request it
    would queue (trigger ``sweep``, or ``canary`` for a canary's scheduled renewal). What the sweep leaves is
    reported with its reason. The sweep's daily expiry warnings go out as the sweep would send them (never in a dry
    run, whose vault writes are no-ops)."""
    from renewal.sweep import sweep

    queued: list[RenewalRequest] = []
    warn = (lambda *args, **kwargs: None) if dry_run else runtime.reporter.expiring
    report = sweep(
        vaults,
        runtime.keyvault,
        queued.append,
        warn,
        runtime.settings.window,
        runtime.clock(),
        runtime.workflow.ledger,
        runtime.settings.canary,
        ca_for=runtime.workflow.ca_for,
    )
    outcomes: list[Outcome] = []
    for key in report.in_flight:
        outcomes.append(_left(key, "skipped", "in_flight", "a renewal is already in flight"))
    for key, reason in report.skipped.items():
        if reason == FAILED_BEFORE:
            outcomes.append(_left(key, "failed", reason, "its last renewal failed; fix it, then `certlc failed retry`"))
        else:
            outcomes.append(_left(key, "skipped", reason, "nothing to do"))
    for key, error in report.errors.items():
        outcomes.append(_left(key, "failed", "error", error))
    return queued, outcomes


def _left(key: str, status: str, reason: str, message: str) -> Outcome:
    vault, _, name = key.partition("/")
    return Outcome(vault, name, status, reason, message)


def _report_all(outcomes: list[Outcome], output: str, dry_run: bool) -> int:
    counts = Counter(o.counted_as for o in outcomes if o.acted_on)
    failed = any(exit_code(o.status, o.reason) for o in outcomes)
    if output == "json":
        idle = len(outcomes) - counts.total()
        body = {"certificates": [asdict(o) for o in outcomes], "counts": {**counts, "nothing_to_do": idle}}
        print(json.dumps(body | {"dry_run": dry_run}, indent=2))
    else:
        for outcome in outcomes:
            if outcome.acted_on:
                print(outcome.line())
        summary = ", ".join(f"{status.replace('_', ' ')} {n}" for status, n in counts.items()) or "nothing was due"
        print(f"{'dry run: ' if dry_run else ''}{summary}; nothing to do for the other certificates")
    return 1 if failed else 0


def _check_issuer(runtime: Any, request: RenewalRequest, would: str) -> tuple[str, str, str]:
    """What a real run checks before it submits: the CA adapter the decision picks (a tag may name one), its
    profile, and that the CA answers (the doctor's read-only probe). A certificate the real run would fail
    fails the dry run with the same exit code, 1; an unknown ``CERTLC_CA`` is exit 2 before any of this."""
    from certlc.doctor.cas import check_ca
    from renewal.ca.base import CaConfigError
    from renewal.decide import Input, decide, facts_of

    vault = runtime.settings.vaults[request.vault.lower()]
    cert = runtime.keyvault(vault).current(request.name)
    facts = facts_of(cert, runtime.settings.canary) if cert else None
    verdict = decide(Input(request, runtime.settings.vaults, facts, runtime.clock(), runtime.settings.window))
    name = (verdict.ca or runtime.settings.window.default_ca).strip().lower()
    try:
        ca = runtime.workflow.ca_for(name)
    except CaConfigError as exc:
        return "failed", "ca_error", f"would fail: {exc}"
    profiles = getattr(ca, "profiles", None)
    if isinstance(profiles, dict) and verdict.profile and verdict.profile not in profiles:
        offered = ", ".join(sorted(profiles))
        return "failed", "ca_denied", f"would fail: CA {name!r} does not offer profile {verdict.profile!r} ({offered})"
    check = check_ca(name, runtime.env, CA_PROBE_TIMEOUT, now=runtime.clock())
    if not check.ok:
        detail = f"{check.detail}; fix: {check.fix}" if getattr(check, "fix", "") else check.detail
        return "failed", "ca_unavailable", f"would renew, but CA {name!r} does not answer: {detail}"
    return "skipped", "dry_run", f"{would}; CA {name!r} answers"


@dataclass(frozen=True)
class ChangeOutcome:
    """A change renewal's result: the renewal's outcome, what the policy had and what changed in it."""

    outcome: Outcome
    old: dict[str, Any]
    changed: dict[str, Any]
    policy_updated: bool = False


def read_change(path: str) -> PolicyChange:
    """The ``--policy`` file, parsed and checked (``renewal.policy_change``); any problem is a ``UserError``."""
    from certlc.cli import UserError
    from renewal.policy_change import PolicyFileError, change_from_json

    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the policy file {path}: {exc.strerror or exc}") from None
    try:
        return change_from_json(text)
    except PolicyFileError as exc:
        raise UserError(f"{path}: {exc}") from None


def change_renewal(runtime: Any, vault: Any, name: str, change: PolicyChange, dry_run: bool) -> ChangeOutcome:
    """``--policy``: gather the certificate, its renewal record and pending operation, and what its CA adapter's
    profile issues; decide (the usual decision for a forced renewal, then ``renewal.policy_change``); act only when
    all of it agrees: record the operator action, update the policy, renew through the usual path. Anything refused
    leaves Key Vault as it was."""
    from certlc.cli import UserError
    from renewal.ca.base import CaError
    from renewal.decide import Input, decide, facts_of
    from renewal.policy_change import (
        ca_limits,
        change_refused,
        changed_policy,
        describe,
        key_change_refused,
        old_values,
        under_way,
        what_changes,
    )

    request = RenewalRequest(vault.name, name, "manual", force=True)
    kv = runtime.keyvault(vault)
    cert = kv.current(name)
    record = runtime.workflow.ledger.peek(vault.name, name) if cert else None
    pending = kv.get_pending(name) if cert else None
    facts = facts_of(cert, runtime.settings.canary) if cert else None
    given = Input(request, runtime.settings.vaults, facts, runtime.clock(), runtime.settings.window, record=record)
    verdict = decide(given)

    def left(status: str, reason: str, why: str) -> ChangeOutcome:
        return ChangeOutcome(Outcome(vault.name, name, status, reason, f"{why}; its policy was not changed"), {}, {})

    if cert is None or verdict.outcome != "renew":
        return left("failed" if verdict.outcome == "fail" else "skipped", str(verdict.reason), verdict.message)
    if waiting := under_way(pending):
        return left("failed", "pending_operation", waiting)
    real = what_changes(cert.policy, change)
    if not real.given():
        raise UserError(
            f"the policy file changes nothing: {vault.name}/{name}'s policy already has those values "
            f"(`certlc renew {name} --force` renews it as it is)"
        )
    old = old_values(cert.policy, real)
    summary = describe(old, real)
    ca_name = verdict.ca or runtime.settings.window.default_ca
    try:
        limits = ca_limits(ca_name, runtime.workflow.ca_for(ca_name), verdict.profile or "")
    except CaError as exc:
        return left("failed", "ca_unavailable", f"could not learn what CA {ca_name!r} issues: {exc}")
    refused = key_change_refused(cert.policy, real) or change_refused(real, limits)
    if refused:
        return left("failed", "policy_refused", refused)
    request = RenewalRequest(vault.name, name, "manual", version=cert.version, force=True)
    if dry_run:
        rehearsed = renew_one(runtime, request, True)
        said = f"would change its policy ({summary}), then: {rehearsed.message}"
        return ChangeOutcome(_with_message(rehearsed, said), old, real.given())
    _audit_change(runtime, request, summary, old, real.given())
    kv.update_policy(name, changed_policy(cert.policy, real))
    renewed = renew_one(runtime, request, False)
    said = f"policy changed ({summary}); {renewed.message}"
    return ChangeOutcome(_with_message(renewed, said), old, real.given(), policy_updated=True)


def _with_message(outcome: Outcome, message: str) -> Outcome:
    from dataclasses import replace

    return replace(outcome, message=message)


def _audit_change(runtime: Any, request: RenewalRequest, summary: str, old: dict, changed: dict) -> None:
    """The change is the operator's, audited as ``renew_policy`` under the renewal's correlation id with what it
    changed and the values it replaced (enough to undo it). The form's ``key`` is ``key_type`` here: the audit
    trail redacts any field named ``key``."""
    from certlc.commands.operator import Target, current_operator, operator_audit, record_action

    def named(values: dict) -> dict:
        return {("key_type" if k == "key" else k): list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    record_action(
        operator_audit(runtime.env, runtime.clock),
        "renew_policy",
        [Target(request.vault, request.name)],
        current_operator(),
        correlation_id=request.correlation_id,
        trigger=request.trigger,
        detail=f"policy change: {summary}",
        changed=named(changed),
        old=named(old),
    )


def _report_change(result: ChangeOutcome, args: argparse.Namespace) -> int:
    """One line, or ``-o json`` with the change (``policy_change``: each field's old and new value). Exit 0 only
    when the change was made and renewed, or a dry run would make it."""
    outcome = result.outcome
    if args.output == "json":
        body = {k: v for k, v in asdict(outcome).items() if k not in ("vault", "name")}
        change = {k: {"old": _plain(result.old.get(k)), "new": _plain(v)} for k, v in result.changed.items()}
        print(
            json.dumps(
                body | {"policy_change": change, "policy_updated": result.policy_updated, "dry_run": args.dry_run}
            )
        )
    else:
        print(outcome.line())
    applied = outcome.status == "renewed" or (args.dry_run and outcome.reason == "dry_run")
    return 0 if applied else 1


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
