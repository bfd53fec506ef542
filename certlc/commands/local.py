"""``certlc local``: the local stack (``localazure.stack.LocalStack``) as a user runs it.

``certlc local up`` runs one in a background process (``certlc local serve``, hidden), seeds its vault with
``seeding.SAMPLES`` and ``certlc local down`` stops it; ``certlc local add`` puts one more certificate in. Its state
lives in the repository's ``.local/stack`` whatever the working directory, so every command finds it from anywhere.

The command line is certlc's, the stack localazure's: localazure never imports this module or ``certlc.cli``. It
imports localazure as it loads, so that ``certlc local`` without it says how to install it (``certlc.cli.main``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from localazure.ports import LOOPBACK, poll_until, port_open
from localazure.stack import LocalStack, certificate_client, emulated_now

from certlc.cli import STACK_NOT_RUNNING, STACK_STATE_KEY, StackNotRunning, UserError, global_options
from certlc.stack_files import DEFAULT_DIR, REPO_ROOT, pid_of, process_alive, stack_process_alive
from renewal.atomic import write_atomically
from renewal.signals import wait_for_signal

STARTUP_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0  # certlc local down: the stack stops its servers in a few seconds
MAX_DAYS = 3650  # certlc local add --days: ten years either way


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, help_text: str) -> argparse.ArgumentParser:  # -v, --settings after the action too
        return sub.add_parser(
            name, help=help_text, description=help_text, parents=[global_options()], conflict_handler="resolve"
        )

    up = action("up", "start the local stack in the background and seed its vault")
    up.add_argument("--empty", action="store_true", help="seed no sample certificates")
    up.add_argument("--timers", action="store_true", help="run the sweep and ingest timers on their schedules")
    up.add_argument(
        "--keyvault-pending-version",
        choices=("placeholder", "previous"),
        default="placeholder",
        help="the Key Vault emulator's --pending-version (default placeholder)",
    )
    down = action("down", "stop the local stack")
    add = action("add", "add a certificate to the running local stack's vault")
    add.add_argument("name", help="certificate name: letters, digits and hyphens")
    add.add_argument(
        "--days", type=int, required=True, help="days it stays valid from now (negative: expired that long ago)"
    )
    add.add_argument(
        "--issuer",
        choices=("Unknown", "Self"),
        default="Unknown",
        help="Unknown: a CA Key Vault does not integrate with, certlc renews it (default); "
        "Self: Key Vault issues and renews it itself, for whole months",
    )
    add.add_argument("--vault", help="one of the stack's vaults (default: its first)")
    add.add_argument("--tag", action="append", default=[], metavar="NAME=VALUE", help="a tag; repeat for more")
    serve = sub.add_parser("serve")  # what `up` starts in the background: without a help, argparse does not list it
    serve.add_argument("--timers", action="store_true")
    serve.add_argument("--keyvault-pending-version", choices=("placeholder", "previous"), default="placeholder")
    serve.add_argument("--lock-fd", type=int, help=argparse.SUPPRESS)  # the folder's lock, taken by `up`
    for command in (up, down, add, serve):
        command.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"state folder (default {DEFAULT_DIR})")


def run(args: argparse.Namespace) -> int:
    args.dir = Path(args.dir).resolve()  # the background process runs elsewhere: it must get the same folder
    return {"up": _up, "down": _down, "serve": _serve, "add": _add}[args.action](args)


def _info_path(directory: Path) -> Path:
    return Path(directory) / "stack.json"


def _lock_path(directory: Path) -> Path:
    return Path(directory) / "stack.lock"


def _take_lock(directory: Path) -> int | None:
    """The folder's lock (an open file descriptor), held by the stack's process for its life so that one folder
    runs one stack; None when another process holds it. It goes with the process, however that ends."""
    fd = os.open(_lock_path(directory), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _lock_held(directory: Path) -> bool:
    """Whether a stack's process, starting, running or stopping, holds the folder's lock."""
    fd = _take_lock(directory)
    if fd is None:
        return True
    os.close(fd)
    return False


def _lock_pid(directory: Path) -> int | None:
    """The pid the stack's process wrote in its lock file; None until it has."""
    try:
        text = _lock_path(directory).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _stack_ports(info: Mapping[str, Any]) -> set[int]:
    """The loopback ports a stack's endpoints name: closed once its servers are gone."""
    return {int(port) for port in re.findall(rf"//{re.escape(LOOPBACK)}:(\d+)", json.dumps(info))}


def running_stack(directory: Path) -> dict[str, Any]:
    """The endpoints of the stack running from ``directory``; one line saying so when none is."""
    info_path = _info_path(directory)
    if not stack_process_alive(info_path):
        raise StackNotRunning(STACK_NOT_RUNNING)
    return json.loads(info_path.read_text())


def _up(args: argparse.Namespace) -> int:
    info_path = _info_path(args.dir)
    args.dir.mkdir(parents=True, exist_ok=True)
    lock = _take_lock(args.dir)
    if lock is None:
        if stack_process_alive(info_path):
            _report(json.loads(info_path.read_text()), args, already=True)
            return 0
        raise UserError(  # exit 2: two commands clashing on one folder, not a service that failed
            f"a local stack is starting or running in {args.dir}: run certlc local up again once it has started, "
            f"or stop it with certlc local down --dir {args.dir}"
        )
    info_path.unlink(missing_ok=True)  # a stack that died without removing it
    command = [sys.executable, "-m", "certlc", "local", "serve", "--dir", str(args.dir), "--lock-fd", str(lock)]
    if args.timers:
        command.append("--timers")
    command += ["--keyvault-pending-version", args.keyvault_pending_version]
    try:
        with (args.dir / "stack.log").open("ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=REPO_ROOT,
                pass_fds=(lock,),  # the stack's process holds the lock from here on
            )
    finally:
        os.close(lock)
    try:
        poll_until(
            lambda: info_path.exists() or process.poll() is not None,
            timeout=STARTUP_TIMEOUT,
            what="the local stack to start",
        )
    except TimeoutError:
        process.terminate()
        raise UserError(
            f"the local stack did not start within {STARTUP_TIMEOUT:g} s; see {args.dir / 'stack.log'}"
        ) from None
    if not info_path.exists():
        raise UserError(f"the local stack did not start; see {args.dir / 'stack.log'}")
    info = json.loads(info_path.read_text())
    info["seeded"] = [] if args.empty else _seed(info)
    _report(info, args, already=False)
    return 0


def _seed(info: Mapping[str, Any]) -> list[str]:
    """The samples, in the stack's first vault, dated by Key Vault's (emulated) clock."""
    from localazure.seeding import SAMPLES, seed_missing

    url = next(iter(info["keyvault_vaults"].values()))
    return seed_missing(certificate_client(url, info["keyvault_token"], info["ca_bundle"]), SAMPLES, _now(info))


def _now(info: Mapping[str, Any]) -> datetime.datetime:
    from localazure.emulators.keyvault.control import EmulatorControl

    return emulated_now(EmulatorControl(info["keyvault_admin_url"], info["ca_bundle"]))


def _report(info: Mapping[str, Any], args: argparse.Namespace, *, already: bool) -> None:
    if args.output == "json":  # -o json, or its alias --json
        print(json.dumps({**info, "already_running": already}, indent=2))
        return
    certlc = certlc_command(Path(sys.executable), shutil.which("certlc"), Path.cwd())
    state = "already running" if already else "running"
    print(f"the local stack is {state} (pid {info['pid']})")
    for vault, url in info["keyvault_vaults"].items():
        print(f"  vault {vault}: {url}")
    if info.get("seeded"):
        print(f"  seeded: {', '.join(info['seeded'])}")
    print(f"  settings: {info['settings_file']}")
    for key in ("keyvault_admin_url", "eventgrid_url", "logs_endpoint"):
        print(f"  {key}: {info[key]}")
    elsewhere = args.dir != DEFAULT_DIR  # commands find the default folder's stack by themselves
    settings = f" --settings {info['settings_file']}" if elsewhere else ""
    folder = f" --dir {args.dir}" if elsewhere else ""
    print("next:")
    print(f"  {certlc}{settings} status   every certificate, who renews it and when")
    print(f"  {certlc} local add NAME --days 10{folder}   add a certificate (negative days: already expired)")
    print(f"  {certlc} local down{folder}   stop it")
    if certlc != "certlc":
        print(f"  (or activate the virtualenv, then type certlc: . {Path(certlc).parent / 'activate'})")


def certlc_command(python: Path, on_path: str | None, cwd: Path) -> str:
    """How to type ``certlc`` in this shell: the bare name when PATH finds this one, else the script beside
    this Python, relative to ``cwd`` when it is below it (``.venv/bin/certlc``)."""
    script = python.parent / "certlc"
    if on_path and Path(on_path).parent == script.parent:
        return "certlc"
    return str(script.relative_to(cwd)) if script.is_relative_to(cwd) else str(script)


def _serve(args: argparse.Namespace) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    lock = args.lock_fd if args.lock_fd is not None else _take_lock(args.dir)  # held until this process ends
    if lock is None:
        raise UserError(f"a local stack is starting or running in {args.dir}")
    os.ftruncate(lock, 0)
    os.pwrite(lock, f"{os.getpid()}\n".encode(), 0)  # for `local down`, before stack.json exists
    with LocalStack(args.dir, schedule_timers=args.timers, pending_version=args.keyvault_pending_version) as stack:
        info = stack.info() | {"pid": os.getpid()}
        write_atomically(_info_path(args.dir), json.dumps(info, indent=2))
        with contextlib.suppress(KeyboardInterrupt):
            wait_for_signal(stop)
    mark_settings_stopped(args.dir)
    _info_path(args.dir).unlink(missing_ok=True)
    return 0


def _down(args: argparse.Namespace) -> int:
    """Returns once the stack's process is gone, the folder's lock free and its ports closed, so that a
    ``local up`` right after starts a new stack; a stack still starting is found by its lock and stopped too."""
    info_path = _info_path(args.dir)
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError):
        info = {}
    if not info and not _lock_held(args.dir):
        mark_settings_stopped(args.dir)
        print("no local stack is running")
        return 0
    signalled: set[int] = set()

    def stopped() -> bool:
        held = _lock_held(args.dir)  # the lock's pid is written before stack.json, and is stale once it is free
        for pid in (pid_of(info_path), _lock_pid(args.dir) if held else None):
            if pid not in signalled and process_alive(pid):
                os.kill(pid, signal.SIGTERM)
                signalled.add(pid)
        gone = not held and not any(process_alive(pid) for pid in signalled)
        return gone and not any(port_open(port) for port in _stack_ports(info))

    try:
        poll_until(stopped, timeout=STOP_TIMEOUT, interval=0.1, what="the local stack to stop")
    except TimeoutError:
        print(
            f"certlc: the local stack did not stop within {STOP_TIMEOUT:g} s; see {args.dir / 'stack.log'}",
            file=sys.stderr,
        )
        return 1  # a service problem, not a mistake
    mark_settings_stopped(args.dir)
    info_path.unlink(missing_ok=True)
    print("local stack stopped")
    return 0


def _add(args: argparse.Namespace) -> int:
    from localazure.seeding import PreviousCA, lifetime_for, seed_certificate

    from renewal.canary import CanarySettings
    from renewal.decide import facts_of, plan
    from renewal.keyvault import KeyVault
    from renewal.settings import settings_from_env
    from renewal.vaults import Vault

    info = running_stack(args.dir)
    vaults = info["keyvault_vaults"]
    vault = args.vault or next(iter(vaults))
    refusal = add_refusal(args.name, args.days, args.issuer, vault, vaults, args.tag)
    if refusal:
        raise UserError(refusal)
    client = certificate_client(vaults[vault], info["keyvault_token"], info["ca_bundle"])
    kv = KeyVault(client, Vault(vault, vaults[vault]))
    if kv.get(args.name) is not None:
        raise UserError(f"vault {vault} already has a certificate {args.name}: pick another name")
    now = _now(info)
    seed_certificate(
        client,
        PreviousCA(),
        args.name,
        now=now,
        sans=(f"{args.name.lower()}.example.com",),
        issuer=args.issuer,
        days_left=args.days,
        lifetime_days=lifetime_for(args.days),
        tags=dict(tag.split("=", 1) for tag in args.tag),
        validity_in_months=max(1, -(-args.days // 30)),  # Self: Key Vault issues whole months from now
    )
    added = kv.current(args.name)
    values = json.loads(Path(info["settings_file"]).read_text())["Values"]
    seen = plan(facts_of(added, CanarySettings()), now, settings_from_env(values).window)  # as the stack decides
    print(f"added {args.name} to vault {vault}, expiring {added.expires_on:%Y-%m-%d %H:%M} UTC: {seen.message}")
    return 0


def add_refusal(
    name: str, days: int, issuer: str, vault: str, vaults: Mapping[str, str], tags: Sequence[str]
) -> str | None:
    """Why ``certlc local add`` cannot add this certificate, in one line the user can act on; None when it can."""
    from renewal.vaults import is_valid_object_name

    if not is_valid_object_name(name):
        return f"{name!r} is not a Key Vault certificate name: 1 to 127 letters, digits and hyphens"
    if vault not in vaults:
        return f"vault {vault!r} is not one of the local stack's vaults: {', '.join(vaults)}"
    if not -MAX_DAYS <= days <= MAX_DAYS:
        return f"--days {days} is out of range: -{MAX_DAYS} to {MAX_DAYS}"
    if issuer == "Self" and days < 1:
        return "--issuer Self: Key Vault issues it now, so --days must be 1 or more (rounded up to whole months)"
    for tag in tags:
        if not tag.partition("=")[0].strip() or "=" not in tag:
            return f"--tag {tag!r} is not NAME=VALUE"
    return None


def mark_settings_stopped(directory: Path) -> None:
    """Mark the stack's settings file as a stopped stack's, so that commands say so instead of dialling its dead
    ports. The values stay for reading; ``certlc local up`` writes a fresh file."""
    path = directory / "local.settings.json"
    try:
        body = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(body, dict) or body.get(STACK_STATE_KEY) == "stopped":
        return
    body[STACK_STATE_KEY] = "stopped"
    write_atomically(path, json.dumps(body, indent=2))
