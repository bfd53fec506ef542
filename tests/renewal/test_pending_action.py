"""What a renewal does with a pending operation it finds, and how a pending create's placeholder is told apart."""

from __future__ import annotations

import datetime as dt

import pytest

from renewal.keyvault import CertificateSnapshot, CertificateSummary, PendingOperation, is_placeholder
from renewal.messages import RenewalRequest
from renewal.pending import pending_action

MINE = RenewalRequest("kv1", "web", "near_expiry", kv_request_id="op-mine")
NOW = dt.datetime(2030, 6, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("operation", "action", "reason"),
    [
        (None, "vanished", "pending_vanished"),
        (PendingOperation("op-x", "completed", None), "vanished", "pending_vanished"),
        (PendingOperation("op-x", "failed", None, "CA said no"), "replace", "pending_failed"),
        (PendingOperation("op-x", "cancelled", b"csr"), "replace", "pending_cancelled"),
        (PendingOperation("op-mine", "inprogress", b"csr"), "reuse", "own_pending"),
        (PendingOperation("op-x", "inprogress", b"csr"), "reuse", "orphaned_pending"),
        (PendingOperation(None, "inprogress", b"csr"), "reuse", "orphaned_pending"),
    ],
)
def test_pending_action(operation, action, reason) -> None:
    decision = pending_action(operation, MINE)
    assert (decision.action, decision.reason) == (action, reason)


def snapshot(enabled: bool, cer: bytes | None) -> CertificateSnapshot:
    return CertificateSnapshot("kv1", "web", "v2", enabled, None, None, "Unknown", {}, cer, None)


def summary(enabled: bool, has_certificate: bool) -> CertificateSummary:
    return CertificateSummary("web", "v2", enabled, None, NOW, {}, has_certificate)  # a placeholder has dates too


@pytest.mark.parametrize(
    ("value", "placeholder"),
    [
        (snapshot(enabled=False, cer=None), True),  # Key Vault's placeholder for a pending create
        (snapshot(enabled=False, cer=b"der"), False),  # disabled by an operator: still a certificate
        (snapshot(enabled=True, cer=b"der"), False),
        (summary(enabled=False, has_certificate=False), True),
        (summary(enabled=False, has_certificate=True), False),
        (summary(enabled=True, has_certificate=True), False),
    ],
)
def test_a_placeholder_is_disabled_and_holds_no_certificate(value, placeholder) -> None:
    assert is_placeholder(value) is placeholder
