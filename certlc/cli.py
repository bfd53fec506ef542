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
        body = _settings_body(candidate)
        if body is None:
            if path:
                raise UserError(f"settings file {path} does not exist")
            continue
        values = {k: str(v) for k, v in _values_map(candidate, body).items()}
        if refuse_stopped_stack and _stack_stopped(candidate, body):
            raise StackNotRunning(STACK_NOT_RUNNING)
        if refuse_stopped_stack and (unfilled := unfilled_settings(candidate, values)):
            raise UserError(unfilled)
        break
    return values | dict(os.environ)


def _settings_body(candidate: Path) -> Any:
    """The settings file's JSON, or None when there is none; a file that is there but cannot be read or parsed (a
    folder, no read permission, an unreadable folder on the way, not JSON) is the user's to fix, in one line."""
    try:
        text = candidate.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise UserError(f"settings file {candidate} is a folder: name the local.settings.json in it") from None
    except OSError as exc:
        raise UserError(f"cannot read the settings file {candidate}: {exc.strerror or exc}") from None
    except ValueError:
        raise UserError(f"{candidate} is not a Functions local.settings.json: not UTF-8 text") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UserError(f"{candidate} is not a Functions local.settings.json: not JSON ({exc})") from None


def _values_map(candidate: Path, body: Any) -> dict[str, Any]:
    values = body.get("Values") if isinstance(body, dict) else None
    if not isinstance(values, dict):
        raise UserError(
            f'{candidate} is not a Functions local.settings.json: it needs a "Values" object of app settings, '
            '{"Values": {"NAME": "value", ...}}'
        )
    return values


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


# (name, help, "module" with add_arguments/run, or "module:run_x" with add_x_arguments/run_x, examples for its
# --help), in the order a newcomer meets them: try it locally, look, act, then operate a deployment
DELEGATED = [
    (
        "demo",
        "run the whole pipeline on the local stack and print a summary",
        "certlc.demo",
        ["certlc demo", "certlc demo --ca acme"],
    ),
    (
        "local",
        "start the local stack in the background, add certificates to its vault, stop it",
        "certlc.commands.local",
        ["certlc local up", "certlc local add web --days 5", "certlc local down"],
    ),
    (
        "status",
        "show every certificate's status across the configured vaults, or one certificate's",
        "certlc.dashboard.cli:run_status",
        ["certlc status", "certlc status shop-expiring", "certlc status --summary --days 7"],
    ),
    (
        "targets",
        "list where each certificate is used and what each place serves (TLS probe)",
        "certlc.commands.targets",
        ["certlc targets", "certlc targets shop-expiring --vault kv1", "certlc targets --no-probe -o json"],
    ),
    (
        "renew",
        "renew a certificate now, or every one that is due (--all), in this process",
        "certlc.commands.renew",
        ["certlc renew shop-expiring --dry-run", "certlc renew shop-expiring --force", "certlc renew --all"],
    ),
    (
        "revoke",
        "revoke a version nobody should trust any more at its CA (not the current one, nor one still served)",
        "certlc.commands.revoke",
        [
            "certlc revoke shop-expiring --version 0123abcd --reason superseded",
            "certlc revoke shop-expiring --version 0123abcd --reason key-compromise --dry-run",
        ],
    ),
    (
        "issue",
        "create a new certificate in Key Vault and have a CA sign it, through the renewal pipeline",
        "certlc.commands.issue",
        [
            "certlc issue shop-new --dns shop.example.com,www.shop.example.com --ca local --profile server --dry-run",
            "certlc issue api-new --dns api.example.com --ca acme --key EC-P256",
        ],
    ),
    (
        "adopt",
        "put an existing Key Vault certificate under certlc, renewed from now on through a CA adapter and profile",
        "certlc.commands.adopt",
        [
            "certlc adopt portal-selfsigned --ca local --profile server --dry-run",
            "certlc adopt portal-selfsigned --ca adcs --profile WebServer",
        ],
    ),
    (
        "sweep",
        "find due certificates nothing is renewing and queue them",
        "certlc.commands.sweep",
        ["certlc sweep", "certlc sweep -o json"],
    ),
    (
        "failed",
        "list or re-drive permanently failed and poison renewals",
        "certlc.commands.failed",
        ["certlc failed list", "certlc failed retry --all", "certlc failed purge --yes"],
    ),
    (
        "ingest",
        "snapshot certificate status to Log Analytics (or the local emulator)",
        "certlc.commands.ingest",
        ["certlc ingest", "certlc ingest -o json"],
    ),
    (
        "dashboard",
        "take a status snapshot and write the dashboard as a self-contained HTML page",
        "certlc.dashboard.cli:run_dashboard",
        ["certlc dashboard", "certlc dashboard --no-ingest", "certlc dashboard --out status.html"],
    ),
    (
        "doctor",
        "check a deployment read-only, one line per part (vaults, queues, CAs, the app)",
        "certlc.doctor.cli",
        ["certlc doctor", "certlc doctor --settings prod.settings.json --timeout 10"],
    ),
    (
        "sync",
        "keep a server's PEM files in step with Key Vault",
        "certlc.sync.cli",
        [
            "certlc sync --vault contoso-kv --name www --cert /etc/nginx/tls/www.pem --key /etc/nginx/tls/www.key \\\n"
            '      --reload "nginx -s reload" --verify 127.0.0.1:443 --daemon'
        ],
    ),
    (
        "worker",
        "drain the Azure renewal queue on-premises (near an internal CA)",
        "certlc.host.worker",
        ["certlc worker", "certlc worker --drain --timeout 600"],
    ),
    (
        "dev",
        "run function_app.py's functions on a local Functions host",
        "certlc.host.host",
        ["certlc dev", "certlc dev --port 7072 --no-timers"],
    ),
]
EMULATOR_HELP = (
    "run one of the local emulators in the foreground",
    ["certlc emulator keyvault", "certlc emulator logs"],
)
EMULATORS = [
    (
        "keyvault",
        "the Key Vault emulator (HTTPS, bearer challenge, certificates API)",
        "localazure.emulators.keyvault.cli",
        ["certlc emulator keyvault", "certlc emulator keyvault --vault kv1 --vault kv2 --json"],
    ),
    (
        "logs",
        "the Logs Ingestion API emulator",
        "localazure.emulators.logs.cli",
        ["certlc emulator logs", "certlc emulator logs --port 8443"],
    ),
]
# What prints text only (a path, one line per entry): -o json there is refused rather than silently ignored.
TEXT_ONLY = {"dashboard", "local add", "failed retry", "failed remove"}


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


def _subcommand(
    sub: Any, name: str, help_text: str, examples: list[str], module: str | None = None
) -> argparse.ArgumentParser:
    """A command's parser; with ``module``, its own arguments too (only the command that runs imports its module)."""
    p = sub.add_parser(
        name,
        help=help_text,
        description=help_text,
        formatter_class=argparse.RawDescriptionHelpFormatter,  # the examples keep their lines
        parents=[global_options()],
        conflict_handler="resolve",
    )
    if module:
        _add_arguments(module, p)
    p.epilog = examples_epilog(examples, p.epilog)  # after the epilog the command may set itself (sync's)
    return p


def examples_epilog(examples: list[str], before: str | None = None) -> str:
    """The "examples:" section every command's ``--help`` ends with, so a newcomer sees how it is used."""
    section = "examples:\n" + "\n".join(f"  {example}" for example in examples)
    return f"{before}\n\n{section}" if before else section


class _Version(argparse.Action):
    """``--version``: one line of text, so ``-o json`` beside it is refused (exit 2) rather than ignored."""

    def __init__(self, option_strings: Sequence[str], dest: str, argv: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)
        self.argv = argv

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option: Any = None) -> None:
        given, _ = global_options().parse_known_args(self.argv)
        if getattr(given, "output", "table") == "json":
            parser.exit(2, "certlc: --version prints one line of text: leave out -o json\n")
        print(f"certlc {version()}")
        parser.exit(0)


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="certlc",
        description="Renews Azure Key Vault certificates issued by CAs Key Vault does not integrate with.",
        epilog=examples_epilog(["certlc local up", "certlc status", "certlc renew shop-expiring --dry-run"]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[global_options()],
    )
    parser.add_argument("--version", action=_Version, argv=argv, help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = _command_word(argv)
    for name, help_text, module, examples in DELEGATED:
        p = _subcommand(sub, name, help_text, examples, module if name == wanted else None)
        p.set_defaults(handler=_delegate(module))
    emulator = _subcommand(sub, "emulator", *EMULATOR_HELP)
    emulators = emulator.add_subparsers(dest="emulator", metavar="NAME", required=True)
    for name, help_text, module, examples in EMULATORS:
        p = _subcommand(emulators, name, help_text, examples, module if wanted == "emulator" else None)
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
    """Exit 0 done or nothing to do, 1 the work failed or is not finished, 2 a usage or configuration mistake,
    130 interrupted."""
    try:
        code = _run(list(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()  # here, so that a reader gone early is handled below and not at exit
        return code
    except BrokenPipeError:  # `certlc status | head -2`: the reader has what it wanted (the Python docs' recipe)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the flush at exit does not fail again
        return 1
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
        if args.output == "json" and (command := _command_path(args)) in TEXT_ONLY:
            raise UserError(f"-o json does not apply to {command}: it prints text only")
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


def _command_path(args: argparse.Namespace) -> str:
    """The command with its action, when it has one: ``failed retry``, ``local add``."""
    return " ".join(filter(None, (args.command, getattr(args, "action", None))))


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


if __name__ == "__main__":
    sys.exit(main())
