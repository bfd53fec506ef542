import json

import pytest

from ingestion.upload import CHUNK_BUDGET_BYTES, IngestionConfigError, chunks, target_from_env


def test_chunks_fit_the_budget_as_serialized_and_keep_order():
    rows = [{"CertName": f"c{i}", "Pad": "x" * (i % 700)} for i in range(5000)]
    parts = list(chunks(rows))
    assert len(parts) > 1
    assert [r for part in parts for r in part] == rows
    for part in parts:
        assert len(json.dumps(part).encode()) <= CHUNK_BUDGET_BYTES


def test_a_small_budget_splits_exactly_at_the_limit():
    rows = [{"a": "x"}] * 3  # each '{"a": "x"}' is 10 bytes
    assert [len(p) for p in chunks(rows, budget=2 + 10 + 2 + 10)] == [2, 1]


def test_target_requires_settings_and_https():
    with pytest.raises(IngestionConfigError, match="CERTLC_DCE_ENDPOINT and CERTLC_DCR_IMMUTABLE_ID"):
        target_from_env({})
    with pytest.raises(IngestionConfigError, match="https"):
        target_from_env({"CERTLC_DCE_ENDPOINT": "http://127.0.0.1:1", "CERTLC_DCR_IMMUTABLE_ID": "dcr-1"})
    target = target_from_env({"CERTLC_DCE_ENDPOINT": "https://dce.example/", "CERTLC_DCR_IMMUTABLE_ID": "dcr-1"})
    assert (target.endpoint, target.stream) == ("https://dce.example", "Custom-CertlcStatus_CL")
