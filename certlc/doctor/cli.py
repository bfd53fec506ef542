"""``certlc doctor``: read-only checks of a deployment, one line per check with its fix; exit 0 only when all pass.

Exit codes: 0 every check passed; 1 a check failed; 2 the settings cannot be used at all (e.g. no
``CERTLC_VAULTS``) or a usage mistake. ``--timeout`` (or ``CERTLC_DOCTOR_TIMEOUT``) bounds every network call.
"""

from __future__ import annotations

import argparse
import logging

from certlc.doctor.run import DEFAULT_TIMEOUT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``-o table|json`` and ``-v`` (each check's target and time too) are certlc's global options."""
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"deadline of each network call (default CERTLC_DOCTOR_TIMEOUT, else {DEFAULT_TIMEOUT:g})",
    )


def timeout_from(args: argparse.Namespace) -> float:
    from certlc.cli import UserError

    raw = args.timeout if args.timeout is not None else (args.env.get("CERTLC_DOCTOR_TIMEOUT") or DEFAULT_TIMEOUT)
    try:
        timeout = float(raw)
    except ValueError:
        raise UserError(f"CERTLC_DOCTOR_TIMEOUT={raw!r} is not a number of seconds") from None
    if not 0 < timeout <= 120:
        raise UserError(f"the timeout must be more than 0 and at most 120 seconds, not {timeout:g}")
    return timeout


def run(args: argparse.Namespace) -> int:
    from certlc.doctor.report import as_json, exit_code, table
    from certlc.doctor.run import guard_seconds, plan, run_checks

    timeout = timeout_from(args)
    checks = plan(args.env, timeout)  # a ConfigError here is exit 2, as for every certlc command
    azure_logs = logging.getLogger("azure")
    level = azure_logs.level
    if not args.verbose:
        azure_logs.setLevel(logging.ERROR)  # the SDKs' warnings would repeat what the check lines say
    try:
        results = run_checks(checks, guard_seconds(timeout))
    finally:
        azure_logs.setLevel(level)
    print(as_json(results) if args.output == "json" else table(results, verbose=args.verbose))
    return exit_code(results)
