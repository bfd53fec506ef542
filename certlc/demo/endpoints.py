"""Where the demo's certificates are served, so the target check has something real to see: a real nginx kept in
step (or not) by the real ``certlc sync``, and an Application Gateway in the consumers emulator pinned to a version.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from certlc.demo.seeds import CONNECT, KEPT_IN_STEP, LEFT_BEHIND, PINNED, SYNCED, VAULT, Seed

GATEWAY = ("rg-demo", "appgw-web")  # resource group and name, in the stack's own subscription
GATEWAY_HOST = "www.example.com"
SYNC_TIMEOUT = 60.0  # seconds for one certlc sync run (its reload and verification have their own deadlines)


@contextlib.contextmanager
def endpoint_server(directory: Path, say: Callable[[str], None]) -> Iterator[Any]:
    """The demo's nginx in ``directory``, serving a stand-in certificate for its two server names until certlc sync
    installs the real one (as a server is set up), stopped afterwards; one line (``UserError``) when nginx cannot
    be installed or started."""
    from localazure.nginx import start_nginx
    from localazure.pki import write_loopback_tls, write_private
    from localazure.process import ServerStartError
    from localazure.tools import ToolMissing

    from certlc.cli import UserError

    try:
        stand_in = write_loopback_tls(directory / "stand-in", "nginx")
        nginx = start_nginx(directory, stand_in.cert_pem, stand_in.key_pem)
    except (ToolMissing, ServerStartError, OSError) as exc:
        raise UserError(f"certlc demo: nginx could not be started: {exc}") from exc
    try:
        try:
            for host in (KEPT_IN_STEP, LEFT_BEHIND):
                files = _site_files(nginx, host)
                files["cert"].parent.mkdir(parents=True, exist_ok=True)
                for path in (files["cert"], files["fullchain"]):
                    shutil.copyfile(stand_in.cert_pem, path)
                write_private(files["key"], stand_in.key_pem.read_bytes())
                nginx.sites[host] = (files["fullchain"], files["key"])
            nginx.write_config()
            nginx.reload()
        except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as exc:
            raise UserError(f"certlc demo: nginx did not take its server names: {exc}") from exc
        say(f"nginx on {CONNECT}:{nginx.port} serves {KEPT_IN_STEP} and {LEFT_BEHIND} (a stand-in certificate)")
        yield nginx
    finally:
        nginx.stop()


def _site_files(nginx: Any, host: str) -> dict[str, Path]:
    """The PEM files nginx reads for ``host`` and certlc sync writes."""
    folder = Path(nginx.folder) / "sites" / host
    return {"cert": folder / "cert.pem", "fullchain": folder / "fullchain.pem", "key": folder / "key.pem"}


def with_endpoints(seed: Seed, nginx: Any) -> Seed:
    """``SYNCED`` declares its two names on nginx (tag ``certlc-endpoints``); the others are as seeded."""
    if seed.name != SYNCED:
        return seed
    endpoints = ",".join(f"{host}:{nginx.port}@{CONNECT}" for host in (KEPT_IN_STEP, LEFT_BEHIND))
    return replace(seed, tags={**seed.tags, "certlc-endpoints": endpoints})


def sync(stack: Any, nginx: Any, host: str, say: Callable[[str], None]) -> None:
    """One round of the real ``certlc sync`` for ``host``, as its server would run it: the certificate's current
    version as PEM files, ``nginx -s reload``, then a TLS check that the endpoint serves it (rolled back if not).
    What it did is in the audit trail (``trigger: sync``) and in what the target check sees."""
    files = _site_files(nginx, host)
    said = certlc_json(
        stack,
        [
            "sync", "--vault", VAULT, "--name", SYNCED, "--cert", str(files["cert"]),
            "--fullchain", str(files["fullchain"]), "--key", str(files["key"]), "--reload", nginx.reload_command(),
            "--verify", f"{CONNECT}:{nginx.port}", "--verify-sni", host,
        ],
        SYNC_TIMEOUT,
        f"{host}: certlc sync",
        say,
    )  # fmt: skip
    if said:
        say(f"{host}: certlc sync: {said.get('action')} ({said.get('reason')})")


def add_gateway(stack: Any, version: str) -> str:
    """An Application Gateway in the consumers emulator, where the target check discovers it, whose listener names
    ``PINNED``'s seeded ``version`` (pinned, as set up before certlc came: the expired certificate may be renewed
    already); its id."""
    from localazure.stack import LOCAL_APP

    secret = f"{stack.keyvault.vault_urls[VAULT]}/secrets/{PINNED}/{version}"
    group, name = GATEWAY
    return stack.consumers.add_app_gateway(LOCAL_APP[0], group, name, {"www": ([GATEWAY_HOST], secret)})


def gateway_reference(stack: Any, gateway: str) -> str:
    """The keyVaultSecretId the gateway's certificate names now."""
    certificates = stack.consumers.resource(gateway)["properties"]["sslCertificates"]
    return str(certificates[0]["properties"]["keyVaultSecretId"])


def certlc_json(
    stack: Any, args: list[str], timeout: float, what: str, say: Callable[[str], None]
) -> dict[str, Any] | None:
    """``certlc ARGS -o json`` in its own process with the stack's settings, as an operator or a server runs it: its
    last JSON line; None once it said why there is none (a time-out, or an error line)."""
    command = [sys.executable, "-m", "certlc", "--settings", str(stack.settings_path), *args, "-o", "json"]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False
        )
    except subprocess.TimeoutExpired:
        say(f"{what} did not finish within {timeout:g} s")
        return None
    lines = done.stdout.strip().splitlines()
    try:
        said = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        said = {}
    if not said:
        say(f"{what} exited {done.returncode}: {(done.stderr.strip().splitlines() or ['-'])[-1]}")
        return None
    return said
