"""Key Vault's service limits in the emulator: weights by key type, the subscription ceiling, Retry-After modes
and the per-caller counts; the arithmetic on the Throttle class, the wiring through the real SDK."""

from __future__ import annotations

import uuid

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.keyvault.certificates import CertificatePolicy, KeyType
from localazure.emulators.keyvault.errors import KeyVaultError
from localazure.emulators.keyvault.throttling import RETRY_AFTER_ENV, Throttle, weight

NO_RETRY = {"retry_total": 0}
# Without Retry-After, azure-core backs off exponentially (factor * 2**n) but retries a bad status only 3 times by
# default: more status retries, so the backoff outlasts the shrunk window.
FAST_RETRY = {"retry_backoff_factor": 0.01, "retry_status": 10}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def pending_policy(key_type: KeyType | None = None, key_size: int | None = None, curve: str | None = None):
    """A manual (issuer Unknown) policy: the create makes a key and a CSR, no certificate."""
    return CertificatePolicy(
        issuer_name="Unknown", subject="CN=limits", key_type=key_type, key_size=key_size, key_curve_name=curve
    )


def throttle(retry_after: str = "always", **spec) -> Throttle:
    limiter = Throttle(retry_after)
    limiter.configure({"enabled": True, "time_scale": 1.0, **spec})
    return limiter


def granted_until_429(limiter: Throttle, vault: str, kind: str, cost: int, most: int = 100_000) -> int:
    for granted in range(most):
        try:
            limiter.check(vault, kind, cost)
        except KeyVaultError as exc:
            assert exc.status == 429
            return granted
    raise AssertionError(f"no 429 after {most} requests")


# -- the arithmetic ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key_props", "create", "other"),
    [
        ({"kty": "RSA", "key_size": 2048}, 1, 1),
        ({"kty": "RSA", "key_size": 3072}, 1, 4),
        ({"kty": "RSA", "key_size": 4096}, 1, 8),
        ({"kty": "EC", "crv": "P-384"}, 1, 1),
        ({"kty": "RSA-HSM", "key_size": 2048}, 2, 2),
        ({"kty": "RSA-HSM", "key_size": 3072}, 2, 8),
        ({"kty": "RSA-HSM", "key_size": 4096}, 2, 16),
        ({"kty": "EC-HSM", "crv": "P-256K"}, 2, 2),
        (None, 1, 1),  # secrets, issuers, lists: no key type
        ({}, 1, 1),
    ],
)
def test_weights_follow_the_service_limits_table(key_props, create, other):
    assert (weight("create", key_props), weight("other", key_props)) == (create, other)


@pytest.mark.parametrize(
    ("kind", "key_props", "granted"),
    [
        ("create", {"kty": "RSA"}, 20),
        ("create", {"kty": "RSA-HSM"}, 10),
        ("other", {"kty": "RSA", "key_size": 4096}, 500),  # 8x faster than RSA 2048's 4,000
        ("other", {"kty": "RSA-HSM", "key_size": 2048}, 2000),
        ("other", {"kty": "RSA-HSM", "key_size": 4096}, 250),
    ],
)
def test_weighted_budget_per_vault(kind, key_props, granted):
    assert granted_until_429(throttle(), "kv1", kind, weight(kind, key_props)) == granted


def test_weights_share_one_budget():
    limiter = throttle()
    for _ in range(5):
        limiter.check("kv1", "create", 2)  # 5 HSM creates: 10 of 20
    assert granted_until_429(limiter, "kv1", "create", 1) == 10  # software creates fill the rest


def test_subscription_ceiling_is_five_vaults_worth():
    limiter = throttle()
    vaults = [f"kv{i}" for i in range(1, 7)]
    for vault in vaults[:5]:
        assert granted_until_429(limiter, vault, "create", 1) == 20
    with pytest.raises(KeyVaultError) as sixth:
        limiter.check(vaults[5], "create", 1)  # the vault's own budget is untouched: the subscription's is spent
    assert "subscription default" in sixth.value.message
    assert limiter.stats()["subscriptions"]["default"]["throttled_by"] == {"vault": 5, "subscription": 1}

    split = throttle(subscriptions={"sub-b": ["kv6"]})
    for vault in vaults[:5]:
        granted_until_429(split, vault, "create", 1)
    split.check("kv6", "create", 1)  # its own subscription
    assert split.settings()["subscriptions"] == {"sub-b": ["kv6"]}


def test_subscription_ceiling_is_weighted():
    limiter = throttle()
    for vault in ("a1", "a2", "a3", "a4"):
        assert granted_until_429(limiter, vault, "other", 16) == 250  # HSM RSA-4096: 4,000 each
    assert granted_until_429(limiter, "a5", "other", 16) == 250
    assert granted_until_429(limiter, "a6", "other", 1) == 0  # 20,000 spent across the subscription


@pytest.mark.parametrize(
    ("mode", "present"),
    [("always", [True] * 4), ("never", [False] * 4), ("mixed", [True, False, True, False])],
)
def test_retry_after_modes(mode, present):
    limiter = throttle(retry_after=mode)
    granted_until_429(limiter, "kv1", "create", 2)  # the first 429
    seen = [True]
    for _ in range(3):
        with pytest.raises(KeyVaultError) as exc:
            limiter.check("kv1", "create", 2)
        seen.append("Retry-After" in exc.value.headers)
    first = Throttle(mode)
    first.configure({"enabled": True})
    for _ in range(10):
        first.check("kv1", "create", 2)
    with pytest.raises(KeyVaultError) as one:
        first.check("kv1", "create", 2)
    assert ["Retry-After" in one.value.headers, *seen[1:]] == present


def test_retry_after_mode_from_environment(monkeypatch):
    monkeypatch.setenv(RETRY_AFTER_ENV, "mixed")
    limiter = Throttle()
    assert limiter.settings()["retry_after"] == limiter.settings()["retry_after_default"] == "mixed"
    limiter.configure({"retry_after": "never"})
    assert limiter.configure({"retry_after": None})["retry_after"] == "mixed"  # null: back to the start-up mode
    monkeypatch.setenv(RETRY_AFTER_ENV, "sometimes")
    with pytest.raises(ValueError, match=RETRY_AFTER_ENV):
        Throttle()


def test_configuration_is_checked():
    limiter = Throttle("always")
    with pytest.raises(ValueError, match="retry_after"):
        limiter.configure({"retry_after": "sometimes"})
    with pytest.raises(ValueError, match="two subscriptions"):
        limiter.configure({"subscriptions": {"a": ["kv1"], "b": ["kv1"]}})
    with pytest.raises(ValueError, match="list of vault names"):
        limiter.configure({"subscriptions": {"a": "kv1"}})


def test_429s_do_not_count_and_the_window_slides(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("localazure.emulators.keyvault.throttling.time.monotonic", lambda: clock[0])
    limiter = throttle(time_scale=0.1)  # 1 s window
    for _ in range(10):
        limiter.check("kv1", "create", 2)
        clock[0] += 0.05
    for _ in range(5):
        with pytest.raises(KeyVaultError) as exc:
            limiter.check("kv1", "create", 2)
    assert exc.value.headers["Retry-After"] == "1"
    clock[0] = 1000.0 + 1.0  # the first create left the window: room for one HSM create, not two
    limiter.check("kv1", "create", 2)
    with pytest.raises(KeyVaultError):
        limiter.check("kv1", "create", 2)
    counts = limiter.stats()["vaults"]["kv1"]
    assert counts["granted"]["create"] == {"requests": 11, "weight": 22}
    assert counts["throttled"]["create"] == 6


def test_counts_are_kept_with_enforcement_off():
    limiter = Throttle("always")
    for _ in range(30):
        limiter.check("kv1", "create", 2, "agent")
    assert limiter.stats()["callers"]["agent"]["granted"]["create"] == {"requests": 30, "weight": 60}


# -- through the emulator and the SDK ----------------------------------------------------------------------------
def caller_counts(stats: dict, agent: str) -> dict:
    found = [counts for caller, counts in stats["callers"].items() if caller.startswith(agent)]
    assert len(found) == 1, stats["callers"]
    return found[0]


def test_hsm_creates_hit_the_limit_at_ten(kv_client, kv_control):
    client = kv_client("kv2", **NO_RETRY)
    kv_control.throttling(True, time_scale=1.0, retry_after="always")
    policy = pending_policy(KeyType.ec_hsm, curve="P-256")
    for _ in range(10):
        assert client.begin_create_certificate(unique("hsm"), policy).status() == "inprogress"
    with pytest.raises(HttpResponseError) as throttled:
        client.begin_create_certificate(unique("hsm"), policy)
    assert throttled.value.status_code == 429
    message = throttled.value.response.json()["error"]["message"]
    assert "20 create transaction weight" in message and "vault kv2" in message and "weighs 2" in message
    counts = kv_control.throttle_stats()["vaults"]["kv2"]
    assert counts["granted"]["create"] == {"requests": 10, "weight": 20}
    assert counts["throttled"]["create"] == 1


def test_operations_on_a_certificate_weigh_its_key(kv_client, kv_secret_client, kv_control):
    client = kv_client("kv1", **NO_RETRY)
    name = unique("rsa4096")
    client.begin_create_certificate(name, pending_policy(KeyType.rsa, key_size=4096))
    self_signed = unique("ec")
    client.begin_create_certificate(self_signed, CertificatePolicy.get_default(), _polling_interval=0.01).result()
    kv_control.throttling(False)
    client.get_certificate_operation(name)
    client.get_certificate_policy(name)
    client.get_certificate(self_signed)  # the default policy: RSA 2048
    kv_secret_client("kv1", **NO_RETRY).get_secret(self_signed)  # secrets carry no key type
    counts = kv_control.throttle_stats()["vaults"]["kv1"]
    assert counts["granted"]["other"] == {"requests": 4, "weight": 8 + 8 + 1 + 1}


def test_hsm_rsa_4096_reads_exhaust_the_window_sixteen_times_faster(kv_client, kv_control):
    client = kv_client("kv2", **NO_RETRY)
    name = unique("hsm4096")
    client.begin_create_certificate(name, pending_policy(KeyType.rsa_hsm, key_size=4096))
    kv_control.throttling(True, time_scale=1.0, retry_after="always")
    granted = 0
    with pytest.raises(HttpResponseError) as throttled:
        while granted <= 4000:
            client.get_certificate_policy(name)
            granted += 1
    assert (throttled.value.status_code, granted) == (429, 250)


def test_429_without_retry_after_through_the_sdk(kv_client, kv_control):
    """azure-core retries a 429 with Retry-After whatever the method, one without it only on GET/PUT/DELETE
    (never POST), with its exponential backoff: a create is not retried, a read outlasts the window."""
    client = kv_client("kv2", **FAST_RETRY)
    name = unique("hsm4096")
    client.begin_create_certificate(name, pending_policy(KeyType.rsa_hsm, key_size=4096))
    kv_control.throttling(True, time_scale=0.3, retry_after="never")  # a 3 s window
    policy = pending_policy(KeyType.ec_hsm, curve="P-256")
    for _ in range(10):
        client.begin_create_certificate(unique("hsm"), policy)
    kv_control.clear_requests()
    with pytest.raises(HttpResponseError) as create:
        client.begin_create_certificate(unique("hsm"), policy)
    assert create.value.status_code == 429 and "Retry-After" not in create.value.response.headers
    assert [r["status"] for r in kv_control.requests()] == [429]  # one try: POST is not retried

    for _ in range(250):  # HSM RSA 4096: 16 of 4,000 each
        client.get_certificate_policy(name, retry_total=0)
    with pytest.raises(HttpResponseError) as read:
        client.get_certificate_policy(name, retry_total=0)
    assert read.value.status_code == 429
    kv_control.clear_requests()
    assert client.get_certificate_policy(name).key_size == 4096  # retried until the window slid
    statuses = [r["status"] for r in kv_control.requests()]
    assert statuses[-1] == 200 and set(statuses[:-1]) == {429}
    assert kv_control.throttle_stats()["vaults"]["kv2"]["throttled"]["other"] == 1 + statuses.count(429)


@pytest.mark.parametrize(
    ("mode", "present"), [("always", [True, True]), ("never", [False, False]), ("mixed", [True, False])]
)
def test_retry_after_on_the_wire(keyvault_emulator, kv_control, mode, present):
    kv_control.throttling(True, time_scale=1.0, retry_after=mode)
    url = keyvault_emulator.vault_urls["kv1"]
    headers = {"Authorization": f"Bearer {keyvault_emulator.token}"}
    body = {
        "policy": {"key_props": {"kty": "EC-HSM"}, "x509_props": {"subject": "CN=t"}, "issuer": {"name": "Unknown"}}
    }
    with requests.Session() as session:
        session.trust_env = False
        answers = [
            session.post(
                f"{url}/certificates/{unique('mode')}/create?api-version=7.5",
                json=body,
                headers=headers,
                verify=keyvault_emulator.ca_bundle,
            )
            for _ in range(12)
        ]
    assert [a.status_code for a in answers] == [202] * 10 + [429] * 2
    assert ["Retry-After" in a.headers for a in answers[10:]] == present
    assert all(a.json()["error"]["code"] == "Throttled" for a in answers[10:])


def test_counts_per_caller_vault_and_subscription(kv_client, kv_control):
    first = kv_client("kv1", user_agent="certlc-limits-first", **NO_RETRY)
    second = kv_client("kv1", user_agent="certlc-limits-second", **NO_RETRY)
    other_vault = kv_client("kv2", user_agent="certlc-limits-second", **NO_RETRY)
    settings = kv_control.throttling(True, time_scale=1.0, subscriptions={"sub-a": ["kv1"], "sub-b": ["kv2"]})
    assert settings["subscriptions"] == {"sub-a": ["kv1"], "sub-b": ["kv2"]}
    assert settings["stats"] == {"callers": {}, "vaults": {}, "subscriptions": {}}
    policy = pending_policy(KeyType.rsa_hsm, key_size=2048)
    names = [unique("who") for _ in range(10)]
    for name in names:
        first.begin_create_certificate(name, policy)
    for _ in range(2):
        with pytest.raises(HttpResponseError) as throttled:
            second.begin_create_certificate(unique("who"), policy)
        assert throttled.value.status_code == 429
    second.get_certificate_policy(names[0])  # HSM RSA 2048: weight 2
    other_vault.begin_create_certificate(unique("who"), policy)  # kv2, sub-b: its own budgets

    stats = kv_control.throttle_stats()
    one, two = caller_counts(stats, "certlc-limits-first"), caller_counts(stats, "certlc-limits-second")
    assert one["granted"]["create"] == {"requests": 10, "weight": 20}
    assert one["throttled"] == {"create": 0, "other": 0}
    assert two["granted"]["create"] == {"requests": 1, "weight": 2}
    assert two["granted"]["other"] == {"requests": 1, "weight": 2}
    assert two["throttled"] == {"create": 2, "other": 0}
    assert two["throttled_by"] == {"vault": 2, "subscription": 0}
    assert stats["vaults"]["kv1"]["throttled"]["create"] == 2
    assert stats["subscriptions"]["sub-a"]["granted"]["create"] == {"requests": 10, "weight": 20}
    assert stats["subscriptions"]["sub-b"]["granted"]["create"] == {"requests": 1, "weight": 2}
    assert kv_control.call("GET", "throttling")["stats"] == stats

    kv_control.throttling(True)
    assert kv_control.throttle_stats() == {"callers": {}, "vaults": {}, "subscriptions": {}}


def test_bad_throttling_settings_are_refused(kv_control):
    with pytest.raises(RuntimeError, match="HTTP 400"):
        kv_control.throttling(True, retry_after="sometimes")
    with pytest.raises(RuntimeError, match="two subscriptions"):
        kv_control.throttling(True, subscriptions={"a": ["kv1"], "b": ["kv1"]})
