"""``certlc doctor``: read-only checks of a deployment, one line per check with its fix; exit 0 only when all pass.

Exit codes: 0 every check passed; 1 a check failed; 2 the settings cannot be used at all (e.g. no
``CERTLC_VAULTS``) or a usage mistake (an ``--app`` that is not a Function App's resource id). ``--timeout`` (or
``CERTLC_DOCTOR_TIMEOUT``) bounds every network call.
"""

from __future__ import annotations

import argparse
import logging

from certlc.doctor.run import DEFAULT_TIMEOUT, Check

MAX_TIMEOUT = 120.0  # the whole doctor run stays a few minutes at most


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``-o table|json`` and ``-v`` (each check's target and time too) are certlc's global options."""
    parser.add_argument(
        "--timeout",
        default=None,
        metavar="SECONDS",
        help=f"deadline of each network call (default CERTLC_DOCTOR_TIMEOUT, else {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--app",
        default=None,
        metavar="RESOURCE_ID",
        help="the Function App's resource id (default CERTLC_FUNCTION_APP_ID): also check through Azure Resource "
        "Manager that its functions are indexed and its Key Vault references resolve",
    )


def timeout_from(args: argparse.Namespace) -> float:
    """``--timeout``, else ``CERTLC_DOCTOR_TIMEOUT``, else the default; a bad value names where it came from."""
    from renewal.setting_values import number_setting

    given = {"--timeout": args.timeout} if args.timeout is not None else args.env
    key = "--timeout" if args.timeout is not None else "CERTLC_DOCTOR_TIMEOUT"
    return number_setting(given, key, DEFAULT_TIMEOUT, low=0, high=MAX_TIMEOUT, above_low=True, unit="seconds")


def checks_for(args: argparse.Namespace, timeout: float) -> list[Check]:
    """``plan``'s checks, with ``--app`` as the app's resource id when given (it wins over the setting, as --timeout
    does). ``--app`` where the app's settings are not at hand (no ``CERTLC_VAULTS``: the shell that deploys it, on a
    fresh clone) checks the app alone, so the wait between the template's two passes works there."""
    from certlc.doctor.deployment import APP_SETTING, deployment_checks, parse_app_id
    from certlc.doctor.run import plan

    if args.app is None:
        return plan(args.env, timeout)
    env = {**args.env, APP_SETTING: parse_app_id(args.app, "--app").id}
    if not (env.get("CERTLC_VAULTS") or "").strip():
        return deployment_checks(env, timeout)
    return plan(env, timeout)


def run(args: argparse.Namespace) -> int:
    from certlc.doctor.report import as_json, exit_code, table
    from certlc.doctor.run import guard_seconds, run_checks

    timeout = timeout_from(args)
    checks = checks_for(args, timeout)  # a ConfigError here is exit 2, as for every certlc command
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
