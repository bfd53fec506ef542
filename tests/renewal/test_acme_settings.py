"""The ACME adapter's decisions that need no server: where the account key comes from, Azure or not, and
how long to wait before looking at an order again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from localazure.ports import free_port

from renewal.ca.acme import (
    FIRST_LOOK_SECONDS,
    LONGEST_LOOK_SECONDS,
    AcmeAuthority,
    account_key_options,
    next_wait,
    retry_after_seconds,
)
from renewal.ca.base import CaConfigError
from renewal.clock import utc_now
from renewal.hosting import in_azure
from renewal.runtime import ca_factory
from tests.fixtures.servers import make_csr

AZURE = {"WEBSITE_INSTANCE_ID": "0f1e2d", "FUNCTIONS_WORKER_RUNTIME": "python"}


def _pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def test_looks_start_after_milliseconds_and_double_up_to_one_second() -> None:
    waits = [next_wait(None, None)]
    while len(waits) < 10:
        waits.append(next_wait(waits[-1], None))

    assert waits[0] == FIRST_LOOK_SECONDS < 0.05
    assert waits[1] == 2 * waits[0]
    assert waits[-1] == LONGEST_LOOK_SECONDS and max(waits) == LONGEST_LOOK_SECONDS


def test_looks_back_off_towards_the_cas_retry_after() -> None:
    assert next_wait(0.8, 3.0) == 1.6
    assert next_wait(2.0, 3.0) == 3.0  # beyond 1 s when the CA asks for it
    assert next_wait(0.4, 0.1) == 0.1  # sooner when the CA says sooner
    assert next_wait(0.4, 0.0) == FIRST_LOOK_SECONDS  # never a busy loop


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

    assert retry_after_seconds("3", now) == 3.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=5), usegmt=True), now) == 5.0
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=5), usegmt=True), now) == 0.0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None


def test_azure_is_the_platforms_settings_without_the_local_stacks() -> None:
    assert in_azure({"WEBSITE_INSTANCE_ID": "0f1e2d"})
    assert in_azure({"FUNCTIONS_WORKER_RUNTIME": "python"})
    assert not in_azure({"FUNCTIONS_WORKER_RUNTIME": "python", "CERTLC_LOCAL_TOKEN": "certlc-local-officer"})
    assert not in_azure({"CERTLC_ADCS_SERVER": "ca01.corp.example"})  # the on-premises worker


def test_the_account_key_setting_is_the_pem_itself_or_a_path(tmp_path: Path) -> None:
    pem = _pem(ec.generate_private_key(ec.SECP256R1())).strip()

    assert account_key_options(pem + "\n", azure=True) == {"account_key_pem": pem}
    assert account_key_options(pem.replace("\n", "\\n"), azure=True) == {"account_key_pem": pem}
    assert account_key_options(f" {tmp_path}/a.pem\n", azure=False) == {
        "account_key_path": tmp_path / "a.pem",
        "create_account_key": True,
    }
    assert account_key_options(str(tmp_path / "a.pem"), azure=True)["create_account_key"] is False


def test_an_unset_key_in_azure_says_to_use_a_key_vault_reference() -> None:
    with pytest.raises(CaConfigError, match="is not set: in Azure, a Key Vault reference"):
        account_key_options("", azure=True)


def test_an_unresolved_key_vault_reference_is_a_configuration_error_naming_the_fix() -> None:
    reference = "@Microsoft.KeyVault(SecretUri=https://kv-ops.vault.azure.net/secrets/acme-account-key)"
    with pytest.raises(CaConfigError, match="could not resolve: give the app's identity Key Vault Secrets User"):
        account_key_options(reference, azure=True)


def test_in_azure_a_missing_key_file_is_refused_never_made(tmp_path: Path) -> None:
    key = tmp_path / "account.pem"
    env = AZURE | {
        "CERTLC_ACME_DIRECTORY": f"https://127.0.0.1:{free_port()}/dir",  # never reached: the key comes first
        "CERTLC_ACME_ACCOUNT_KEY": str(key),
    }
    authority = ca_factory(env, utc_now)("acme")

    with pytest.raises(CaConfigError, match="does not exist, and here a new one would not last"):
        authority.submit(make_csr("azure.certlc.test"), "")
    assert not key.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("pem", "problem"),
    [
        (_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)), "must be an EC P-256 key"),
        (_pem(ec.generate_private_key(ec.SECP384R1())), "must be an EC P-256 key"),
        ("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n", "not an unencrypted PEM private key"),
    ],
)
def test_an_unusable_key_is_a_configuration_error_that_never_shows_the_key(pem: str, problem: str) -> None:
    authority = AcmeAuthority(f"https://127.0.0.1:{free_port()}/dir", account_key_pem=pem)

    with pytest.raises(CaConfigError, match=problem) as raised:
        authority.submit(make_csr("bad-key.certlc.test"), "")
    assert "CERTLC_ACME_ACCOUNT_KEY" in str(raised.value)
    assert pem.splitlines()[1] not in str(raised.value)


def test_the_key_is_a_pem_or_a_path_never_both(tmp_path: Path) -> None:
    with pytest.raises(CaConfigError, match="give exactly one"):
        AcmeAuthority("https://127.0.0.1:1/dir")
    with pytest.raises(CaConfigError, match="give exactly one"):
        AcmeAuthority("https://127.0.0.1:1/dir", account_key_path=tmp_path / "a.pem", account_key_pem="x")
