"""The ``certlc`` command: operate renewals, run the local stack and the emulators.

Each subcommand's module is imported only when it runs, so ``certlc --help`` is instant.
Settings come from the environment, overlaid on a Functions ``local.settings.json``
(``--settings``; by default ``./local.settings.json``, else the one ``certlc local up`` wrote).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

LOCAL_STACK_SETTINGS = Path(".local/stack/local.settings.json")


class UserError(Exception):
    """A mistake the user can fix; printed as one line, exit code 2."""


def load_settings(path: str | None) -> dict[str, str]:
    """Environment overlaid on a local.settings.json ``Values`` map (the environment wins)."""
    candidates = [Path(path)] if path else [Path("local.settings.json"), LOCAL_STACK_SETTINGS]
    values: dict[str, str] = {}
    for candidate in candidates:
        if candidate.is_file():
            try:
                values = {k: str(v) for k, v in json.loads(candidate.read_text())["Values"].items()}
            except (ValueError, KeyError, AttributeError) as exc:
                raise UserError(f"{candidate} is not a Functions local.settings.json with a Values map: {exc}") from exc
            break
        if path:
            raise UserError(f"settings file {path} does not exist")
    return values | dict(os.environ)


def _delegate(target: str) -> Callable[[argparse.Namespace], int]:
    module, _, function = target.partition(":")

    def run(args: argparse.Namespace) -> int:
        return int(getattr(importlib.import_module(module), function or "run")(args) or 0)

    return run


def _add_arguments(target: str, parser: argparse.ArgumentParser) -> None:
    module, _, function = target.partition(":")
    adder = "add_" + function.removeprefix("run_") + "_arguments" if function else "add_arguments"
    getattr(importlib.import_module(module), adder)(parser)


# (name, help, "module" with add_arguments/run, or "module:run_x" with add_x_arguments/run_x)
DELEGATED = [
    ("demo", "run the whole pipeline on the local stack and print a summary", "certlc.demo"),
    ("renew", "renew one certificate now (in this process)", "certlc.commands.renew"),
    ("sweep", "find due certificates nothing is renewing and queue them", "certlc.commands.sweep"),
    ("failed", "list or re-drive permanently failed and poison renewals", "certlc.commands.failed"),
    ("ingest", "snapshot certificate status to Log Analytics (or the local emulator)", "certlc.commands.ingest"),
    ("status", "show every certificate's status across the configured vaults", "certlc.dashboard.cli:run_status"),
    ("dashboard", "write the status dashboard as a self-contained HTML page", "certlc.dashboard.cli:run_dashboard"),
    ("dev", "run function_app.py's functions on a local Functions host", "certlc.localstack.host"),
    ("worker", "drain the Azure renewal queue on-premises (near an internal CA)", "certlc.localstack.worker"),
    ("local", "start or stop the whole local stack in the background", "certlc.localstack.stack"),
    ("sync", "keep a server's PEM files in step with Key Vault", "certlc.sync.cli"),
    ("doctor", "check a deployment read-only: vaults, queues, logs, CA (one line each)", "certlc.doctor.cli"),
]
EMULATORS = [
    ("keyvault", "the Key Vault emulator (HTTPS, bearer challenge, certificates API)", "certlc.emulators.keyvault.cli"),
    ("logs", "the Logs Ingestion API emulator", "certlc.emulators.logs.cli"),
]


def _command_word(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line, skipping the global option's value."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--settings":
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="certlc",
        description="Renews Azure Key Vault certificates issued by CAs Key Vault does not integrate with.",
    )
    parser.add_argument("--settings", help="a Functions local.settings.json whose Values are used as app settings")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = _command_word(argv)
    for name, help_text, module in DELEGATED:
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == wanted:  # only the chosen command's module is imported
            _add_arguments(module, p)
        p.set_defaults(handler=_delegate(module))
    emulator = sub.add_parser("emulator", help="run one of the local emulators in the foreground")
    emulators = emulator.add_subparsers(dest="emulator", metavar="NAME", required=True)
    for name, help_text, module in EMULATORS:
        p = emulators.add_parser(name, help=help_text, description=help_text)
        if wanted == "emulator":
            _add_arguments(module, p)
        p.set_defaults(handler=_delegate(module))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from renewal.errors import ConfigError

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    try:
        args.env = load_settings(args.settings)
        return args.handler(args)
    except (UserError, ConfigError) as exc:
        print(f"certlc: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
