"""The whole local stack: Azurite, the Key Vault and Logs Ingestion emulators, the local CA and a
Functions host running function_app.py, wired together the way Azure wires the real ones.

``LocalStack`` runs in the calling process (the demo and tests use it directly);
``certlc local up`` runs one in a background process and ``certlc local down`` stops it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from certlc.localstack.ports import poll_until

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIR = Path(".local/stack")
QUEUE_NAME = "certlc-renewals"
STARTUP_TIMEOUT = 90.0


class LocalStack:
    def __init__(
        self,
        directory: Path = DEFAULT_DIR,
        *,
        vaults: Sequence[str] = ("kv1",),
        extra_settings: Mapping[str, str] | None = None,
        schedule_timers: bool = False,
        max_polling_interval: float = 0.5,
        pending_version: str = "placeholder",
    ) -> None:
        self.directory = Path(directory).resolve()
        self.pending_version = pending_version  # the Key Vault emulator's pending-version mode
        self.vault_names = tuple(vaults)
        self.extra_settings = dict(extra_settings or {})
        self.schedule_timers = schedule_timers
        self.max_polling_interval = max_polling_interval
        self._started: list[Any] = []
        self._saved_env: dict[str, str] | None = None
        self.settings: dict[str, str] = {}

    def start(self) -> LocalStack:
        from certlc.emulators import keyvault, logs
        from certlc.emulators.keyvault.control import EmulatorControl
        from certlc.localstack.host import FunctionsHost, load_app
        from certlc.localstack.servers import start_azurite

        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self.azurite = self._keep(start_azurite(self.directory / "azurite"))
            self.keyvault = self._keep(
                keyvault.start(
                    self.directory / "keyvault", vaults=self.vault_names, pending_version=self.pending_version
                )
            )
            self.control = EmulatorControl(self.keyvault.admin_url, self.keyvault.ca_bundle)
            self.logs = self._keep(logs.start(self.directory, REPO_ROOT / "infra" / "monitoring.json"))
            self.settings = self._app_settings()
            self.settings_path = self._write_settings()
            self._saved_env = dict(os.environ)
            os.environ.update(self.settings)  # the functions read app settings from the environment
            from renewal import handlers

            handlers.reset_runtime()
            self.host = FunctionsHost(
                load_app(REPO_ROOT),
                self.settings,
                REPO_ROOT / "host.json",
                port=0,
                schedule_timers=self.schedule_timers,
                max_polling_interval=self.max_polling_interval,
            )
            self._keep(self.host.start())
            self.subscribe_events()
        except BaseException:
            self.stop()
            raise
        return self

    def subscribe_events(self, schema: str = "EventGridSchema") -> None:
        """Point Key Vault's Event Grid at the host's webhook, as an Event Grid subscription does."""
        self.control.subscribe(
            self.host.eventgrid_url("event"),
            schema,
            ["Microsoft.KeyVault.CertificateNearExpiry", "Microsoft.KeyVault.CertificateExpired"],
        )

    def certificate_client(self, vault: str | None = None) -> Any:
        """An SDK client for one of the stack's vaults, as an operator's script would make it."""
        from azure.keyvault.certificates import CertificateClient

        from renewal.clients import StaticTokenCredential

        url = self.keyvault.vault_urls[vault or self.vault_names[0]]
        return CertificateClient(
            url,
            StaticTokenCredential(self.keyvault.token),
            connection_verify=self.keyvault.ca_bundle,
            verify_challenge_resource=False,
        )

    def now(self) -> datetime.datetime:
        """Key Vault's (emulated) time, which the functions share through CERTLC_CLOCK_URL."""
        return datetime.datetime.fromisoformat(self.control.now().replace("Z", "+00:00"))

    def settle(self, timeout: float = 120.0) -> int:
        """Wait until Event Grid has delivered everything and the queue is drained; messages processed."""
        self.control.flush_events(timeout=30)
        return self.host.drain(timeout=timeout)

    def stop(self) -> None:
        """Stop everything started, newest first, and give the process its environment back."""
        while self._started:
            part = self._started.pop()
            try:
                part.stop()
            except Exception as exc:  # keep stopping the rest
                print(f"certlc: stopping {type(part).__name__} failed: {exc}", file=sys.stderr)
        if self._saved_env is not None:
            os.environ.clear()
            os.environ.update(self._saved_env)
            self._saved_env = None
            from renewal import handlers

            handlers.reset_runtime()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def info(self) -> dict[str, Any]:
        return {
            "keyvault_url": self.keyvault.url,
            "keyvault_vaults": self.keyvault.vault_urls,
            "keyvault_admin_url": self.keyvault.admin_url,
            "keyvault_token": self.keyvault.token,
            "ca_bundle": self.keyvault.ca_bundle,
            "queue_connection_string": self.azurite.connection_string,
            "queue_name": QUEUE_NAME,
            "eventgrid_url": self.host.eventgrid_url("event"),
            "logs_endpoint": self.logs.endpoint,
            "local_ca": str(self.directory / "ca" / "ca.pem"),
            "settings_file": str(self.settings_path),
        }

    def _keep(self, part: Any) -> Any:
        self._started.append(part)
        return part

    def _app_settings(self) -> dict[str, str]:
        vaults = ",".join(f"{name}={url}" for name, url in self.keyvault.vault_urls.items())
        settings = {
            "AzureWebJobsStorage": self.azurite.connection_string,
            "CertlcStorage": self.azurite.connection_string,
            "CERTLC_QUEUE_NAME": QUEUE_NAME,
            "CERTLC_VAULTS": vaults,
            "CERTLC_KEYVAULT_CA_BUNDLE": self.keyvault.ca_bundle,
            "CERTLC_LOCAL_TOKEN": self.keyvault.token,
            "CERTLC_CLOCK_URL": f"{self.keyvault.admin_url}/clock",
            "CERTLC_CA": "local",
            "CERTLC_CA_PROFILE": "server",
            "CERTLC_LOCAL_CA_DIR": str(self.directory / "ca"),
            "CERTLC_SWEEP_SCHEDULE": "0 0 * * * *",
            "CERTLC_INGEST_SCHEDULE": "0 30 * * * *",
            "CERTLC_AUDIT_FILE": str(self.directory / "audit.jsonl"),
            "CERTLC_INGEST_CACHE": str(self.directory / "ingest-cache.json"),
            **self.logs.settings(),
        }
        return settings | self.extra_settings

    def _write_settings(self) -> Path:
        path = self.directory / "local.settings.json"
        body = {"IsEncrypted": False, "Values": self.settings}
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(body, fh, indent=2)
        os.replace(tmp, path)
        return path


# --- certlc local up / down -------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = sub.add_parser("up", help="start the local stack in the background")
    up.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"state folder (default {DEFAULT_DIR})")
    up.add_argument("--json", action="store_true", help="print the endpoints as JSON")
    up.add_argument("--timers", action="store_true", help="run the sweep and ingest timers on their schedules")
    up.add_argument(
        "--keyvault-pending-version",
        choices=("placeholder", "previous"),
        default="placeholder",
        help="the Key Vault emulator's --pending-version (default placeholder)",
    )
    down = sub.add_parser("down", help="stop the local stack")
    down.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"state folder (default {DEFAULT_DIR})")
    serve = sub.add_parser("serve", help=argparse.SUPPRESS)
    serve.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    serve.add_argument("--timers", action="store_true")
    serve.add_argument("--keyvault-pending-version", choices=("placeholder", "previous"), default="placeholder")


def run(args: argparse.Namespace) -> int:
    return {"up": _up, "down": _down, "serve": _serve}[args.action](args)


def _info_path(directory: Path) -> Path:
    return Path(directory) / "stack.json"


def _up(args: argparse.Namespace) -> int:
    from certlc.cli import UserError

    info_path = _info_path(args.dir)
    if info_path.exists() and _alive(_pid_of(info_path)):
        raise UserError(f"a local stack is already running from {args.dir}; run `certlc local down` first")
    info_path.unlink(missing_ok=True)
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "certlc", "local", "serve", "--dir", str(args.dir)]
    if args.timers:
        command.append("--timers")
    command += ["--keyvault-pending-version", args.keyvault_pending_version]
    with (Path(args.dir) / "stack.log").open("ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO_ROOT,
        )
    try:
        poll_until(
            lambda: info_path.exists() or process.poll() is not None,
            timeout=STARTUP_TIMEOUT,
            what="the local stack to start",
        )
    except TimeoutError:
        process.terminate()
        raise
    if not info_path.exists():
        raise UserError(f"the local stack did not start; see {Path(args.dir) / 'stack.log'}")
    info = json.loads(info_path.read_text())
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"local stack running (pid {info['pid']}); settings in {info['settings_file']}")
        for key in ("keyvault_url", "keyvault_admin_url", "eventgrid_url", "logs_endpoint"):
            print(f"  {key}: {info[key]}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with LocalStack(args.dir, schedule_timers=args.timers, pending_version=args.keyvault_pending_version) as stack:
        info = stack.info() | {"pid": os.getpid()}
        tmp = _info_path(args.dir).with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2))
        os.replace(tmp, _info_path(args.dir))
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    mark_settings_stopped(Path(args.dir))
    _info_path(args.dir).unlink(missing_ok=True)
    return 0


def _down(args: argparse.Namespace) -> int:
    info_path = _info_path(args.dir)
    if not info_path.exists():
        mark_settings_stopped(Path(args.dir))
        print("no local stack is running")
        return 0
    pid = _pid_of(info_path)
    if _alive(pid):
        os.kill(pid, signal.SIGTERM)
        poll_until(lambda: not _alive(pid), timeout=30, what="the local stack to stop")
    mark_settings_stopped(Path(args.dir))
    info_path.unlink(missing_ok=True)
    print("local stack stopped")
    return 0


def mark_settings_stopped(directory: Path) -> None:
    """Mark the stack's settings file as a stopped stack's, so that commands say so instead of dialling its dead
    ports. The values stay for reading; ``certlc local up`` writes a fresh file."""
    from certlc.cli import STACK_STATE_KEY

    path = directory / "local.settings.json"
    try:
        body = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(body, dict) or body.get(STACK_STATE_KEY) == "stopped":
        return
    body[STACK_STATE_KEY] = "stopped"
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(body, fh, indent=2)
    os.replace(tmp, path)


def stack_process_alive(info_path: Path) -> bool:
    """Whether the process a ``stack.json`` names still runs."""
    return _alive(_pid_of(info_path))


def _pid_of(info_path: Path) -> Any:
    try:
        return json.loads(info_path.read_text()).get("pid")
    except (OSError, ValueError, AttributeError):
        return None


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited == 0
    except ChildProcessError:
        return True
