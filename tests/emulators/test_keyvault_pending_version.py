"""The two pending-version modes, through the unmodified SDKs and raw HTTPS.

``placeholder``: a pending manual create on a certificate makes a new disabled version without a certificate;
GET (no version) and the versions list return it, its secret answers 403 SecretDisabled, the merge fills and
enables it, deleting the pending operation removes it. ``previous``: the previous version stays the newest until
the merge. In both modes a disabled secret is never readable.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.keyvault.certificates import CertificateClient, CertificatePolicy
from azure.keyvault.secrets import SecretClient
from cryptography.hazmat.primitives import serialization
from localazure.emulators.keyvault import start
from localazure.emulators.keyvault.emulator import Emulator

from tests.fixtures.keyvault import clear_challenge_caches

DER = serialization.Encoding.DER
ROOT = Path(__file__).resolve().parents[2]
MODES = ("placeholder", "previous")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module", params=MODES)
def emulator(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    running = start(tmp_path_factory.mktemp(f"kv-{request.param}") / "state", pending_version=request.param)
    yield running
    running.stop()


class Clients:
    def __init__(self, emulator: Emulator) -> None:
        from renewal.clients import StaticTokenCredential

        clear_challenge_caches()
        options: dict[str, Any] = {"connection_verify": emulator.ca_bundle, "verify_challenge_resource": False}
        credential = StaticTokenCredential(emulator.token)
        self.emulator = emulator
        self.mode = emulator.pending_version
        self.certs = CertificateClient(emulator.url, credential, **options)
        self.secrets = SecretClient(emulator.url, credential, **options)
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.verify = emulator.ca_bundle
        self.http.headers["Authorization"] = f"Bearer {emulator.token}"

    def raw(self, method: str, path: str, body: Any = None) -> requests.Response:
        return self.http.request(method, f"{self.emulator.url}{path}", params={"api-version": "7.5"}, json=body)

    def close(self) -> None:
        self.certs.close()
        self.secrets.close()
        self.http.close()
        clear_challenge_caches()


@pytest.fixture
def kv(emulator: Emulator) -> Iterator[Clients]:
    clients = Clients(emulator)
    yield clients
    clients.close()


def issued(kv: Clients, chain_ca: Any, name: str) -> Any:
    """A certificate with one enabled, merged version (issuer Unknown, as certlc's certificates are)."""
    operation = kv.certs.begin_create_certificate(name, manual_policy()).result()
    chain = chain_ca.sign(operation.csr)
    return kv.certs.merge_certificate(name, [c.public_bytes(DER) for c in chain])


def manual_policy() -> CertificatePolicy:
    return CertificatePolicy(issuer_name="Unknown", subject="CN=pending.example.test")


def versions(kv: Clients, name: str) -> dict[str, Any]:
    return {v.version: v for v in kv.certs.list_properties_of_certificate_versions(name)}


def expect_secret_disabled(kv: Clients, path: str) -> None:
    answer = kv.raw("GET", path)
    assert answer.status_code == 403
    assert answer.json() == {
        "error": {
            "code": "Forbidden",
            "message": "Operation get is not allowed on a disabled secret.",
            "innererror": {"code": "SecretDisabled"},
        }
    }


def test_get_while_a_manual_create_is_pending(kv: Clients, chain_ca: Any) -> None:
    name = unique("pend")
    first = issued(kv, chain_ca, name)
    kv.certs.begin_create_certificate(name, manual_policy()).result()

    current = kv.certs.get_certificate(name)
    listed = versions(kv, name)
    if kv.mode == "placeholder":
        assert current.properties.version != first.properties.version
        assert current.properties.enabled is False
        assert current.cer is None and current.properties.x509_thumbprint is None
        assert set(listed) == {first.properties.version, current.properties.version}
        assert listed[current.properties.version].enabled is False
        assert listed[current.properties.version].x509_thumbprint is None
        expect_secret_disabled(kv, f"/secrets/{name}")
        expect_secret_disabled(kv, f"/secrets/{name}/{current.properties.version}")
        with pytest.raises(HttpResponseError) as refused:
            kv.secrets.get_secret(name)
        assert refused.value.status_code == 403
    else:
        assert current.properties.version == first.properties.version
        assert current.properties.enabled is True and current.cer == first.cer
        assert set(listed) == {first.properties.version}
        assert kv.secrets.get_secret(name).properties.version == first.properties.version
    # the earlier version stays readable in both modes
    assert kv.secrets.get_secret(name, first.properties.version).value


def test_merge_fills_and_enables_the_placeholder(kv: Clients, chain_ca: Any) -> None:
    name = unique("fill")
    first = issued(kv, chain_ca, name)
    operation = kv.certs.begin_create_certificate(name, manual_policy()).result()
    pending_version = kv.certs.get_certificate(name).properties.version
    chain = chain_ca.sign(operation.csr)
    merged = kv.certs.merge_certificate(name, [c.public_bytes(DER) for c in chain], tags={"stage": "merged"})

    assert merged.cer == chain[0].public_bytes(DER)
    assert merged.properties.enabled is True
    assert merged.properties.x509_thumbprint
    assert merged.properties.tags == {"stage": "merged"}
    if kv.mode == "placeholder":
        assert merged.properties.version == pending_version  # the placeholder became the certificate
    else:
        assert pending_version == first.properties.version
    assert set(versions(kv, name)) == {first.properties.version, merged.properties.version}
    assert kv.certs.get_certificate(name).properties.version == merged.properties.version
    assert kv.secrets.get_secret(name).properties.version == merged.properties.version


@pytest.mark.parametrize("cancel_first", [False, True], ids=["delete", "cancel-then-delete"])
def test_deleting_the_pending_operation_removes_the_placeholder(kv: Clients, chain_ca: Any, cancel_first: bool) -> None:
    name = unique("drop")
    first = issued(kv, chain_ca, name)
    kv.certs.begin_create_certificate(name, manual_policy()).result()
    assert len(versions(kv, name)) == (2 if kv.mode == "placeholder" else 1)
    if cancel_first:
        kv.certs.cancel_certificate_operation(name)
        assert len(versions(kv, name)) == (2 if kv.mode == "placeholder" else 1)  # cancelling alone keeps it
    kv.certs.delete_certificate_operation(name)

    assert set(versions(kv, name)) == {first.properties.version}
    current = kv.certs.get_certificate(name)
    assert current.properties.version == first.properties.version and current.cer == first.cer
    assert kv.secrets.get_secret(name).properties.version == first.properties.version


def test_a_pending_only_certificate(kv: Clients) -> None:
    name = unique("only")
    kv.certs.begin_create_certificate(name, manual_policy()).result()
    answer = kv.raw("GET", f"/certificates/{name}")
    listed = [c.name for c in kv.certs.list_properties_of_certificates()]
    assert name not in listed  # listing shows no certificate that has only a pending operation
    if kv.mode == "placeholder":
        assert answer.status_code == 200
        body = answer.json()
        assert body["attributes"]["enabled"] is False
        assert "cer" not in body and "x5t" not in body
        version = body["id"].rsplit("/", 1)[1]
        expect_secret_disabled(kv, f"/secrets/{name}")
        deleted = kv.raw("DELETE", f"/certificates/{name}").json()
        assert deleted["id"].endswith(f"/certificates/{name}/{version}")  # as recorded: the placeholder's id
        assert deleted["attributes"]["enabled"] is False and "cer" not in deleted
    else:
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "CertificateNotFound"


def test_a_disabled_secret_is_never_readable(kv: Clients, chain_ca: Any) -> None:
    name = unique("off")
    first = issued(kv, chain_ca, name)
    second = issued(kv, chain_ca, name)
    kv.certs.update_certificate_properties(name, first.properties.version, enabled=False)
    expect_secret_disabled(kv, f"/secrets/{name}/{first.properties.version}")
    assert kv.secrets.get_secret(name).properties.version == second.properties.version

    kv.certs.update_certificate_properties(name, second.properties.version, enabled=False)
    expect_secret_disabled(kv, f"/secrets/{name}")  # the newest version is disabled: no fallback to an older one
    assert kv.certs.get_certificate(name).properties.enabled is False  # the certificate itself still reads


# -- the option in every entry point -----------------------------------------------------------------------


def _parse(add_arguments: Callable[[argparse.ArgumentParser], None], argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_the_option_in_the_emulator_local_stack_and_demo_commands() -> None:
    from localazure.emulators.keyvault import cli

    from certlc import demo
    from certlc.commands import local

    assert _parse(cli.add_arguments, []).pending_version == "placeholder"
    assert _parse(cli.add_arguments, ["--pending-version", "previous"]).pending_version == "previous"
    assert _parse(demo.add_arguments, []).keyvault_pending_version == "placeholder"
    assert _parse(demo.add_arguments, ["--keyvault-pending-version", "previous"]).keyvault_pending_version == (
        "previous"
    )
    up = _parse(local.add_arguments, ["up", "--keyvault-pending-version", "previous"])
    assert up.keyvault_pending_version == "previous"
    for add in (cli.add_arguments, demo.add_arguments):
        with pytest.raises(SystemExit):
            _parse(add, ["--pending-version" if add is cli.add_arguments else "--keyvault-pending-version", "newest"])


def test_the_command_line_refuses_an_unknown_mode(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "localazure.emulators.keyvault", "--state", str(tmp_path / "s")]
    done = subprocess.run(
        [*command, "--pending-version", "newest"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "--pending-version" in done.stderr


def test_start_refuses_an_unknown_mode(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pending_version"):
        start(tmp_path / "s", pending_version="newest")


def test_local_stack_passes_the_mode_to_the_emulator(tmp_path: Path) -> None:
    from localazure.stack import LocalStack

    assert LocalStack(tmp_path, pending_version="previous").pending_version == "previous"
    assert LocalStack(tmp_path).pending_version == "placeholder"
