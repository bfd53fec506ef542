"""A certificate in the Key Vault emulator, a server folder, and a real TLS server reading that folder."""

from __future__ import annotations

import shlex
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from certlc.cli import main

HERE = Path(__file__).resolve().parent


@dataclass
class Site:
    """One certificate and the files a server reads it from."""

    name: str
    folder: Path
    renew: Callable[[], Any]
    capsys: pytest.CaptureFixture[str]
    client: Any = None
    server: subprocess.Popen[str] | None = None
    port: int = 0
    fail_marker: Path = field(init=False)
    call_log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.fail_marker = self.folder.parent / "fail-next-reload"
        self.call_log = self.folder.parent / "reloads.log"

    @property
    def cert(self) -> Path:
        return self.folder / "cert.pem"

    @property
    def key(self) -> Path:
        return self.folder / "key.pem"

    @property
    def chain(self) -> Path:
        return self.folder / "chain.pem"

    @property
    def fullchain(self) -> Path:
        return self.folder / "fullchain.pem"

    def args(self, *extra: str) -> list[str]:
        files = ["--cert", self.cert, "--key", self.key, "--chain", self.chain, "--fullchain", self.fullchain]
        return ["sync", "--vault", "kv1", "--name", self.name, *map(str, files), *extra]

    def sync(self, *extra: str) -> tuple[int, str, str]:
        """Runs ``certlc sync`` in this process: exit code, stdout, stderr."""
        self.capsys.readouterr()
        code = main(self.args(*extra))
        out, err = self.capsys.readouterr()
        return code, out, err

    def start_server(self) -> None:
        self.server = subprocess.Popen(
            [sys.executable, str(HERE / "tls_server.py"), str(self.fullchain), str(self.key)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.server.stdout is not None
        self.port = int(self.server.stdout.readline())

    def reload_command(self) -> str:
        assert self.server is not None
        argv = [sys.executable, str(HERE / "reload_server.py"), str(self.server.pid), self.call_log, self.fail_marker]
        return shlex.join(map(str, argv))

    def reloads(self) -> int:
        return len(self.call_log.read_text().splitlines()) if self.call_log.exists() else 0

    def stop(self) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.wait(timeout=10)


def issue_version(client: Any, chain_ca: Any, name: str, pem: bool) -> Any:
    """A new version made as certlc makes them: Key Vault's key and CSR, signed by an issuing CA, merged."""
    from azure.keyvault.certificates import CertificateContentType, CertificatePolicy

    policy = CertificatePolicy(
        issuer_name="Unknown",
        subject=f"CN={name}.example.com",
        san_dns_names=[f"{name}.example.com"],
        validity_in_months=12,
        content_type=CertificateContentType.pem if pem else CertificateContentType.pkcs12,
    )
    operation = client.begin_create_certificate(name, policy, _polling_interval=0.05).result()
    chain = chain_ca.sign(operation.csr)
    return client.merge_certificate(name, [c.public_bytes(Encoding.DER) for c in chain])


@pytest.fixture
def sync_env(keyvault_emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """The settings a server using the local emulator has; set in this process's environment too. A local stack's
    settings file (the repository's, if one was started there) is never read: a server has none."""
    env = {
        "CERTLC_VAULTS": f"kv1={keyvault_emulator.vault_urls['kv1']}",
        "CERTLC_LOCAL_TOKEN": keyvault_emulator.token,
        "CERTLC_KEYVAULT_CA_BUNDLE": str(keyvault_emulator.ca_bundle),
        "CERTLC_STACK_DIR": str(tmp_path / "no-stack"),  # for certlc processes the tests start
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("certlc.stack_files.STACK_SETTINGS", tmp_path / "no-stack" / "local.settings.json")
    monkeypatch.chdir(tmp_path)  # no local.settings.json from the checkout
    return env


@pytest.fixture(params=["pem", "pfx"])
def site(
    request: pytest.FixtureRequest,
    kv_client: Callable[..., Any],
    chain_ca: Any,
    sync_env: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Site]:
    """A certificate with one version, stored as PEM or PFX (both content types Key Vault offers)."""
    client = kv_client()
    name = f"sync-{uuid.uuid4().hex[:8]}"
    pem = request.param == "pem"
    issue_version(client, chain_ca, name, pem)
    folder = tmp_path / "tls"
    folder.mkdir()
    site = Site(name, folder, lambda: issue_version(client, chain_ca, name, pem), capsys, client)
    yield site
    site.stop()
