"""The audit trail: JSON lines through logging and sinks, UTC timestamps, redaction of secrets."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from renewal.audit import REDACTED, Audit, AuditEvent, JsonlFileSink, MemorySink, audit_from_env, is_secret_key

NOW = datetime(2030, 1, 2, 12, 0, 0, 250000, tzinfo=timezone(timedelta(hours=-5)))
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjZXJ0bGMifQ.c2lnbmF0dXJlLXBhcnQ"
SAS_SIG = "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA%3D%3D"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def base(**fields: object) -> dict[str, object]:
    return {"vault": "kv-prod", "name": "web", "correlation_id": "c0ffee", "attempt": 2, **fields}


@pytest.fixture
def audit_and_sink() -> tuple[Audit, MemorySink]:
    sink = MemorySink()
    return Audit([sink], clock=lambda: NOW), sink


def test_one_json_line_through_the_certlc_audit_logger(
    audit_and_sink: tuple[Audit, MemorySink], caplog: pytest.LogCaptureFixture
) -> None:
    audit, sink = audit_and_sink
    with caplog.at_level(logging.INFO, logger="certlc.audit"):
        audit.record(AuditEvent.MERGED, **base(old_version="a1", new_version="b2", ca="local"))  # type: ignore[arg-type]
    [log_record] = [r for r in caplog.records if r.name == "certlc.audit"]
    line = json.loads(log_record.getMessage())
    assert "\n" not in log_record.getMessage()
    assert line == {
        "ts": "2030-01-02T17:00:00.250Z",
        "event": "merged",
        "vault": "kv-prod",
        "name": "web",
        "correlation_id": "c0ffee",
        "attempt": 2,
        "old_version": "a1",
        "new_version": "b2",
        "ca": "local",
    }
    assert sink.records == [line]


def test_events_are_checked(audit_and_sink: tuple[Audit, MemorySink]) -> None:
    audit, sink = audit_and_sink
    audit.record("csr_created", **base())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown audit event 'renewd'"):
        audit.record("renewd", **base())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reserved"):
        audit.record("skipped", **base(ts="yesterday"))  # type: ignore[arg-type]
    assert sink.events() == ["csr_created"]


def test_naive_clock_is_refused() -> None:
    audit = Audit(clock=lambda: datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        audit.record("issued", **base())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "key",
    ["password", "smtp_password", "SMTP-PASSWORD", "sasToken", "token", "client_secret", "Authorization",
     "sig", "AccountKey", "api_key", "key", "private_key", "connection_string", "ConnectionString",
     "storageConnStr"],
)  # fmt: skip
def test_secret_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key", ["name", "vault", "key_type", "key_size", "kv_request_id", "ca_request_id", "thumbprint", "design"]
)
def test_harmless_keys(key: str) -> None:
    assert not is_secret_key(key)


def test_secret_fields_and_values_are_redacted(
    audit_and_sink: tuple[Audit, MemorySink], caplog: pytest.LogCaptureFixture
) -> None:
    audit, sink = audit_and_sink
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
        .strip()
    )
    body = pem.splitlines()[1]
    hostile = {
        "smtp_password": "hunter2-plain",
        "sasToken": "plain-token-value",
        "detail": f"merge failed; key was {pem} oops",
        "error": f"401 from CA, header Authorization: Bearer {JWT}",
        "queue_url": f"https://acct.queue.core.windows.net/q?sv=2024-01-01&sig={SAS_SIG}&se=2030",
        "conn": f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={ACCOUNT_KEY};EndpointSuffix=x",
        "nested": {"headers": {"authorization": "Basic dXNlcjpwYXNz"}, "tokens": ["t1", "t2"]},
        "list": [f"jwt {JWT}", "fine"],
        "key_type": "EC",
    }
    with caplog.at_level(logging.INFO, logger="certlc.audit"):
        record = audit.record("failed", **base(**hostile))  # type: ignore[arg-type]

    written = caplog.text + json.dumps(sink.records)
    for secret in ("hunter2-plain", "plain-token-value", body, JWT, SAS_SIG, ACCOUNT_KEY, "dXNlcjpwYXNz", "t1"):
        assert secret not in written, secret
    assert record["smtp_password"] == REDACTED
    assert record["sasToken"] == REDACTED
    assert record["detail"] == f"merge failed; key was {REDACTED} oops"
    assert record["error"] == f"401 from CA, header Authorization: Bearer {REDACTED}"
    assert record["queue_url"] == f"https://acct.queue.core.windows.net/q?sv=2024-01-01&sig={REDACTED}&se=2030"
    assert f"AccountKey={REDACTED};EndpointSuffix=x" in record["conn"]
    assert record["nested"] == {"headers": {"authorization": REDACTED}, "tokens": REDACTED}
    assert record["list"] == [f"jwt {REDACTED}", "fine"]
    assert record["key_type"] == "EC"
    assert record["name"] == "web"


def test_jsonl_file_sink_and_settings(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = audit_from_env({"CERTLC_AUDIT_FILE": str(path)}, clock=lambda: NOW)
    audit.record("submitted", **base(ca="acme", profile="web"))  # type: ignore[arg-type]
    audit.record(AuditEvent.ISSUED, **base(expires=datetime(2031, 1, 1, tzinfo=UTC)))  # type: ignore[arg-type]
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [line["event"] for line in lines] == ["submitted", "issued"]
    assert lines[1]["expires"] == "2031-01-01T00:00:00.000Z"
    assert audit_from_env({}).sinks == ()


def test_a_failing_sink_does_not_fail_the_record(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    memory = MemorySink()
    audit = Audit([JsonlFileSink(tmp_path / "missing-dir" / "audit.jsonl"), memory], clock=lambda: NOW)
    with caplog.at_level(logging.WARNING, logger="certlc.audit"):
        audit.record("notified", **base(kind="renewed"))  # type: ignore[arg-type]
    assert memory.events() == ["notified"]
    assert "audit sink JsonlFileSink failed: FileNotFoundError" in caplog.text
