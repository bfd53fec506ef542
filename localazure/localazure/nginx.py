"""Debian's nginx as a real TLS endpoint: several server names on one loopback port, chosen by SNI.

It runs from a folder of its own (``nginx -p DIR -c DIR/nginx.conf``: pid, error log and temp paths inside it, no
system config, no service), in the foreground as a child process. ``serve`` adds a server name reading a certificate
and key file; replacing those files and ``reload`` (``nginx -s reload``, what ``certlc sync --reload`` runs) makes
new connections get the new leaf. ``tools.ensure_nginx`` installs nginx when it is missing. Used by ``certlc demo``
and by the tests' ``nginx`` fixture.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from localazure import tools
from localazure.ports import LOOPBACK, free_port, poll_until, port_open
from localazure.process import AddressInUse, ManagedProcess, ServerStartError, start_with_retry

RELOAD_SECONDS = 10.0
START_SECONDS = 15.0
DEFAULT_NAME = "default.nginx.test"  # what a handshake naming no configured server gets

CONFIG = """\
daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log notice;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
{servers}}}
"""
SERVER = """\
    server {{
        listen {address}:{port} ssl{default};
        server_name {name};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        return 204;
    }}
"""


@dataclass
class Nginx:
    """A running nginx; ``sites`` maps each server name to its (certificate, key) files."""

    binary: Path
    folder: Path
    port: int
    process: ManagedProcess | None = None
    sites: dict[str, tuple[Path, Path]] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        return self.folder / "nginx.conf"

    @property
    def error_log(self) -> Path:
        return self.folder / "error.log"

    def control(self, signal: str) -> list[str]:
        """The ``nginx -s SIGNAL`` command for this instance (``reload``: what a sync's ``--reload`` runs)."""
        return [str(self.binary), "-p", str(self.folder), "-c", str(self.config), "-s", signal]

    def reload_command(self) -> str:
        return shlex.join(self.control("reload"))

    def endpoint(self, name: str) -> str:
        """``name`` as a ``certlc-endpoints`` entry: this port, connected to on loopback."""
        return f"{name}:{self.port}@{LOOPBACK}"

    def write_config(self) -> None:
        servers = "".join(
            SERVER.format(
                address=LOOPBACK,
                port=self.port,
                default=" default_server" if name == DEFAULT_NAME else "",
                name=name,
                cert=cert,
                key=key,
            )
            for name, (cert, key) in self.sites.items()
        )
        self.config.write_text(CONFIG.format(dir=self.folder, servers=servers))

    def _log_since(self, offset: int) -> str:
        try:
            with self.error_log.open("rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def reload(self) -> None:
        """``nginx -s reload``, then waits until the old workers were told to stop (from then on only workers with
        the new configuration accept); a configuration nginx refused raises with its log line."""
        offset = self.error_log.stat().st_size if self.error_log.exists() else 0
        subprocess.run(self.control("reload"), check=True, capture_output=True, timeout=RELOAD_SECONDS)

        def reloaded() -> bool:
            log = self._log_since(offset)
            refused = [line for line in log.splitlines() if "[emerg]" in line]
            if refused:
                raise RuntimeError(f"nginx refused the new configuration: {refused[0]}")
            return "gracefully shutting down" in log

        poll_until(
            reloaded,
            timeout=RELOAD_SECONDS,
            interval=0.02,
            what=lambda: f"nginx reload ({self._log_since(offset)[-500:]})",
        )

    def serve(self, name: str, cert: Path, key: Path) -> None:
        """Adds (or repoints) server name ``name`` and reloads."""
        self.sites[name] = (cert, key)
        self.write_config()
        self.reload()

    def stop(self) -> None:
        subprocess.run(self.control("stop"), check=False, capture_output=True, timeout=RELOAD_SECONDS)
        if self.process is not None:
            self.process.stop()


def start_nginx(folder: Path, default_cert: Path, default_key: Path) -> Nginx:
    """nginx in ``folder`` on a free loopback port, serving ``DEFAULT_NAME`` until ``serve`` adds more (installed
    first when missing: ``tools.ToolMissing`` when it cannot be)."""
    binary = tools.ensure_nginx()
    folder, default_cert, default_key = folder.resolve(), default_cert.resolve(), default_key.resolve()  # -p is its cwd
    folder.mkdir(parents=True, exist_ok=True)

    def start() -> Nginx:
        server = Nginx(binary, folder, free_port())
        server.sites[DEFAULT_NAME] = (default_cert, default_key)
        server.write_config()
        server.error_log.unlink(missing_ok=True)
        command = [str(binary), "-p", str(folder), "-c", str(server.config)]
        process = server.process = ManagedProcess("nginx", command, folder / "stdout.log")
        try:
            process.wait_ready(lambda: port_open(server.port), timeout=START_SECONDS)
        except ServerStartError as exc:
            logged = server._log_since(0)
            if "address already in use" in logged.lower():
                raise AddressInUse(str(exc)) from exc
            raise ServerStartError(f"{exc}\n{logged[-1000:]}") from exc
        return server

    return start_with_retry(start)
