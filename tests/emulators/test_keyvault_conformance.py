"""Replays the recorded Key Vault traffic against the emulator and compares the wire shapes.

For each recording the same requests are sent (raw HTTP, token added where the SDK sent one)
and each answer is compared with the recorded one: status code, presence of Location /
Retry-After / WWW-Authenticate, JSON keys and value types (recursively), operation status
values and error codes. Polls that the real service answered several times while it caught
up (identical consecutive GETs) are replayed once, with the last recorded answer; list pages
follow the emulator's own nextLink. Adaptations are listed in ADAPTATIONS and in
docs/keyvault-emulator.md.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from localazure.emulators.keyvault import start
from localazure.emulators.keyvault.emulator import Emulator

RECORDED_HOST = "https://vaultname.vault.azure.net"
RECORDINGS = Path(__file__).resolve().parents[1] / "data" / "keyvault-recordings"
ADAPTATIONS = {
    "async_request_cancellation_and_deletion.json": "issuer Self -> Unknown: the emulator signs Self at once, "
    "so only an Unknown-issuer operation is still cancellable",
    "merge_certificate.json": "x5c re-signed for the emulator's CSR (the recorded certificate fits the recorded key)",
}


def recording(name: str) -> list[dict[str, Any]]:
    entries = json.loads((RECORDINGS / name).read_text())["Entries"]
    collapsed: list[dict[str, Any]] = []
    for entry in entries:
        previous = collapsed[-1] if collapsed else None
        if (
            previous is not None
            and entry["RequestMethod"] == "GET"
            and (previous["RequestMethod"], previous["RequestUri"]) == ("GET", entry["RequestUri"])
        ):
            collapsed[-1] = entry
        else:
            collapsed.append(entry)
    return collapsed


def shape_problems(recorded: Any, actual: Any, where: str = "$") -> list[str]:
    """Keys and JSON types, recursively; lists compare their first elements; nextLink may be null."""
    if isinstance(recorded, dict) and isinstance(actual, dict):
        problems = []
        missing, extra = sorted(set(recorded) - set(actual)), sorted(set(actual) - set(recorded))
        if missing or extra:
            problems.append(f"{where}: keys missing {missing}, extra {extra}")
        for key in set(recorded) & set(actual):
            if key == "nextLink" and None in (recorded[key], actual[key]):
                continue
            problems += shape_problems(recorded[key], actual[key], f"{where}.{key}")
        return problems
    if isinstance(recorded, list) and isinstance(actual, list):
        if recorded and actual:
            return shape_problems(recorded[0], actual[0], f"{where}[0]")
        return []
    if type(recorded) is not type(actual):
        return [f"{where}: recorded {type(recorded).__name__}, emulator {type(actual).__name__}"]
    return []


def compare(entry: dict[str, Any], response: requests.Response) -> list[str]:
    where = f"{entry['RequestMethod']} {entry['RequestUri'].replace(RECORDED_HOST, '')}"
    problems = []
    if response.status_code != entry["StatusCode"]:
        problems.append(f"{where}: status {response.status_code}, recorded {entry['StatusCode']}")
    for header in ("Location", "Retry-After", "WWW-Authenticate"):
        if (header in entry["ResponseHeaders"]) != (header in response.headers):
            problems.append(f"{where}: header {header} presence differs")
    challenge = entry["ResponseHeaders"].get("WWW-Authenticate")
    if challenge is not None and response.headers.get("WWW-Authenticate") != challenge:
        problems.append(f"{where}: challenge differs: {response.headers.get('WWW-Authenticate')}")
    recorded = entry["ResponseBody"]
    actual = response.json() if response.content else None
    problems += [f"{where}: {p}" for p in shape_problems(recorded, actual)]
    if isinstance(recorded, dict) and isinstance(actual, dict):
        if "status" in recorded and recorded["status"] != actual.get("status"):
            problems.append(f"{where}: status value {actual.get('status')!r}, recorded {recorded['status']!r}")
        if "error" in recorded and recorded["error"]["code"] != (actual.get("error") or {}).get("code"):
            problems.append(f"{where}: error {actual.get('error')}, recorded {recorded['error']}")
    return problems


Adapter = Callable[[dict[str, Any], Any, dict[str, Any]], Any]


def replay(emulator: Emulator, name: str, adapt: Adapter | None = None) -> list[str]:
    problems: list[str] = []
    state: dict[str, Any] = {}
    next_link: str | None = None
    with requests.Session() as session:
        session.trust_env = False
        for entry in recording(name):
            url = entry["RequestUri"].replace(RECORDED_HOST, emulator.url)
            if "$skiptoken" in url:
                if next_link is None:
                    break
                url = next_link
            body = entry["RequestBody"]
            if adapt is not None:
                body = adapt(entry, body, state)
            headers = {} if entry["StatusCode"] == 401 else {"Authorization": f"Bearer {emulator.token}"}
            response = session.request(
                entry["RequestMethod"],
                url,
                json=body,
                headers=headers,
                verify=emulator.ca_bundle,
                timeout=30,
            )
            problems += compare(entry, response)
            answer = response.json() if response.content else None
            if isinstance(answer, dict):
                next_link = answer.get("nextLink", next_link)
                if "csr" in answer:
                    state["csr"] = answer["csr"]
    return problems


@pytest.fixture(scope="module")
def fresh_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """An empty vault of its own, so listings hold only what the replay imported."""
    emulator = start(tmp_path_factory.mktemp("kv-conformance"), vaults=("vaultname",))
    yield emulator
    emulator.stop()


@pytest.mark.parametrize(
    "name",
    [
        "crud_operations.json",
        "get_pending_certificate_signing_request.json",
        "import_certificate_not_password_encoded_no_policy.json",
        "list.json",
        "list_certificate_versions.json",
    ],
)
def test_recording_replays_unchanged(fresh_emulator, name):
    assert replay(fresh_emulator, name) == []


def test_cancellation_and_deletion(fresh_emulator):
    def unknown_issuer(entry: dict[str, Any], body: Any, state: dict[str, Any]) -> Any:
        if entry["RequestUri"].split("?")[0].endswith("/create") and body:
            return {**body, "policy": {**body["policy"], "issuer": {"name": "Unknown"}}}
        return body

    assert replay(fresh_emulator, "async_request_cancellation_and_deletion.json", unknown_issuer) == []


def test_merge(fresh_emulator, chain_ca):
    def sign_our_csr(entry: dict[str, Any], body: Any, state: dict[str, Any]) -> Any:
        if entry["RequestUri"].split("?")[0].endswith("/pending/merge"):
            chain = chain_ca.sign(base64.b64decode(state["csr"]))
            return {"x5c": [base64.b64encode(c.public_bytes(_der())).decode() for c in chain]}
        return body

    assert replay(fresh_emulator, "merge_certificate.json", sign_our_csr) == []


def _der() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


def test_comparison_catches_differences():
    """The checker itself must fail on a changed shape, status or error code."""
    entry = {
        "RequestMethod": "GET",
        "RequestUri": f"{RECORDED_HOST}/certificates/x/pending",
        "StatusCode": 200,
        "ResponseHeaders": {"Retry-After": "10"},
        "ResponseBody": {"status": "inProgress", "csr": "MII", "cancellation_requested": False},
    }

    class Fake:
        status_code = 200
        headers: dict[str, str] = {}
        content = b"x"

        @staticmethod
        def json() -> dict[str, Any]:
            return {"status": "completed", "csr": 1}

    problems = compare(entry, Fake())  # type: ignore[arg-type]
    assert any("Retry-After" in p for p in problems)
    assert any("keys missing ['cancellation_requested']" in p for p in problems)
    assert any("$.csr: recorded str, emulator int" in p for p in problems)
    assert any("status value 'completed'" in p for p in problems)
