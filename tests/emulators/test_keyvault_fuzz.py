"""Malformed requests get an HTTP answer from the Key Vault emulator: 4xx in Key Vault's error shape, never a 5xx
and never a dropped connection. The bodies are generated from a fixed seed, so a failure replays exactly."""

from __future__ import annotations

import base64
import copy
import json
import random
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from cryptography import x509
from localazure.emulators.keyvault import start
from localazure.emulators.keyvault.emulator import Emulator
from localazure.emulators.keyvault.schemas import API_VERSIONS

SEED = 20240611
PER_ROUTE = 30
TIMEOUT = 15  # seconds, every request
API = "7.5"

GOOD_POLICY: dict[str, Any] = {
    "key_props": {"exportable": True, "kty": "RSA", "key_size": 2048, "reuse_key": False},
    "secret_props": {"contentType": "application/x-pkcs12"},
    "x509_props": {
        "subject": "CN=fuzz.example",
        "sans": {"dns_names": ["fuzz.example"]},
        "ekus": ["1.3.6.1.5.5.7.3.1"],
        "key_usage": ["digitalSignature", "keyEncipherment"],
        "validity_months": 12,
    },
    "lifetime_actions": [{"trigger": {"lifetime_percentage": 80}, "action": {"action_type": "AutoRenew"}}],
    "issuer": {"name": "Self", "cert_transparency": False},
    "attributes": {"enabled": True},
}
GOOD_BODIES: dict[str, Any] = {
    "create": {"policy": GOOD_POLICY, "attributes": {"enabled": True}, "tags": {"a": "b"}},
    "import": {"value": "TUlJ", "pwd": "", "policy": GOOD_POLICY, "tags": {"a": "b"}},
    "merge": {"x5c": ["TUlJ"], "attributes": {"enabled": True}, "tags": {"a": "b"}},
    "cancel": {"cancellation_requested": True},
    "policy": GOOD_POLICY,
    "update": {"policy": GOOD_POLICY, "attributes": {"enabled": True}, "tags": {"a": "b"}},
    "issuer": {
        "provider": "Test",
        "credentials": {"account_id": "acct", "pwd": "secret"},
        "org_details": {"id": "org", "admin_details": [{"first_name": "A", "last_name": "B", "email": "a@b.test"}]},
        "attributes": {"enabled": True},
    },
    "contacts": {"contacts": [{"email": "a@b.test", "name": "A", "phone": "1"}]},
    "restore": {"value": "Y2VydGxj"},
    "none": {},
}
# (method, path, which good body the mutations start from, whether the spec declares a body)
ROUTES: list[tuple[str, str, str, bool]] = [
    ("GET", "/certificates", "none", False),
    ("POST", "/certificates/fuzz-create/create", "create", True),
    ("POST", "/certificates/fuzz-import/import", "import", True),
    ("GET", "/certificates/fuzz-pending/pending", "none", False),
    ("PATCH", "/certificates/fuzz-pending/pending", "cancel", True),
    ("DELETE", "/certificates/fuzz-gone/pending", "none", False),
    ("POST", "/certificates/fuzz-pending/pending/merge", "merge", True),
    ("GET", "/certificates/fuzz-self/policy", "none", False),
    ("PATCH", "/certificates/fuzz-self/policy", "policy", True),
    ("GET", "/certificates/fuzz-self/versions", "none", False),
    ("GET", "/certificates/fuzz-self", "none", False),
    ("PATCH", "/certificates/fuzz-self", "update", True),
    ("DELETE", "/certificates/fuzz-missing", "none", False),
    ("GET", "/deletedcertificates/fuzz-missing", "none", False),
    ("DELETE", "/deletedcertificates/fuzz-missing", "none", False),
    ("POST", "/deletedcertificates/fuzz-missing/recover", "none", False),
    ("GET", "/secrets/fuzz-self", "none", False),
    ("GET", "/certificates/issuers", "none", False),
    ("PUT", "/certificates/issuers/fuzz-issuer", "issuer", True),
    ("PATCH", "/certificates/issuers/fuzz-issuer", "issuer", True),
    ("GET", "/certificates/issuers/fuzz-issuer", "none", False),
    ("DELETE", "/certificates/issuers/fuzz-missing", "none", False),
    ("PUT", "/certificates/contacts", "contacts", True),
    ("GET", "/certificates/contacts", "none", False),
    ("DELETE", "/certificates/contacts", "none", False),
    ("POST", "/certificates/fuzz-self/backup", "none", False),
    ("POST", "/certificates/restore", "restore", True),
    ("GET", "/deletedcertificates", "none", False),
]


def _garbage(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["str", "int", "huge", "neg", "float", "bool", "null", "list", "dict", "long", "inf", "empty"]
    if depth > 2:
        kinds = kinds[:7]
    kind = rng.choice(kinds)
    if kind == "str":
        return rng.choice(["abc", "", " ", "RSA ", "P-999", "\u0000", "😀", "CN=", "1.2.x", "-1", "2048"])
    if kind == "int":
        return rng.choice([0, 1, -1, 7, 99, 100, 2047, 2048])
    if kind == "huge":
        return rng.choice([2**31, 2**63, 10**30, 10**300])
    if kind == "neg":
        return rng.choice([-(2**31) - 1, -(10**30)])
    if kind == "float":
        return rng.choice([0.5, 2048.5, 1e308, -1e-308])
    if kind == "bool":
        return rng.choice([True, False])
    if kind == "null":
        return None
    if kind == "list":
        return [_garbage(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if kind == "dict":
        return {rng.choice(["a", "kty", "name", "", "x5c"]): _garbage(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    if kind == "long":
        return "A" * rng.choice([1000, 100_000])
    if kind == "inf":
        return float(rng.choice(["inf", "-inf", "nan"]))
    return rng.choice([[], {}, ""])


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if prefix:
        yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def _replace(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    body = copy.deepcopy(body)
    target = body
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return body


def malformed_bodies(good: Any, rng: random.Random, count: int) -> list[tuple[str, bytes]]:
    """``count`` (kind, raw body) pairs: a field of another type, truncated JSON, non-JSON, a non-object, nesting."""
    paths = list(_paths(good))
    text = json.dumps(good)
    bodies: list[tuple[str, bytes]] = []
    for index in range(count):
        kind = ("field", "field", "field", "truncated", "bytes", "toplevel", "nested", "deep")[index % 8]
        if kind == "field" and paths:
            raw = json.dumps(_replace(good, rng.choice(paths), _garbage(rng))).encode()
        elif kind == "truncated" and len(text) > 1:
            raw = text[: rng.randint(1, len(text) - 1)].encode()
        elif kind == "bytes":
            raw = rng.choice([b"\xff\xfe\x00garbage", b"not json", b"{'single': 'quotes'}", b"{,}", b"\x00" * 64])
        elif kind == "toplevel":
            raw = json.dumps(rng.choice([[], [good], 42, "policy", True, 10**30, None])).encode()
        elif kind == "nested":
            raw = json.dumps({key: _garbage(rng) for key in (*good, "policy", "x5c", "value")}).encode()
        else:
            # arrays are never a valid body; objects only past the parser's depth
            depth = rng.choice([50, 5000, 100_000])
            objects = depth > 50 and rng.random() < 0.5
            raw = ('{"a":' * depth + "1" + "}" * depth if objects else "[" * depth + "]" * depth).encode()
        bodies.append((kind, raw))
    return bodies


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    running = start(tmp_path_factory.mktemp("kv-fuzz") / "state", vaults=("fuzz",))
    yield running
    running.stop()


@pytest.fixture
def call(emulator: Emulator) -> Iterator[Any]:
    with requests.Session() as session:
        session.trust_env = False

        def send(
            method: str, path: str, body: Any = None, *, raw: bytes | None = None, api: str | None = API, **query: str
        ) -> requests.Response:
            params = dict(query)
            if api is not None:
                params["api-version"] = api
            data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
            headers = {"Authorization": f"Bearer {emulator.token}", "Content-Type": "application/json"}
            return session.request(
                method,
                f"{emulator.url}{path}",
                params=params,
                data=data,
                headers=headers,
                verify=emulator.ca_bundle,
                timeout=TIMEOUT,
            )

        yield send


def error_code(response: requests.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["code"], str) and isinstance(body["error"]["message"], str), body
    return body["error"]["code"]


def test_fuzz_every_route_answers_without_5xx(call):
    started = time.monotonic()
    assert call("POST", "/certificates/fuzz-self/create", {"policy": GOOD_POLICY}).status_code == 202
    unknown = _replace(GOOD_POLICY, ("issuer", "name"), "Unknown")
    assert call("POST", "/certificates/fuzz-pending/create", {"policy": unknown}).status_code == 202
    statuses: dict[int, int] = {}
    failures: list[str] = []
    for index, (method, path, good_name, has_body) in enumerate(ROUTES):
        rng = random.Random(SEED + index)
        for kind, raw in malformed_bodies(GOOD_BODIES[good_name], rng, PER_ROUTE):
            try:
                response = call(method, path, raw=raw)
            except requests.RequestException as exc:  # a dropped connection or a timeout
                failures.append(f"{method} {path} [{kind}] {raw[:120]!r}: no answer: {exc!r}")
                continue
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                failures.append(f"{method} {path} [{kind}] {raw[:120]!r}: {response.status_code} {response.text[:300]}")
            elif response.status_code >= 400:
                code = error_code(response)
                refused = (response.status_code, code) == (400, "BadParameter")
                if has_body and kind in ("truncated", "bytes", "toplevel", "deep") and not refused:
                    failures.append(f"{method} {path} [{kind}] {raw[:120]!r}: {response.status_code} {code}")
    assert not failures, "\n".join(failures[:20])
    assert sum(statuses.values()) == PER_ROUTE * len(ROUTES)
    print(f"fuzz: {sum(statuses.values())} requests, statuses {dict(sorted(statuses.items()))}")
    assert statuses.get(400, 0) >= PER_ROUTE * 3, statuses  # the six body routes refused most of what they got
    # still serving afterwards
    assert call("GET", "/certificates/fuzz-self").status_code == 200
    assert time.monotonic() - started < 240


def test_fuzz_query_values(call):
    answers = []
    for value in ("abc", "0", "26", "-1", "1.5", "", "99999999999999999999999", "true", " 3 "):
        response = call("GET", "/certificates", maxresults=value)
        answers.append((value, response.status_code, error_code(response) if response.status_code >= 400 else None))
    assert answers == [
        ("abc", 400, "BadParameter"),
        ("0", 400, "BadParameter"),
        ("26", 400, "BadParameter"),
        ("-1", 400, "BadParameter"),
        ("1.5", 400, "BadParameter"),
        ("", 400, "BadParameter"),
        ("99999999999999999999999", 400, "BadParameter"),
        ("true", 400, "BadParameter"),
        (" 3 ", 200, None),
    ]
    assert call("GET", "/certificates", includePending="maybe").status_code == 400
    assert call("GET", "/certificates", includePending="true").status_code == 200


def _create(call, name: str, **x509_changes: Any) -> requests.Response:
    policy = copy.deepcopy(GOOD_POLICY)
    policy["x509_props"].update(x509_changes)
    return call("POST", f"/certificates/{name}/create", {"policy": policy})


def test_key_size_text_is_bad_parameter(call):
    policy = _replace(GOOD_POLICY, ("key_props", "key_size"), "abc")
    response = call("POST", "/certificates/ks-text/create", {"policy": policy})
    assert (response.status_code, error_code(response)) == (400, "BadParameter")
    assert "policy.key_props.key_size" in response.json()["error"]["message"]


def test_validity_months_text_is_bad_parameter(call):
    response = _create(call, "vm-text", validity_months="abc")
    assert (response.status_code, error_code(response)) == (400, "BadParameter")
    assert "validity_months" in response.json()["error"]["message"]


def test_issuer_name_must_be_text(call):
    policy = _replace(GOOD_POLICY, ("issuer", "name"), 42)
    response = call("POST", "/certificates/issuer-int/create", {"policy": policy})
    assert (response.status_code, error_code(response)) == (400, "BadParameter")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("key_props", "kty"), "DSA"),
        (("key_props", "crv"), "P-999"),
        (("x509_props", "key_usage"), ["signEverything"]),
        (("secret_props", "contentType"), "text/plain"),
        (("lifetime_actions", 0, "action", "action_type"), "Renew"),
        (("lifetime_actions", 0, "trigger", "lifetime_percentage"), 100),
        (("lifetime_actions", 0, "trigger", "lifetime_percentage"), 0),
        (("lifetime_actions", 0, "trigger", "days_before_expiry"), 0),
        (("x509_props", "validity_months"), -1),
        (("x509_props", "validity_months"), 2**31),
        (("key_props", "exportable"), "yes"),
        (("x509_props", "sans", "dns_names"), "a.example"),
    ],
)
def test_spec_types_enums_and_ranges(call, path, value):
    response = call("POST", "/certificates/enum-check/create", {"policy": _replace(GOOD_POLICY, path, value)})
    assert (response.status_code, error_code(response)) == (400, "BadParameter")


def test_decipher_only_is_accepted(call):
    policy = copy.deepcopy(GOOD_POLICY)
    policy["key_props"] = {"kty": "EC", "crv": "P-256"}
    policy["x509_props"]["key_usage"] = ["digitalSignature", "keyAgreement", "decipherOnly"]
    assert call("POST", "/certificates/decipher/create", {"policy": policy}).status_code == 202
    got = call("GET", "/certificates/decipher")
    assert got.status_code == 200
    cert = x509.load_der_x509_certificate(base64.b64decode(got.json()["cer"]))
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_agreement and usage.decipher_only and not usage.encipher_only
    assert got.json()["policy"]["x509_props"]["key_usage"] == ["digitalSignature", "keyAgreement", "decipherOnly"]


def test_decipher_only_without_key_agreement_is_kept_in_the_policy_not_the_certificate(call):
    """Key Vault accepts the policy (the SDK's test_policy); RFC 5280 leaves the bit undefined there."""
    response = _create(call, "decipher-alone", key_usage=["digitalSignature", "decipherOnly"])
    assert response.status_code == 202, response.text
    got = call("GET", "/certificates/decipher-alone").json()
    assert got["policy"]["x509_props"]["key_usage"] == ["digitalSignature", "decipherOnly"]
    usage = x509.load_der_x509_certificate(base64.b64decode(got["cer"])).extensions.get_extension_for_class(
        x509.KeyUsage
    )
    assert usage.value.digital_signature and not usage.value.key_agreement


def test_body_required_where_the_spec_declares_one(call):
    for method, path in (
        ("POST", "/certificates/no-body/create"),
        ("POST", "/certificates/no-body/import"),
        ("POST", "/certificates/no-body/pending/merge"),
        ("PATCH", "/certificates/no-body/pending"),
    ):
        response = call(method, path)
        assert (response.status_code, error_code(response)) == (400, "BadParameter"), (method, path)


def test_deeply_nested_json_is_bad_parameter(call):
    response = call("POST", "/certificates/deep/create", raw=b"[" * 100_000 + b"]" * 100_000)
    assert (response.status_code, error_code(response)) == (400, "BadParameter")


def test_invalid_name_is_bad_parameter(call):
    response = call("POST", "/certificates/bad_name/create", {"policy": GOOD_POLICY})
    assert (response.status_code, error_code(response)) == (400, "BadParameter")
    response = call("GET", f"/certificates/{'a' * 128}")
    assert (response.status_code, error_code(response)) == (400, "BadParameter")


def test_unknown_api_version_is_bad_parameter(call):
    response = call("GET", "/certificates", api="1999-01-01")
    assert (response.status_code, error_code(response)) == (400, "BadParameter")
    message = response.json()["error"]["message"]
    assert message == (
        f"The specified version (1999-01-01) is not recognized. Consider using the latest supported version "
        f"({API_VERSIONS[0]})."
    )
    missing = call("GET", "/certificates", api=None)
    assert (missing.status_code, error_code(missing)) == (400, "BadParameter")


def test_every_declared_api_version_is_served(call):
    assert {version: call("GET", "/certificates", api=version).status_code for version in API_VERSIONS} == {
        version: 200 for version in API_VERSIONS
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/secrets/some-secret/backup"),
        ("GET", "/keys/some-key"),
        ("PUT", "/certificates/some-cert"),
        ("GET", "/certificates/some-cert/versions/extra/segment"),
        ("OPTIONS", "/certificates"),
    ],
)
def test_unknown_route_is_404_but_not_certificate_not_found(call, method, path):
    response = call(method, path)
    assert response.status_code == 404
    assert error_code(response) == "NotFound"


@pytest.mark.parametrize("length", ["abc", "-5", "\u00b2"])
def test_invalid_content_length_is_answered(emulator, length):
    url = urlsplit(emulator.url)
    context = ssl.create_default_context(cafile=emulator.ca_bundle)
    request = (
        f"POST /certificates/cl/create?api-version={API} HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Authorization: Bearer {emulator.token}\r\nContent-Length: {length}\r\n\r\n{{}}"
    )
    with (
        socket.create_connection((url.hostname, url.port), timeout=TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname=url.hostname) as tls,
    ):
        tls.sendall(request.encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = tls.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
