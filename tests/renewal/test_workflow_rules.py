"""The workflow's own rules, as tables: how it acts on the one decision, what a failure means, where a renewal
picks up. The workflow only interprets these; `tests/pipeline` runs them end to end."""

from __future__ import annotations

import datetime as dt
from typing import get_args

import pytest

from renewal.ca.base import CaConfigError, CaError, CaUnavailable, Denied
from renewal.decide import Outcome, Reason, Verdict
from renewal.failures import Permanent, Transient, failure_outcome
from renewal.keyvault import KeyVaultError
from renewal.ledger import LockLost, LockUnavailable, RenewalRecord
from renewal.messages import RenewalRequest
from renewal.resume import resume_action
from renewal.workflow import workflow_act

NOW = dt.datetime(2030, 6, 1, tzinfo=dt.UTC)
DENIED = Denied("no", "42", "Denied by Policy Module")


@pytest.mark.parametrize(
    ("outcome", "dry_run", "act"),
    [
        ("renew", False, "renew"),
        ("renew", True, "rehearse"),  # a dry run says what the real run would do, and does nothing
        ("skip", False, "stop"),
        ("skip", True, "stop"),
        ("wait", False, "stop"),  # another renewal owns it: that one finishes it
        ("fail", False, "fail"),  # certlc cannot renew it as it is: a permanent failure, with its alert
        ("fail", True, "fail"),  # and the dry run fails the same way
        ("reject", False, "fail"),
    ],
)
def test_workflow_act(outcome: Outcome, dry_run: bool, act: str) -> None:
    assert workflow_act(Verdict(outcome, Reason.DUE, "m"), dry_run) == act


def test_every_outcome_has_an_act() -> None:
    for outcome in get_args(Outcome):
        assert workflow_act(Verdict(outcome, Reason.DUE, "m"), False) in ("renew", "stop", "fail")


@pytest.mark.parametrize(
    ("exc", "kind", "reason", "retry_after", "extra"),
    [
        (Transient("pending_vanished", "gone", 30), "retry", "pending_vanished", 30, {}),
        (Permanent("csr_policy_mismatch", "bad CSR"), "permanent", "csr_policy_mismatch", None, {}),
        (Permanent("ca_denied", "no", DENIED), "permanent", "ca_denied", None, {"denied": DENIED}),
        (KeyVaultError("throttled", transient=True, retry_after_seconds=9), "retry", "keyvault_unavailable", 9, {}),
        (KeyVaultError("forbidden", transient=False), "permanent", "keyvault_error", None, {}),
        (CaUnavailable("down", 120), "retry", "ca_unavailable", 120, {}),
        (CaUnavailable("timed out", None, "req-7"), "retry", "ca_unavailable", None, {"ca_request_id": "req-7"}),
        (CaConfigError("no such profile"), "permanent", "ca_error", None, {}),
        (CaError("unreadable answer"), "permanent", "ca_error", None, {}),
        (LockLost("lease lapsed"), "lost", "lock_lost", None, {}),  # fenced off: whoever holds the lock decides
        (LockUnavailable("storage down"), "retry", "lock_unavailable", None, {"with_record": False}),
        (ZeroDivisionError("x"), "retry", "unexpected_error", None, {"unexpected": True}),  # never a silent drop
    ],
)
def test_failure_outcome(exc: Exception, kind: str, reason: str, retry_after: int | None, extra: dict) -> None:
    failure = failure_outcome(exc)
    assert (failure.kind, failure.reason, failure.retry_after) == (kind, reason, retry_after)
    for name, value in extra.items():
        assert getattr(failure, name) == value
    assert failure.message


def test_only_a_denial_or_a_configuration_error_is_permanent() -> None:
    """A CA down for a weekend, Key Vault throttling, the lock's storage: never a case for a person by itself."""
    transient = [CaUnavailable("down"), KeyVaultError("503", transient=True), LockUnavailable("x"), OSError("x")]
    assert {failure_outcome(exc).kind for exc in transient} == {"retry"}


REQUEST = RenewalRequest("kv1", "web", "sweep", version="v1", correlation_id="me")


def record(owner: str = "me", version: str = "v1", **fields: object) -> RenewalRecord:
    return RenewalRecord(owner=owner, state="working", next_action_at=NOW, version=version, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("found", "asked", "step", "ca", "request_id", "takes_over"),
    [
        (None, REQUEST, "submit", "local", None, False),  # nothing done yet
        (record(), REQUEST, "submit", "local", None, False),  # this renewal's record, before the CA answered
        (record(version="v0", chain_pem=("PEM",), ca="acme"), REQUEST, "submit", "local", None, False),  # leftovers
        (record(chain_pem=("PEM",), ca="acme"), REQUEST, "merge_recorded_chain", "acme", None, False),
        (record(owner="gone", chain_pem=("PEM",), ca="acme"), REQUEST, "merge_recorded_chain", "acme", None, True),
        (record(ca_request_id="r1", ca="adcs"), REQUEST, "poll_ca_request", "adcs", "r1", False),  # the CA that took it
        (record(owner="gone", ca_request_id="r1", ca="adcs"), REQUEST, "poll_ca_request", "adcs", "r1", True),
        (None, RenewalRequest("kv1", "web", "sweep", ca_request_id="r2"), "poll_ca_request", "local", "r2", False),
        (record(owner="gone"), REQUEST, "submit", "local", None, True),  # an orphan: its CSR is reused
        (record(ca="adcs"), REQUEST, "submit", "local", None, False),  # a CA named but nothing asked of it yet
    ],
)
def test_resume_action(found, asked, step, ca, request_id, takes_over) -> None:
    resume = resume_action(found, asked, "v1", "local")
    assert (resume.step, resume.ca, resume.ca_request_id, resume.takes_over) == (step, ca, request_id, takes_over)
    assert resume.record is (found if found is not None and found.version == "v1" else None)
