"""Faults, roles, throttling and restarts of the Key Vault emulator, through the real SDK."""

from __future__ import annotations

import stat
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.keyvault.certificates import CertificateClient, CertificatePolicy
from azure.keyvault.secrets import SecretClient
from localazure.emulators.keyvault import start

from renewal.clients import StaticTokenCredential
from tests.fixtures.keyvault import clear_challenge_caches

FAST_RETRY = {"retry_backoff_factor": 0.01}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def self_signed(client, name: str):
    return client.begin_create_certificate(name, CertificatePolicy.get_default(), _polling_interval=0.01).result()


def test_503_then_success_through_sdk_retries(kv_client, kv_control):
    client = kv_client(**FAST_RETRY)
    name = unique("flaky")
    self_signed(client, name)
    kv_control.add_fault(status=503, count=2, path=f"/certificates/{name}/?$", method="GET")
    kv_control.clear_requests()

    assert client.get_certificate(name).name == name
    statuses = [r["status"] for r in kv_control.requests() if r["path"].startswith(f"/certificates/{name}")]
    assert statuses == [503, 503, 200]


def test_fault_with_retry_after_and_latency(keyvault_emulator, kv_control):
    kv_control.add_fault(status=429, retry_after=3, count=1, latency_ms=50, path="/certificates$")
    with requests.Session() as session:
        session.trust_env = False
        url = f"{keyvault_emulator.url}/certificates?api-version=7.5"
        headers = {"Authorization": f"Bearer {keyvault_emulator.token}"}
        first = session.get(url, headers=headers, verify=keyvault_emulator.ca_bundle)
        second = session.get(url, headers=headers, verify=keyvault_emulator.ca_bundle)
    assert (first.status_code, first.headers["Retry-After"], first.json()["error"]["code"]) == (429, "3", "Throttled")
    assert first.elapsed.total_seconds() >= 0.05
    assert second.status_code == 200


def test_roles(keyvault_emulator, kv_client, kv_secret_client):
    name = unique("roles")
    self_signed(kv_client(), name)
    reader = kv_client(token="certlc-local-reader")
    assert reader.get_certificate(name).name == name
    with pytest.raises(HttpResponseError) as write:
        self_signed(reader, unique("denied"))
    assert write.value.status_code == 403
    assert write.value.response.json()["error"]["innererror"]["code"] == "ForbiddenByRbac"
    with pytest.raises(HttpResponseError) as secret:
        kv_secret_client(token="certlc-local-reader").get_secret(name)
    assert secret.value.status_code == 403
    assert kv_secret_client().get_secret(name).value

    with pytest.raises(HttpResponseError) as nobody:
        kv_client(token="certlc-local-none").get_certificate(name)
    assert nobody.value.status_code == 403
    with pytest.raises(ClientAuthenticationError) as unknown:
        kv_client(token="not-a-known-token").get_certificate(name)
    assert unknown.value.status_code == 401


def test_throttled_burst_finishes_through_sdk_retries(kv_client, kv_control):
    # 20 creates per 2 s. azure-core retries a POST's 429 only when it carries Retry-After, so this test pins the
    # header whatever mode the run chose (test_keyvault_limits covers 429s without it).
    kv_control.throttling(True, time_scale=0.2, retry_after="always")
    client = kv_client("kv2", **FAST_RETRY)
    self_signed(client, unique("warm"))  # challenge handshake done once, before the burst
    kv_control.clear_requests()
    names = [unique("burst") for _ in range(30)]
    policy = CertificatePolicy(issuer_name="Unknown", subject="CN=burst")
    with ThreadPoolExecutor(max_workers=30) as pool:
        results = list(pool.map(lambda n: client.begin_create_certificate(n, policy).result(), names))

    assert all(op.status == "inProgress" for op in results)
    creates = [r for r in kv_control.requests() if r["path"].endswith("/create")]
    assert sum(r["status"] == 429 for r in creates) >= 10
    assert sum(r["status"] == 202 for r in creates) == 30


def test_throttling_answer_matches_key_vault(keyvault_emulator, kv_control):
    kv_control.throttling(True, time_scale=1.0, retry_after="always")  # the other modes: test_keyvault_limits
    url = keyvault_emulator.vault_urls["kv2"]
    headers = {"Authorization": f"Bearer {keyvault_emulator.token}"}
    body = {"policy": {"x509_props": {"subject": "CN=t"}, "issuer": {"name": "Unknown"}}}
    with requests.Session() as session:
        session.trust_env = False
        codes = [
            session.post(
                f"{url}/certificates/{unique('limit')}/create?api-version=7.5",
                json=body,
                headers=headers,
                verify=keyvault_emulator.ca_bundle,
            )
            for _ in range(21)
        ]
    assert [r.status_code for r in codes] == [202] * 20 + [429]
    assert codes[-1].json()["error"]["code"] == "Throttled"
    assert 1 <= int(codes[-1].headers["Retry-After"]) <= 10


def test_state_survives_a_restart(tmp_path, chain_ca):
    state = tmp_path / "state"

    def client_for(emulator) -> CertificateClient:
        clear_challenge_caches()
        return CertificateClient(
            emulator.url,
            StaticTokenCredential(emulator.token),
            connection_verify=emulator.ca_bundle,
            verify_challenge_resource=False,
        )

    with start(state) as emulator:
        client = client_for(emulator)
        done = self_signed(client, "kept")
        pending = client.begin_create_certificate(
            "halfway", CertificatePolicy(issuer_name="Unknown", subject="CN=halfway")
        ).result()
        client.close()

    with start(state) as emulator:
        client = client_for(emulator)
        assert client.get_certificate("kept").cer == done.cer
        merged = client.merge_certificate("halfway", [c.public_bytes(_der()) for c in chain_ca.sign(pending.csr)])
        assert merged.name == "halfway"
        secrets = SecretClient(
            emulator.url,
            StaticTokenCredential(emulator.token),
            connection_verify=emulator.ca_bundle,
            verify_challenge_resource=False,
        )
        assert secrets.get_secret("kept").value
        client.close()
        secrets.close()

    for path in state.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path


def _der():
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER
