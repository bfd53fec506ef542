"""The ``certlc`` command: operate renewals, run the Functions-compatible host, the local stack and the emulators.

Each subcommand's module is imported only when it runs, so ``certlc --help`` is instant, and a server that installed
certlc alone runs ``worker``, ``sync`` and ``doctor`` without the Azure stand-ins (``localazure``): ``local``,
``emulator`` and ``demo`` need them, and say how to install them when they are missing.
Settings come from the environment, overlaid on a Functions ``local.settings.json``
(``--settings``; by default ``./local.settings.json``, else the one ``certlc local up`` wrote).
The global options (``--settings``, ``-o``, ``-v``, ``--debug``) go before or after the command, as in ``az``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

STACK_STATE_KEY = "CertlcLocalStack"  # "stopped" in a local stack's settings file once the stack is down
STACK_NOT_RUNNING = "the local stack is not running: run certlc local up"
NO_SETTINGS_NEEDED = {"local", "emulator", "demo", "dashboard"}  # they never read the app settings
ONE_SHOT = {
    "renew",
    "sweep",
    "failed",
    "status",
    "targets",
    "ingest",
    "dashboard",
}  # print their outcome; logs add one line
OUTPUTS = ("table", "json")
GLOBAL_DEFAULTS: dict[str, Any] = {"settings": None, "verbose": False, "debug": False, "output": "table"}
VALUE_OPTIONS = {"--settings", "-o", "--output"}  # global options that take a value
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
LOCALAZURE_MISSING = (
    "the local stack and the emulators are not installed: pip install -e localazure (from the repository)"
)


class UserError(Exception):
    """A mistake the user can fix; printed as one line, exit code 2."""


class StackNotRunning(Exception):
    """The settings are a local stack's and that stack is down; one line, exit code 1."""


class NotFound(Exception):
    """The certificate (or other thing) named on the command line does not exist; one line, exit code 1."""


def load_settings(path: str | None, *, refuse_stopped_stack: bool = True) -> dict[str, str]:
    """Environment overlaid on a local.settings.json ``Values`` map (the environment wins).

    The settings file of a local stack that is down (marked by ``certlc local down``, or beside a
    ``stack.json`` whose process is gone) is refused: its ports are dead; so is a copy of the sample whose
    ``<from certlc local up>`` values were never filled in. The stack's own file is found from any folder."""
    from certlc.stack_files import STACK_SETTINGS, unfilled_settings

    candidates = [Path(path)] if path else [Path("local.settings.json"), STACK_SETTINGS]
    values: dict[str, str] = {}
    for candidate in candidates:
        if candidate.is_file():
            try:
                body = json.loads(candidate.read_text())
                values = {k: str(v) for k, v in body["Values"].items()}
            except (ValueError, KeyError, AttributeError, TypeError) as exc:
                raise UserError(f"{candidate} is not a Functions local.settings.json with a Values map: {exc}") from exc
            if refuse_stopped_stack and _stack_stopped(candidate, body):
                raise StackNotRunning(STACK_NOT_RUNNING)
            if refuse_stopped_stack and (unfilled := unfilled_settings(candidate, values)):
                raise UserError(unfilled)
            break
        if path:
            raise UserError(f"settings file {path} does not exist")
    return values | dict(os.environ)


def _stack_stopped(settings_file: Path, body: dict) -> bool:
    if body.get(STACK_STATE_KEY) == "stopped":
        return True
    info = settings_file.parent / "stack.json"
    if not info.is_file():
        return False
    from certlc.stack_files import stack_process_alive

    return not stack_process_alive(info)


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
    (
        "targets",
        "list where each certificate is used and what each place serves (TLS probe)",
        "certlc.commands.targets",
    ),
    ("dashboard", "write the status dashboard as a self-contained HTML page", "certlc.dashboard.cli:run_dashboard"),
    ("dev", "run function_app.py's functions on a local Functions host", "certlc.host.host"),
    ("worker", "drain the Azure renewal queue on-premises (near an internal CA)", "certlc.host.worker"),
    ("local", "start or stop the whole local stack in the background", "localazure.stack"),
    ("sync", "keep a server's PEM files in step with Key Vault", "certlc.sync.cli"),
    ("doctor", "check a deployment read-only, one line per part (vaults, queues, CAs, the app)", "certlc.doctor.cli"),
]
EMULATORS = [
    (
        "keyvault",
        "the Key Vault emulator (HTTPS, bearer challenge, certificates API)",
        "localazure.emulators.keyvault.cli",
    ),
    ("logs", "the Logs Ingestion API emulator", "localazure.emulators.logs.cli"),
]


def _command_word(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line, skipping the global options' values."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in VALUE_OPTIONS:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def global_options() -> argparse.ArgumentParser:
    """The options every command takes, as a parent parser: given to the top-level parser and to every
    subcommand's, so they may come before or after the command. Their defaults are SUPPRESS, so a subcommand's
    parser never overwrites a value given before the command; ``main`` fills in the defaults after parsing.

    A new parser each time: a command that defines one of these options itself (``certlc demo --json``) replaces
    it in its own parser (``conflict_handler="resolve"``), which must not change the other parsers."""
    common = argparse.ArgumentParser(add_help=False)
    suppress = argparse.SUPPRESS
    common.add_argument(
        "--settings", default=suppress, help="a Functions local.settings.json whose Values are used as app settings"
    )
    common.add_argument("-o", "--output", choices=OUTPUTS, default=suppress, help="output format (default table)")
    common.add_argument("--json", dest="output", action="store_const", const="json", default=suppress, help="-o json")
    common.add_argument("-v", "--verbose", action="store_true", default=suppress, help="also log certlc's progress")
    common.add_argument(
        "--debug", action="store_true", default=suppress, help="log everything, with the SDKs' HTTP requests"
    )
    return common


def version() -> str:
    """The installed package's version; from a source tree that is not installed, pyproject.toml's."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("certlc")
    except PackageNotFoundError:
        import tomllib

        try:
            return str(tomllib.loads(PYPROJECT.read_text())["project"]["version"])
        except (OSError, KeyError, ValueError):
            return "unknown"


def _subcommand(sub: Any, name: str, help_text: str, **kwargs: Any) -> argparse.ArgumentParser:
    return sub.add_parser(
        name, help=help_text, description=help_text, parents=[global_options()], conflict_handler="resolve", **kwargs
    )


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="certlc",
        description="Renews Azure Key Vault certificates issued by CAs Key Vault does not integrate with.",
        parents=[global_options()],
    )
    parser.add_argument("--version", action="version", version=f"certlc {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = _command_word(argv)
    for name, help_text, module in DELEGATED:
        p = _subcommand(sub, name, help_text)
        if name == wanted:  # only the chosen command's module is imported
            _add_arguments(module, p)
        p.set_defaults(handler=_delegate(module))
    emulator = _subcommand(sub, "emulator", "run one of the local emulators in the foreground")
    emulators = emulator.add_subparsers(dest="emulator", metavar="NAME", required=True)
    for name, help_text, module in EMULATORS:
        p = _subcommand(emulators, name, help_text)
        if wanted == "emulator":
            _add_arguments(module, p)
        p.set_defaults(handler=_delegate(module))
    return parser


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The command line, with the global options' defaults where they were not given."""
    args = build_parser(argv).parse_args(argv)
    for key, value in GLOBAL_DEFAULTS.items():
        if not hasattr(args, key):
            setattr(args, key, value)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 done or nothing to do, 1 the work failed or is not finished, 2 a usage or configuration mistake."""
    try:
        return _run(list(sys.argv[1:] if argv is None else argv))
    except ModuleNotFoundError as exc:  # local, emulator and demo import localazure, as they parse or as they run
        if (exc.name or "").partition(".")[0] != "localazure":
            raise
        print(f"certlc: {LOCALAZURE_MISSING}", file=sys.stderr)
        return 2


def _run(argv: list[str]) -> int:
    args = parse(argv)

    from azure.core.exceptions import AzureError

    from certlc.commands.common import Unreachable, command_logging
    from renewal.errors import ConfigError
    from renewal.keyvault import KeyVaultError

    command_logging(one_shot=args.command in ONE_SHOT, verbose=args.verbose, debug=args.debug)
    try:
        args.env = load_settings(args.settings, refuse_stopped_stack=args.command not in NO_SETTINGS_NEEDED)
        return args.handler(args)
    except (UserError, ConfigError) as exc:
        print(f"certlc: {_first_line(exc)}", file=sys.stderr)
        return 2
    except (StackNotRunning, Unreachable, NotFound, KeyVaultError) as exc:
        print(f"certlc: {_first_line(exc)}", file=sys.stderr)
        return 1
    except AzureError as exc:  # a service that stopped answering half-way: one line, never a traceback
        print(f"certlc: {type(exc).__name__}: {_first_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


if __name__ == "__main__":
    sys.exit(main())
