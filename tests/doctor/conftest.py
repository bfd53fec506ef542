"""A deployment on the local stack for ``certlc doctor``, and a way to run the real command against it.

``deployment`` is every part a deployed app talks to: Azurite with the three queues and the lock container, the
Key Vault emulator,
the Logs Ingestion emulator, and the four CAs (the local CA's folder, cfssl serve, pebble, the /certsrv
emulator). Its ``env`` is the app settings, which tests change to break one thing at a time. ``deployed_app`` adds
the Function App itself, on the App Service emulator, for the checks that read it through Azure Resource Manager.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.adcs import ADCS_PASSWORD, ADCS_USERNAME

RUN_DEADLINE_SECONDS = 90  # one doctor run, in-process; a run that takes longer is a failure, not a hang
REPOSITORY = Path(__file__).resolve().parents[2]  # the folder func azure functionapp publish uploads
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"


@dataclass
class Deployment:
    env: dict[str, str]
    queue_name: str
    queues: list[Any]
    tmp: Path
    logs: Any
    keyvault: Any
    extra: dict[str, Any] = field(default_factory=dict)
    lock_container: Any = None  # the renewal lock's ContainerClient (the connection string's account key)


@dataclass
class DoctorRun:
    code: int
    out: str
    err: str
    seconds: float

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    def line(self, name: str) -> str:
        """The one output line of the check called ``name`` (``vault kv1``, ``queue x-poison``...), with the
        padding after the name cut to the two spaces between columns."""
        found = [line for line in self.lines if line[6:].startswith(f"{name} ")]
        assert len(found) == 1, f"no single line for {name!r} in:\n{self.out}"
        status, rest = found[0][:6], found[0][6 + len(name) :]
        return f"{status}{name}  {rest.lstrip()}"


@pytest.fixture(scope="session")
def certificate_in_kv1(keyvault_emulator: Any) -> str:
    """One certificate in kv1, so the vault check reads a real certificate there (kv2 may be empty)."""
    from azure.keyvault.certificates import CertificatePolicy

    from renewal.clients import certificate_client

    name = f"doctor-{uuid.uuid4().hex[:8]}"
    env = {"CERTLC_KEYVAULT_CA_BUNDLE": keyvault_emulator.ca_bundle, "CERTLC_LOCAL_TOKEN": keyvault_emulator.token}
    with certificate_client(keyvault_emulator.vault_urls["kv1"], env) as client:
        client.begin_create_certificate(name, CertificatePolicy.get_default()).result()
    return name


@pytest.fixture(scope="session")
def acme_account_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path = tmp_path_factory.mktemp("acme") / "account.pem"
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)
    return path


@pytest.fixture(scope="session")
def local_ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from renewal.ca.local import LocalCA

    directory = tmp_path_factory.mktemp("local-ca") / "ca"
    LocalCA(directory, create=True)  # writes ca.pem and ca-key.pem
    return directory


@pytest.fixture
def deployment(
    tmp_path: Path,
    azurite: Any,
    keyvault_emulator: Any,
    logs_emulator: Any,
    cfssl_server: Any,
    pebble: Any,
    adcs_server: Any,
    certificate_in_kv1: str,
    acme_account_key: Path,
    local_ca_dir: Path,
) -> Iterator[Deployment]:
    """A healthy deployment: every check passes until a test breaks something in ``env``."""
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.blob import ContainerClient
    from azure.storage.queue import QueueClient

    queue_name = f"doctor-{uuid.uuid4().hex[:12]}"
    queues = []
    for name in (queue_name, f"{queue_name}-failed", f"{queue_name}-poison"):
        client = QueueClient.from_connection_string(azurite.connection_string, name)
        client.create_queue()
        queues.append(client)
    lock_container = ContainerClient.from_connection_string(azurite.connection_string, f"{queue_name}-locks")
    lock_container.create_container()
    vaults = ",".join(f"{name}={url}" for name, url in keyvault_emulator.vault_urls.items())
    env = {
        "CERTLC_VAULTS": vaults,
        "CERTLC_KEYVAULT_CA_BUNDLE": keyvault_emulator.ca_bundle,
        "CERTLC_LOCAL_TOKEN": keyvault_emulator.token,
        "CertlcStorage": azurite.connection_string,
        "CERTLC_QUEUE_NAME": queue_name,
        "CERTLC_LOCK_CONTAINER": lock_container.container_name,
        "CERTLC_SWEEP_SCHEDULE": "0 0 * * * *",
        **logs_emulator.settings(),
        "CERTLC_CA": "local",
        "CERTLC_LOCAL_CA_DIR": str(local_ca_dir),
        "CERTLC_CFSSL_URL": cfssl_server.url,
        "CERTLC_ACME_DIRECTORY": pebble.directory_url,
        "CERTLC_ACME_CA_BUNDLE": str(pebble.ca_bundle),
        "CERTLC_ACME_ACCOUNT_KEY": str(acme_account_key),
        "CERTLC_ADCS_SERVER": adcs_server.server,
        "CERTLC_ADCS_AUTH": "basic",
        "CERTLC_ADCS_USERNAME": ADCS_USERNAME,
        "CERTLC_ADCS_PASSWORD": ADCS_PASSWORD,
        "CERTLC_ADCS_CA_BUNDLE": adcs_server.ca_bundle,
    }
    yield Deployment(env, queue_name, queues, tmp_path, logs_emulator, keyvault_emulator, lock_container=lock_container)
    with contextlib.suppress(ResourceNotFoundError):
        lock_container.delete_container()
    lock_container.close()
    for client in queues:
        with contextlib.suppress(ResourceNotFoundError):
            client.delete_queue()
        client.close()


@pytest.fixture(scope="session")
def appservice(keyvault_emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """App Service's ARM side: apps whose Key Vault references resolve against ``keyvault_emulator``; two items a page,
    so the doctor has to follow nextLink."""
    from localazure.emulators.appservice import AppServiceEmulator

    with AppServiceEmulator(
        tmp_path_factory.mktemp("appservice"),
        vaults=keyvault_emulator.vault_urls,
        keyvault_ca_bundle=keyvault_emulator.ca_bundle,
        page_size=2,
    ) as emulator:
        yield emulator


@dataclass
class DeployedApp:
    site: Any  # the emulator's app: its settings, its identity, what its last publish indexed
    env: dict[str, str]  # the deployment's settings with the app's resource id and the ARM endpoint
    emulator: Any

    def publish(self, script_root: Path = REPOSITORY) -> Any:
        """``func azure functionapp publish`` of ``script_root``; returns what the worker indexed."""
        return self.emulator.publish(self.site, script_root)


@pytest.fixture
def deployed_app(deployment: Deployment, appservice: Any) -> DeployedApp:
    """``deployment``'s Function App as the template's first pass leaves it: an identity that may read secrets, no
    setting that is a Key Vault reference, and no code published yet."""
    site = appservice.add_app(SUBSCRIPTION, "rg-certlc", f"certlc-{uuid.uuid4().hex[:8]}")
    env = deployment.env | {
        "CERTLC_FUNCTION_APP_ID": site.arm_id,
        "CERTLC_ARM_ENDPOINT": appservice.url,
        "CERTLC_ARM_CA_BUNDLE": str(appservice.ca_bundle),
    }
    return DeployedApp(site, env, appservice)


@pytest.fixture
def doctor(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Any:
    """``doctor(env, *args) -> DoctorRun``: ``certlc --settings <env as local.settings.json> doctor *args``."""
    import time

    from certlc.cli import main
    from tests.fixtures.keyvault import clear_challenge_caches

    for key in list(os.environ):
        if key.startswith(("CERTLC_", "Certlc")):
            monkeypatch.delenv(key)

    def run(env: dict[str, str], *args: str) -> DoctorRun:
        settings = tmp_path / f"settings-{uuid.uuid4().hex[:6]}.json"
        settings.write_text(json.dumps({"IsEncrypted": False, "Values": env}))
        clear_challenge_caches()
        capsys.readouterr()
        outcome: dict[str, Any] = {}

        def target() -> None:
            try:
                outcome["code"] = main(["--settings", str(settings), "doctor", *args])
            except SystemExit as exc:  # argparse usage errors
                outcome["code"] = exc.code

        started = time.monotonic()
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        thread.join(RUN_DEADLINE_SECONDS)
        assert not thread.is_alive(), f"certlc doctor still running after {RUN_DEADLINE_SECONDS} s"
        captured = capsys.readouterr()
        return DoctorRun(outcome["code"], captured.out, captured.err, time.monotonic() - started)

    return run


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody else takes it), never listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never says a word: a server that hangs."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]
