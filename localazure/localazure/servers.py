"""Real local servers for tests and the local stack: Azurite (queues, blobs), pebble (ACME), cfssl (CA).

Each starts on free loopback ports with its log in the given folder, is polled until it answers,
and stops cleanly (terminate, wait, kill). Every handle is a context manager. Each runs in that folder, so the
folder is resolved first: a relative path handed to the server would be read from inside itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import requests

from localazure import tools
from localazure.pki import write_loopback_tls, write_private
from localazure.ports import LOOPBACK, free_port, port_open
from localazure.process import ManagedProcess, ServerStartError, start_with_retry

# Azurite's documented development account; it is public and accepted only by the emulator.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
READY_TIMEOUT = 30.0
CFSSL_EXPIRY = "2160h"
CFSSL_PROFILES: dict[str, list[str]] = {
    "server": ["signing", "digital signature", "key encipherment", "server auth"],
    "client": ["signing", "digital signature", "key encipherment", "client auth"],
}


def _responds(method: str, url: str, *, verify: bool | str = True, **kwargs: Any) -> bool:
    """True when the URL answers 200; proxies and CA bundles from the environment are ignored."""
    with requests.Session() as session:
        session.trust_env = False
        try:
            return session.request(method, url, verify=verify, timeout=2, **kwargs).status_code == 200
        except requests.RequestException:
            return False


@dataclass
class _Server:
    process: ManagedProcess

    def stop(self) -> None:
        self.process.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _launch(
    name: str, command: list[str], workdir: Path, ready: Callable[[], bool], env: Mapping[str, str] | None = None
) -> ManagedProcess:
    process = ManagedProcess(name, command, workdir / f"{name}.log", env=env, cwd=workdir)
    process.wait_ready(ready, timeout=READY_TIMEOUT)
    return process


@dataclass
class AzuriteServer(_Server):
    port: int
    blob_port: int

    @property
    def queue_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/{AZURITE_ACCOUNT}"

    @property
    def blob_url(self) -> str:
        return f"http://{LOOPBACK}:{self.blob_port}/{AZURITE_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"QueueEndpoint={self.queue_url};BlobEndpoint={self.blob_url};"
        )


def start_azurite(workdir: Path) -> AzuriteServer:
    """Azurite's queue and blob services (blob leases are the renewal lock), persisting under ``workdir``."""
    binary = tools.ensure_azurite().with_name("azurite")  # all services; the table service gets a port too
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)

    def start() -> AzuriteServer:
        queue, blob, table = free_port(), free_port(), free_port()
        command = [
            str(binary),
            *("--queueHost", LOOPBACK, "--queuePort", str(queue)),
            *("--blobHost", LOOPBACK, "--blobPort", str(blob)),
            *("--tableHost", LOOPBACK, "--tablePort", str(table)),
            *("--location", str(workdir / "data"), "--skipApiVersionCheck", "--disableTelemetry", "--silent"),
        ]
        ready = lambda: port_open(queue) and port_open(blob)  # noqa: E731
        return AzuriteServer(_launch("azurite", command, workdir, ready), queue, blob)

    return start_with_retry(start)


@dataclass
class PebbleServer(_Server):
    port: int
    management_port: int
    http_port: int
    tls_port: int
    ca_bundle: Path

    @property
    def directory_url(self) -> str:
        return f"https://{LOOPBACK}:{self.port}/dir"

    def roots_pem(self) -> str:
        """Pebble's issuing root (new on every start), to verify the chains it issues."""
        url = f"https://{LOOPBACK}:{self.management_port}/roots/0"
        with requests.Session() as session:
            session.trust_env = False
            response = session.get(url, verify=str(self.ca_bundle), timeout=10)
        response.raise_for_status()
        return response.text


def start_pebble(
    workdir: Path,
    *,
    eab_keys: Mapping[str, str] | None = None,
    domain_blocklist: Sequence[str] = (),
    always_valid: bool = True,
    http_port: int | None = None,
    dns_server: str | None = None,
) -> PebbleServer:
    """pebble over HTTPS with its own TLS CA; ``eab_keys`` (kid -> base64url HMAC key) makes EAB required.

    Orders for ``domain_blocklist`` names are rejected (``rejectedIdentifier``). With ``always_valid``
    every answered challenge passes without pebble contacting the client; otherwise pebble fetches
    http-01 answers from ``http_port`` (say, an ``Http01ServerSolver``'s) on the identifier's address, and
    dns-01 answers from the DNS server at ``dns_server`` (``host:port``).
    """
    binary = tools.ensure_pebble()
    workdir = Path(workdir).resolve()
    tls = write_loopback_tls(workdir / "tls", "pebble")
    env = {
        **os.environ,
        "PEBBLE_VA_ALWAYS_VALID": "1" if always_valid else "0",
        "PEBBLE_VA_NOSLEEP": "1",
        "PEBBLE_WFE_NONCEREJECT": "0",
    }

    def start() -> PebbleServer:
        port, management_port, tls_port = (free_port() for _ in range(3))
        challenge_port = http_port or free_port()
        config: dict[str, Any] = {
            "listenAddress": f"{LOOPBACK}:{port}",
            "managementListenAddress": f"{LOOPBACK}:{management_port}",
            "certificate": str(tls.cert_pem),
            "privateKey": str(tls.key_pem),
            "httpPort": challenge_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": bool(eab_keys),
            "domainBlocklist": list(domain_blocklist),
        }
        if eab_keys:
            config["externalAccountMACKeys"] = dict(eab_keys)
        config_path = workdir / "pebble-config.json"
        config_path.write_text(json.dumps({"pebble": config}, indent=2))
        server_url = f"https://{LOOPBACK}:{port}/dir"

        def ready() -> bool:
            return _responds("GET", server_url, verify=str(tls.ca_pem))

        dns = ["-dnsserver", dns_server] if dns_server else []
        process = _launch("pebble", [str(binary), "-config", str(config_path), *dns], workdir, ready, env)
        return PebbleServer(process, port, management_port, challenge_port, tls_port, tls.ca_pem)

    return start_with_retry(start)


# cfssl's certificate database (its certdb/sqlite migration), with TEXT where cfssl's own schema says ``bytea``:
# SQLite gives ``bytea`` numeric affinity, which turns the decimal serials cfssl stores into lossy floats.
CFSSL_DB_SCHEMA = """
CREATE TABLE IF NOT EXISTS certificates (
  serial_number TEXT NOT NULL,
  authority_key_identifier TEXT NOT NULL,
  ca_label TEXT,
  status TEXT NOT NULL,
  reason INTEGER,
  expiry TIMESTAMP,
  revoked_at TIMESTAMP,
  pem TEXT NOT NULL,
  PRIMARY KEY (serial_number, authority_key_identifier)
);
CREATE TABLE IF NOT EXISTS ocsp_responses (
  serial_number TEXT NOT NULL,
  authority_key_identifier TEXT NOT NULL,
  body BLOB NOT NULL,
  expiry TIMESTAMP,
  PRIMARY KEY (serial_number, authority_key_identifier),
  FOREIGN KEY (serial_number, authority_key_identifier)
    REFERENCES certificates (serial_number, authority_key_identifier)
);
"""


@dataclass
class CfsslServer(_Server):
    port: int
    ca_pem: str
    database: Path  # the SQLite certificate database: a row per certificate signed, its status after a revoke

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


def _cfssl_config(auth_key: str | None) -> dict[str, Any]:
    auth = {"auth_key": "primary"} if auth_key else {}
    profiles = {name: {"expiry": CFSSL_EXPIRY, "usages": usages, **auth} for name, usages in CFSSL_PROFILES.items()}
    default_usages = sorted({usage for usages in CFSSL_PROFILES.values() for usage in usages})
    config: dict[str, Any] = {
        "signing": {"default": {"expiry": CFSSL_EXPIRY, "usages": default_usages, **auth}, "profiles": profiles}
    }
    if auth_key:
        config["auth_keys"] = {"primary": {"type": "standard", "key": auth_key}}
    return config


def _cfssl_init_ca(binary: Path, workdir: Path) -> tuple[Path, Path]:
    csr = {"CN": "certlc test CFSSL CA", "key": {"algo": "ecdsa", "size": 256}, "names": [{"O": "certlc"}]}
    (workdir / "ca-csr.json").write_text(json.dumps(csr))
    result = subprocess.run(
        [str(binary), "gencert", "-initca", "ca-csr.json"],
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ServerStartError(f"cfssl gencert -initca failed: {result.stderr.strip()[-500:]}")
    made = json.loads(result.stdout)
    ca_cert, ca_key = workdir / "ca.pem", workdir / "ca-key.pem"
    ca_cert.write_text(made["cert"])
    write_private(ca_key, made["key"].encode())
    return ca_cert, ca_key


def _cfssl_database(workdir: Path) -> Path:
    """The certificate database and the ``-db-config`` naming it: without one cfssl records nothing it signs and
    serves no ``revoke``."""
    database = workdir / "certdb.sqlite"
    with contextlib.closing(sqlite3.connect(database)) as db, db:
        db.executescript(CFSSL_DB_SCHEMA)
    (workdir / "db-config.json").write_text(json.dumps({"driver": "sqlite3", "data_source": str(database)}))
    return database


def start_cfssl(workdir: Path, *, auth_key: str | None = None) -> CfsslServer:
    """``cfssl serve`` with a new CA, profiles ``server``/``client`` (and a default) and a certificate database.

    ``auth_key`` (hex) puts every profile behind HMAC: only ``/authsign`` will sign then.
    """
    binary = tools.ensure_cfssl()
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = _cfssl_init_ca(binary, workdir)
    config_path = workdir / "config.json"
    config_path.write_text(json.dumps(_cfssl_config(auth_key), indent=2))
    database = _cfssl_database(workdir)

    def start() -> CfsslServer:
        port = free_port()
        command = [
            str(binary),
            "serve",
            *("-address", LOOPBACK, "-port", str(port)),
            *("-ca", str(ca_cert), "-ca-key", str(ca_key), "-config", str(config_path)),
            *("-db-config", str(workdir / "db-config.json")),
        ]
        info_url = f"http://{LOOPBACK}:{port}/api/v1/cfssl/info"
        process = _launch("cfssl", command, workdir, lambda: _responds("POST", info_url, json={}))
        return CfsslServer(process, port, ca_cert.read_text(), database)

    return start_with_retry(start)
