"""The Logs Ingestion emulator behind the real azure-monitor-ingestion SDK, and raw HTTP at its edges."""

import gzip
import json
import os
import uuid

import pytest
import requests
from localazure.emulators.logs.dcr import default_template, load_streams

from ingestion import heartbeat, history
from ingestion.schema import COLUMNS, STREAM_DEFAULT
from ingestion.upload import MAX_BODY_BYTES, target_from_env, upload_rows


def row(marker: str, **overrides):
    base = {
        "TimeGenerated": "2025-03-01T12:00:00Z",
        "KeyVault": marker,
        "CertName": "web",
        "CertExpiration": "2025-04-01T00:00:00Z",
        "DaysLeft": 30,
        "ExpiryStatus": "ExpiringSoon",
        "Enabled": True,
        "Managed": False,
    }
    return {**base, **overrides}


def post(emulator, body: bytes, *, token=None, rule=None, gzip_body=True, api="2023-01-01"):
    url = f"{emulator.endpoint}/dataCollectionRules/{rule or emulator.dcr_immutable_id}/streams/{emulator.stream}"
    headers = {"Authorization": f"Bearer {token or emulator.token}", "Content-Type": "application/json"}
    if gzip_body:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    return requests.post(url, params={"api-version": api}, data=body, headers=headers, verify=emulator.ca_bundle)


def mine(emulator, marker):
    return [r for r in emulator.rows() if r["KeyVault"] == marker]


def test_template_streams_are_the_code_schema():
    assert load_streams(default_template()) == {
        STREAM_DEFAULT: {n: t for n, t, _ in COLUMNS},
        history.STREAM_DEFAULT: {n: t for n, t, _ in history.COLUMNS},
        heartbeat.STREAM_DEFAULT: {n: t for n, t, _ in heartbeat.COLUMNS},
    }


def test_sdk_upload_round_trips_rows_gzipped(logs_emulator, logs_client):
    marker = f"kv-{uuid.uuid4().hex[:8]}"
    rows = [row(marker, CertName=f"c{i}", DaysLeft=i) for i in range(3)]
    before = len(logs_emulator.requests())
    logs_client.upload(rule_id=logs_emulator.dcr_immutable_id, stream_name=logs_emulator.stream, logs=rows)
    assert mine(logs_emulator, marker) == rows
    (call,) = logs_emulator.requests()[before:]
    assert call["status"] == 204 and call["rows"] == 3
    assert call["decoded_bytes"] == len(json.dumps(rows).encode())


def test_rows_are_served_over_https(logs_emulator, logs_client):
    marker = f"kv-{uuid.uuid4().hex[:8]}"
    logs_client.upload(rule_id=logs_emulator.dcr_immutable_id, stream_name=logs_emulator.stream, logs=[row(marker)])
    served = requests.get(f"{logs_emulator.endpoint}/_emulator/rows", verify=logs_emulator.ca_bundle).json()
    assert [r for r in served if r["KeyVault"] == marker] == [row(marker)]


def test_wrong_token_is_refused(logs_emulator):
    from azure.core.exceptions import HttpResponseError

    from ingestion.upload import logs_ingestion_client

    client = logs_ingestion_client({**logs_emulator.settings(), "CERTLC_LOGS_TOKEN": "not-the-token"})
    with pytest.raises(HttpResponseError) as info:
        client.upload(rule_id=logs_emulator.dcr_immutable_id, stream_name=logs_emulator.stream, logs=[row("x")])
    assert info.value.status_code == 401


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"Bogus": "x"}, "columns not declared in the stream: Bogus"),
        ({"DaysLeft": "30"}, "column DaysLeft must be int"),
        ({"Enabled": "true"}, "column Enabled must be boolean"),
        ({"CertExpiration": "next tuesday"}, "column CertExpiration must be datetime"),
    ],
)
def test_rows_must_match_the_stream_declaration(logs_emulator, bad, message):
    marker = f"kv-{uuid.uuid4().hex[:8]}"
    response = post(logs_emulator, json.dumps([row(marker, **bad)]).encode())
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    assert mine(logs_emulator, marker) == []


def test_one_mebibyte_limit_on_the_wire_and_uncompressed(logs_emulator):
    too_big_on_wire = post(logs_emulator, os.urandom(MAX_BODY_BYTES + 1), gzip_body=False)
    assert too_big_on_wire.status_code == 413
    padding = "x" * (MAX_BODY_BYTES + 10)
    inflates = post(logs_emulator, json.dumps([row("big", CertSANs=padding)]).encode())
    assert inflates.status_code == 413
    assert "uncompressed" in inflates.json()["error"]["message"]


def test_unknown_rule_and_api_version(logs_emulator):
    body = json.dumps([row("x")]).encode()
    assert post(logs_emulator, body, rule="dcr-00000000000000000000000000000000").status_code == 404
    assert post(logs_emulator, body, api="2021-11-01-preview").status_code == 400


def test_upload_rows_chunks_ten_thousand_rows_under_the_limit(logs_emulator, logs_client):
    marker = f"kv-{uuid.uuid4().hex[:8]}"
    rows = [row(marker, CertName=f"cert-{i:05d}", CertSubject=f"CN=cert-{i:05d}.example.com") for i in range(10_000)]
    before = len(logs_emulator.requests())
    result = upload_rows(logs_client, target_from_env(logs_emulator.settings()), rows)
    calls = logs_emulator.requests()[before:]
    assert (result.rows, result.failed_rows, result.errors) == (10_000, 0, [])
    assert result.calls == len(calls) > 1
    assert all(c["status"] == 204 and c["decoded_bytes"] <= MAX_BODY_BYTES for c in calls)
    assert mine(logs_emulator, marker) == rows


def test_cli_prints_settings_but_not_the_token(tmp_path, capsys):
    import argparse
    import threading

    from localazure.emulators.logs import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    stop = threading.Event()
    stop.set()
    assert cli.run(parser.parse_args(["--state-dir", str(tmp_path), "--token", "s3cret-token"]), stop) == 0
    out = capsys.readouterr().out
    assert "CERTLC_DCE_ENDPOINT=https://127.0.0.1:" in out and "CERTLC_DCR_IMMUTABLE_ID=dcr-" in out
    assert "s3cret-token" not in out
