"""Key Vault's refusals the emulator now makes too: tag limits, conflicts, cancels, request ids, validity, names."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import trustme
from cryptography.hazmat.primitives import serialization
from localazure.emulators.keyvault.bundles import Vault
from localazure.emulators.keyvault.certificates import Certificates
from localazure.emulators.keyvault.emulator import Emulator
from localazure.emulators.keyvault.errors import KeyVaultError

from tests.fixtures.pki import issued, pem_bundle

DER = serialization.Encoding.DER
MANUAL = {"policy": {"issuer": {"name": "Unknown"}, "x509_props": {"subject": "CN=strict.example.test"}}}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def call(keyvault_emulator: Emulator) -> Iterator[Any]:
    session = requests.Session()
    session.trust_env = False
    session.verify = keyvault_emulator.ca_bundle
    session.headers["Authorization"] = f"Bearer {keyvault_emulator.token}"

    def send(method: str, path: str, body: Any = None, **params: str) -> requests.Response:
        url = f"{keyvault_emulator.vault_urls['kv1']}{path}"
        return session.request(method, url, params={"api-version": "7.5", **params}, json=body)

    yield send
    session.close()


def pem_import_value() -> str:
    now = datetime.now(UTC) - timedelta(minutes=1)
    return base64.b64encode(
        pem_bundle(*issued(trustme.CA(), "strict.example.test", now, now + timedelta(days=30)))
    ).decode()


def error_of(answer: requests.Response) -> tuple[int, str]:
    return answer.status_code, answer.json()["error"]["code"]


def tags(count: int, name_length: int = 3, value_length: int = 1) -> dict[str, str]:
    return {f"{i:0{name_length}d}": "v" * value_length for i in range(count)}


# -- tags --------------------------------------------------------------------------------------------------

TOO_MANY = [tags(16), tags(1, name_length=257), tags(1, value_length=257), {"": "empty name"}]
AT_LIMIT = [tags(15), tags(1, name_length=256, value_length=256)]


@pytest.mark.parametrize("bad", TOO_MANY, ids=["16-tags", "name-257", "value-257", "empty-name"])
def test_tag_limits_on_create_import_update_and_merge(call, chain_ca, bad) -> None:
    name = unique("tags")
    assert error_of(call("POST", f"/certificates/{name}/create", {**MANUAL, "tags": bad})) == (400, "BadParameter")
    assert error_of(call("POST", f"/certificates/{name}/import", {"value": pem_import_value(), "tags": bad})) == (
        400,
        "BadParameter",
    )
    assert call("POST", f"/certificates/{name}/create", MANUAL).status_code == 202
    csr = base64.b64decode(call("GET", f"/certificates/{name}/pending").json()["csr"])
    x5c = [base64.b64encode(c.public_bytes(DER)).decode() for c in chain_ca.sign(csr)]
    refused = call("POST", f"/certificates/{name}/pending/merge", {"x5c": x5c, "tags": bad})
    assert error_of(refused) == (400, "BadParameter")
    assert call("GET", f"/certificates/{name}/pending").json()["status"] == "inProgress"  # nothing was merged
    merged = call("POST", f"/certificates/{name}/pending/merge", {"x5c": x5c, "tags": {"ok": "yes"}})
    assert merged.status_code == 201
    assert error_of(call("PATCH", f"/certificates/{name}", {"tags": bad})) == (400, "BadParameter")
    assert call("GET", f"/certificates/{name}").json()["tags"] == {"ok": "yes"}  # the refused update changed nothing


@pytest.mark.parametrize("good", AT_LIMIT, ids=["15-tags", "256-characters"])
def test_tags_at_the_limit_are_taken(call, good) -> None:
    name = unique("tagok")
    answer = call("POST", f"/certificates/{name}/import", {"value": pem_import_value(), "tags": good})
    assert answer.status_code == 200
    assert answer.json()["tags"] == good
    assert call("PATCH", f"/certificates/{name}", {"tags": good}).status_code == 200


def test_tag_limits_through_the_sdk(kv_client) -> None:
    from azure.core.exceptions import HttpResponseError
    from azure.keyvault.certificates import CertificatePolicy

    client = kv_client()
    with pytest.raises(HttpResponseError) as refused:
        client.begin_create_certificate(unique("sdk"), CertificatePolicy.get_default(), tags=tags(16))
    assert refused.value.status_code == 400


# -- pending operation -------------------------------------------------------------------------------------


def test_import_while_a_create_is_in_progress_is_a_conflict(call) -> None:
    name = unique("busy")
    assert call("POST", f"/certificates/{name}/create", MANUAL).status_code == 202
    for path, body in (
        (f"/certificates/{name}/import", {"value": pem_import_value()}),
        (f"/certificates/{name}/create", MANUAL),
    ):
        answer = call("POST", path, body)
        assert answer.status_code == 409
        assert answer.json() == {
            "error": {
                "code": "Forbidden",
                "message": "A new key vault certificate can not be created or imported while a pending key vault "
                "certificate's status is inProgress.",
            }
        }
    call("DELETE", f"/certificates/{name}/pending")
    assert call("POST", f"/certificates/{name}/import", {"value": pem_import_value()}).status_code == 200


def test_cancel_only_while_in_progress(call, chain_ca) -> None:
    name = unique("cancel")
    call("POST", f"/certificates/{name}/create", MANUAL)
    assert call("PATCH", f"/certificates/{name}/pending", {"cancellation_requested": True}).status_code == 200
    assert call("GET", f"/certificates/{name}/pending").json()["status"] == "cancelled"
    assert error_of(call("PATCH", f"/certificates/{name}/pending", {"cancellation_requested": True})) == (
        400,
        "BadParameter",
    )

    done = unique("cancel-done")
    call("POST", f"/certificates/{done}/create", MANUAL)
    csr = base64.b64decode(call("GET", f"/certificates/{done}/pending").json()["csr"])
    x5c = [base64.b64encode(c.public_bytes(DER)).decode() for c in chain_ca.sign(csr)]
    assert call("POST", f"/certificates/{done}/pending/merge", {"x5c": x5c}).status_code == 201
    assert error_of(call("PATCH", f"/certificates/{done}/pending", {"cancellation_requested": True})) == (
        400,
        "BadParameter",
    )


def test_request_id_filters_the_pending_operation(keyvault_emulator: Emulator, call) -> None:
    """Key Vault documents request_id (query) as a filter on get, cancel and delete: another id answers 404.

    The merge and cancel bodies carry no request_id (CertificateMergeParameters, CertificateOperationUpdateParameter).
    The HTTP routes do not hand the query to these handlers yet, so this drives the handlers directly.
    """
    name = unique("reqid")
    created = call("POST", f"/certificates/{name}/create", MANUAL)
    request_id = created.json()["request_id"]
    assert f"request_id={request_id}" in created.headers["Location"]
    certificates: Certificates = keyvault_emulator.certificates
    vault = Vault("kv1", keyvault_emulator.vault_urls["kv1"], "7.5")
    other = {"request_id": uuid.uuid4().hex}

    for attempt in (
        lambda q: certificates.get_pending(vault, name, q),
        lambda q: certificates.cancel_pending(vault, name, {"cancellation_requested": True}, q),
        lambda q: certificates.delete_pending(vault, name, q),
    ):
        with pytest.raises(KeyVaultError) as refused:
            attempt(other)
        assert (refused.value.status, refused.value.code) == (404, "PendingCertificateNotFound")
    assert certificates.get_pending(vault, name, {"request_id": request_id.upper()}).status == 200
    assert certificates.get_pending(vault, name, {}).status == 200
    assert certificates.delete_pending(vault, name, {"request_id": request_id}).status == 200


# -- policy and names --------------------------------------------------------------------------------------


@pytest.mark.parametrize("months", [0, -1, 1201, 1.5, "12", True])
def test_validity_months_out_of_range_is_refused(call, months) -> None:
    policy = {"issuer": {"name": "Self"}, "x509_props": {"subject": "CN=v.example.test", "validity_months": months}}
    assert error_of(call("POST", f"/certificates/{unique('valid')}/create", {"policy": policy})) == (
        400,
        "BadParameter",
    )


def test_validity_months_absent_is_twelve(call) -> None:
    name = unique("valid")
    policy = {"issuer": {"name": "Self"}, "x509_props": {"subject": "CN=v.example.test"}}
    assert call("POST", f"/certificates/{name}/create", {"policy": policy}).status_code == 202
    assert call("GET", f"/certificates/{name}/policy").json()["x509_props"]["validity_months"] == 12


@pytest.mark.parametrize("reserved", ["issuers", "contacts", "deletedcertificates", "Issuers"])
def test_route_names_are_refused_as_certificate_names(call, reserved) -> None:
    assert error_of(call("POST", f"/certificates/{reserved}/create", MANUAL)) == (400, "BadParameter")
    assert error_of(call("POST", f"/certificates/{reserved}/import", {"value": pem_import_value()})) == (
        400,
        "BadParameter",
    )
