"""One ACME certificate per renewal, whatever fails after the CA has issued it.

Each delivery runs on a fresh runtime (another instance) with the local stack's Key Vault and lock, a queue of its
own, and a real pebble; a fault is injected once, after issuance. The next delivery merges what the CA issued: from
the record, or by following the order the failed attempt named. pebble finalizes exactly one order.
"""

from __future__ import annotations

import errno
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from renewal import keyvault, ledger
from renewal.ca import acme
from renewal.ca.acme import AcmeAuthority
from renewal.messages import RenewalRequest
from renewal.runtime import build_runtime
from tests.pipeline.helpers import audit, seed, unique, versions

DUE = {"certlc-renew-before-days": "450"}  # due now, yet far from Key Vault's own NearExpiry event


@pytest.fixture
def acme_settings(stack: Any, pebble: Any, tmp_path: Path) -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return stack.settings | {
        # the test delivers each retry itself: on the stack's own queue its host would race it with other settings
        "CERTLC_QUEUE_NAME": f"acme-once-{uuid.uuid4().hex[:10]}",
        "CERTLC_CA": "acme",
        "CERTLC_ACME_DIRECTORY": pebble.directory_url,
        "CERTLC_ACME_ACCOUNT_KEY": key.decode(),
        "CERTLC_ACME_CA_BUNDLE": str(pebble.ca_bundle),
        "CERTLC_ACME_HTTP01_WEBROOT": str(tmp_path / "www"),  # pebble takes any answer here (always valid)
    }


@pytest.fixture
def finalized(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The orders certlc asked pebble to sign, in order."""
    calls: list[str] = []
    finalize = AcmeAuthority._finalize

    def counted(self: AcmeAuthority, client: Any, order: Any) -> Any:
        calls.append(order.uri)
        return finalize(self, client, order)

    monkeypatch.setattr(AcmeAuthority, "_finalize", counted)
    return calls


def _once(original: Callable[..., Any], error: Exception, when: Callable[..., bool] = lambda *a: True) -> Any:
    """``original``, except that the first call ``when`` holds raises ``error``."""
    left = [error]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if left and when(*args, **kwargs):
            raise left.pop()
        return original(*args, **kwargs)

    return wrapper


def _adapter_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """The adapter fails after pebble issued: the order is named, the retry follows it."""
    monkeypatch.setattr(acme, "_split_chain", _once(acme._split_chain, OSError(errno.EROFS, "Read-only file system")))


def _record_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """The issued chain cannot be recorded (the lock's storage fails): the retry follows the order."""
    failure = ledger.LockUnavailable("cannot write the renewal record: injected")
    save = _once(ledger._HeldBlob.save, failure, lambda held, record: bool(record.chain_pem))
    monkeypatch.setattr(ledger._HeldBlob, "save", save)


def _merge_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """The merge fails with an error nobody expected: the retry merges the recorded chain."""
    monkeypatch.setattr(keyvault.KeyVault, "merge", _once(keyvault.KeyVault.merge, OSError(errno.EIO, "I/O error")))


@pytest.mark.parametrize(
    ("fault", "reason"),
    [(_adapter_fails, "ca_unavailable"), (_record_fails, "lock_unavailable"), (_merge_fails, "unexpected_error")],
)
def test_a_failure_after_issuance_never_issues_a_second_certificate(
    stack: Any, acme_settings: dict[str, str], finalized: list[str], monkeypatch: pytest.MonkeyPatch, fault, reason
) -> None:
    name = unique("acme-once")
    old = seed(stack, name, days_left=400, lifetime_days=500, tags=DUE)
    fault(monkeypatch)

    first = build_runtime(acme_settings).workflow.handle(RenewalRequest("kv1", name, "manual"))
    assert (first.status, first.reason) == ("retrying", reason), first.message
    assert len(finalized) == 1

    second = build_runtime(acme_settings).workflow.handle(first.request)

    assert second.status == "renewed", (second.reason, second.message)
    assert len(finalized) == 1  # pebble signed one order, once
    assert len(versions(stack, name)) == 2
    events = [record["event"] for record in audit(stack, name)]
    assert events.count("submitted") == 1 and events.count("merged") == 1
    assert second.new_version != old.properties.version
