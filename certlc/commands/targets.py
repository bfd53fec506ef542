"""``certlc targets [NAME]``: where each certificate is used, and what each place serves now.

Gather the certificates with targets (declared by the ``certlc-endpoints`` tag or ``CERTLC_ENDPOINTS``, and found in
Azure when ``CERTLC_TARGET_SUBSCRIPTIONS`` names subscriptions), probe each host with a TLS handshake (SNI), decide
with ``renewal.targets.decide`` as the sweep's check does, and print. Read-only: nothing is moved, retired, alerted
or remembered. ``--no-probe`` shows what the sweep's last check saw instead.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from renewal.clock import iso_utc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="one certificate (default: every certificate with targets)")
    parser.add_argument("--vault", help="the vault (default: every vault in CERTLC_VAULTS)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--no-probe", action="store_true", help="show what the last checks saw, without a handshake")
    what.add_argument(
        "--check",
        action="store_true",
        help="run the check the sweep runs (remember, alert, move, retire) for this machine's endpoints: "
        "CERTLC_PROBER_NAME names it in CERTLC_PROBER; schedule it where only this machine reaches them",
    )


@dataclass(frozen=True)
class Row:
    vault: str
    name: str
    target: str
    kind: str
    hosts: str
    pickup: str
    served: str
    reason: str
    since: datetime | None
    note: str

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "since": iso_utc(self.since) if self.since else None}


def run(args: argparse.Namespace) -> int:
    """Exit 0 when listed (also when no certificate has a target); 1 when a service does not answer; 2 for a vault
    not in ``CERTLC_VAULTS``."""
    from certlc.cli import NotFound
    from certlc.commands.common import checked_runtime, chosen_vault
    from renewal.ledger import lock_container
    from renewal.targets.probe import probe_all
    from renewal.targets.run import gather, probed_states
    from renewal.targets.store import TargetStore
    from renewal.targets.wiring import discovered_targets, probe_limits, target_settings_from_env, targets_finder

    if args.check:
        return _check(args)
    runtime = checked_runtime(args.env, dry_run=True)
    env = runtime.env
    vaults = runtime.settings.vaults
    if args.vault or (args.name and len(vaults) > 1):
        chosen = chosen_vault(vaults, args.vault)
        vaults = {chosen.name.lower(): chosen}
    store = TargetStore(lock_container(env))
    rows: list[Row] = []
    problems: list[str] = []
    if args.no_probe:
        for vault in vaults.values():
            before = store.load_all(vault.name)
            for name, seen in sorted(before.seen.items()):
                if args.name is None or name == args.name.lower():
                    rows += [Row(vault.name, name, s.name, s.kind, ",".join(s.hosts), s.pickup, s.served, s.reason,
                                 s.since, s.message) for s in seen]  # fmt: skip
    else:
        settings = target_settings_from_env(env, runtime.settings.window.escalate_within)
        discovered, problems = discovered_targets(env, runtime.settings.vaults)
        targets_of = targets_finder(env, discovered)
        limits = probe_limits(env)
        prober = partial(
            probe_all, timeout=limits["timeout"], workers=int(limits["workers"]), deadline=limits["deadline"]
        )
        now = runtime.clock()
        for vault in vaults.values():
            kv = runtime.keyvault(vault)
            work = gather(kv, vault, targets_of, problems, only=args.name)
            before = store.load(vault.name)
            for item, states in zip(work, probed_states(work, prober, before, now, settings), strict=True):
                rows += [_row(vault.name, item.cert.name, s) for s in states]
    if args.name and not rows and not problems:
        raise NotFound(
            f"certificate {args.name!r} has no target: tag it certlc-endpoints=host[:port], list it in "
            "CERTLC_ENDPOINTS, or name the subscriptions of the Azure services using it in CERTLC_TARGET_SUBSCRIPTIONS"
        )
    print(_json(rows, problems) if args.output == "json" else _table(rows, problems))
    return 0


def _check(args: argparse.Namespace) -> int:
    """The sweep's target check, here: for an on-premises prober, the endpoints only it reaches. Exit 0 when every
    target of its own serves the current version; 1 when one does not or something could not be checked."""
    from certlc.commands.common import checked_runtime
    from renewal.targets.wiring import run_target_check

    runtime = checked_runtime(args.env)
    report = run_target_check(runtime, runtime.clock())
    body = {
        "certificates": report.certificates,
        "targets": report.targets,
        "serving_current": report.serving_current,
        "moved": report.updated,
        "alerts": report.alerts,
        "retired": report.retired,
        "problems": report.problems,
    }
    if args.output == "json":
        print(json.dumps(body, indent=2))
    else:
        moved, alerts, retired = len(report.updated), len(report.alerts), len(report.retired)
        print(
            f"{report.serving_current} of {report.targets} targets of {report.certificates} certificates serve the "
            f"current version; {moved} moved, {alerts} alerts, {retired} retired"
        )
        for problem in report.problems:
            print(f"problem: {problem}")
    return 1 if report.problems or report.serving_current < report.targets else 0


def _row(vault: str, name: str, state: Any) -> Row:
    t = state.target
    return Row(vault, name, t.name, t.kind, ",".join(t.hosts), t.pickup, state.served, str(state.reason),
               state.since, state.message)  # fmt: skip


def _json(rows: list[Row], problems: list[str]) -> str:
    return json.dumps({"targets": [r.as_dict() for r in rows], "problems": problems}, indent=2)


def _table(rows: list[Row], problems: list[str]) -> str:
    head = ("VAULT", "NAME", "TARGET", "KIND", "PICKUP", "SERVED", "SINCE (UTC)", "NOTE")
    body = [
        (r.vault, r.name, r.target, r.kind, r.pickup, r.served, f"{r.since:%Y-%m-%d %H:%M}" if r.since else "-", r.note)
        for r in rows
    ]
    widths = [max(len(str(c)) for c in column) for column in zip(head, *body, strict=False)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in (head, *body)]
    if not rows:
        lines = ["no certificate has a target (tag certlc-endpoints, CERTLC_ENDPOINTS, CERTLC_TARGET_SUBSCRIPTIONS)"]
    return "\n".join(lines + [f"problem: {p}" for p in problems])
