"""Where a first issuance stands (``renewal.issuance.issuance_step``), as a table: from what Key Vault and the
certificate's record show, never by asking the CA again."""

from __future__ import annotations

import datetime as dt

import pytest

from renewal.issuance import NO_VERSION, issuance_step
from renewal.keyvault import CertificateSnapshot, PendingOperation
from renewal.ledger import RenewalRecord
from renewal.messages import RenewalRequest

NOW = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)
REQUEST = RenewalRequest("kv1", "new", "issue", correlation_id="mine", ca_profile="server")
IN_PROGRESS = PendingOperation("op-1", "inprogress", b"csr")


def cert(cer: bytes | None = b"der", correlation: str = "someone") -> CertificateSnapshot:
    tags = {"certlc-correlation": correlation}
    return CertificateSnapshot("kv1", "new", "v1", cer is not None, None, None, "Unknown", tags, cer, None)


def record(owner: str = "other", state: str = "pending", **fields) -> RenewalRecord:  # type: ignore[no-untyped-def]
    return RenewalRecord(owner, state, NOW + dt.timedelta(minutes=5), version=NO_VERSION, **fields)


@pytest.mark.parametrize(
    ("existing", "pending", "found", "asked", "step"),
    [
        (None, None, None, REQUEST, "create"),
        (cert(cer=None), IN_PROGRESS, None, REQUEST, "take_over"),  # Key Vault shows the pending version
        (None, IN_PROGRESS, None, REQUEST, "take_over"),  # or shows nothing until the merge
        (cert(), None, None, REQUEST, "exists"),  # never replaced
        (cert(correlation="mine"), None, None, REQUEST, "issued_already"),  # a redelivery after the merge
        (None, IN_PROGRESS, record(), REQUEST, "in_flight"),  # another issuance waits for its CA
        (None, IN_PROGRESS, record(owner="mine", ca_request_id="7"), REQUEST, "poll_ca_request"),
        (None, IN_PROGRESS, None, RenewalRequest("kv1", "new", "issue", ca_request_id="7"), "poll_ca_request"),
        (None, IN_PROGRESS, record(owner="mine", state="issued", chain_pem=("pem",)), REQUEST, "merge_recorded_chain"),
        (None, None, record(state="working", chain_pem=("pem",)), REQUEST, "merge_recorded_chain"),  # owner gone
        (None, None, RenewalRecord("other", "merged", NOW, version="v0", chain_pem=("pem",)), REQUEST, "create"),
    ],
)
def test_where_an_issuance_stands(existing, pending, found, asked, step) -> None:
    assert issuance_step(existing, pending, found, asked, NOW).step == step
