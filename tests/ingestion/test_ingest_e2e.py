"""Ingestion end to end: real Key Vault SDK → Key Vault emulator → rows → real Logs SDK → Logs emulator."""

import json
from datetime import UTC, datetime, timedelta

import pytest
import requests
import trustme
from cryptography.hazmat.primitives import hashes

from ingestion.run import ingest, take_snapshot
from tests.fixtures.pki import certificate, issued_pfx

NOW = datetime.now(UTC).replace(microsecond=0)
ISSUING_CA = trustme.CA()


@pytest.fixture(scope="module")
def kv(tmp_path_factory):
    """An emulator of our own, so other tests' certificates never enter these counts."""
    from localazure.emulators.keyvault import start

    emulator = start(tmp_path_factory.mktemp("kv-ingest"), vaults=("ingest1", "ingest2"), tokens={"no-access": "none"})
    try:
        yield emulator
    finally:
        emulator.stop()


DUE_NOTE = "due now: certlc renews it with CA 'local', profile 'server'"


def env_for(kv, logs, tmp_path, **extra):
    vaults = ",".join(f"{name}={url}" for name, url in kv.vault_urls.items())
    return {
        "CERTLC_VAULTS": vaults,
        "CERTLC_KEYVAULT_CA_BUNDLE": kv.ca_bundle,
        "CERTLC_LOCAL_TOKEN": kv.token,
        "CERTLC_INGEST_CACHE": str(tmp_path / "cache.json"),
        "CERTLC_CA_PROFILE": "server",
        **logs.settings(),
        **extra,
    }


def seed(kv, vault, name, days, tags=None):
    from renewal.clients import certificate_client

    client = certificate_client(
        kv.vault_urls[vault], {"CERTLC_KEYVAULT_CA_BUNDLE": kv.ca_bundle, "CERTLC_LOCAL_TOKEN": kv.token}
    )
    pfx, cert = issued_pfx(ISSUING_CA, f"{name}.example.com", NOW - timedelta(days=100), NOW + timedelta(days=days))
    imported = client.import_certificate(name, pfx, tags=tags or {})
    return imported, cert


def expected_row(vault, imported, cert, status, days_left, snapshot, recipient="", outcome=""):
    return {
        "TimeGenerated": snapshot.isoformat().replace("+00:00", "Z"),
        "KeyVault": vault,
        "CertName": imported.name,
        "CertVersion": imported.properties.version,
        "CertSubject": cert.subject.rfc4514_string(),
        "CertIssuer": certificate(ISSUING_CA).subject.rfc4514_string(),
        "CertThumbprint": cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - the X.509 thumbprint
        "CertSANs": f"{imported.name}.example.com",
        "CertNotBefore": (NOW - timedelta(days=100)).isoformat().replace("+00:00", "Z"),
        "CertExpiration": cert.not_valid_after_utc.isoformat().replace("+00:00", "Z"),
        "DaysLeft": days_left,
        "ExpiryStatus": status,
        "CertRecipient": recipient,
        "Enabled": True,
        "Managed": True,
        "LastRenewalOutcome": outcome,
        "RenewalPending": False,
        **expected_plan(cert, snapshot),
    }


def expected_plan(cert, snapshot):
    """certlc renews an imported (issuer Unknown) certificate a third of its lifetime, at least 30 days, early."""
    expires, issued = cert.not_valid_after_utc, NOW - timedelta(days=100)
    when = expires - max((expires - issued) / 3, timedelta(days=30))
    due = when <= snapshot
    return {
        "RenewedBy": "certlc",
        "RenewalPlan": "due" if due else "scheduled",
        "NextRenewal": when.isoformat().replace("+00:00", "Z"),
        "RenewalNote": DUE_NOTE if due else f"certlc renews it on {when:%Y-%m-%d} UTC",
        "Canary": False,
        "Served": "",
    }


def kv_requests(kv, vault):
    entries = requests.get(f"{kv.admin_url}/requests", verify=kv.ca_bundle, timeout=30).json()
    return [e for e in entries if e["vault"] == vault and e["status"] != 401]


def snapshot_rows(logs, snapshot):
    stamp = snapshot.isoformat().replace("+00:00", "Z")
    return sorted((r for r in logs.rows() if r["TimeGenerated"] == stamp), key=lambda r: (r["KeyVault"], r["CertName"]))


def test_two_runs_exact_rows_and_key_vault_reads_only_for_new_versions(kv, logs_emulator, tmp_path):
    expired = seed(kv, "ingest1", "expired-web", -2, {"recipient": "web@example.com"})
    expiring = seed(kv, "ingest1", "expiring-api", 10, {"certlc-last-outcome": "Failed: CA unreachable"})
    healthy = seed(kv, "ingest2", "healthy-mail", 200, {"Recipient": "mail@example.com"})
    env = env_for(kv, logs_emulator, tmp_path)
    before = {v: len(kv_requests(kv, v)) for v in kv.vault_urls}

    first = ingest(env, now=NOW)
    assert first.ok, first.as_dict()
    assert snapshot_rows(logs_emulator, NOW) == [
        expected_row("ingest1", *expired, "Expired", -2, NOW, recipient="web@example.com"),
        expected_row("ingest1", *expiring, "ExpiringSoon", 10, NOW, outcome="Failed: CA unreachable"),
        expected_row("ingest2", *healthy, "NotExpired", 200, NOW, recipient="mail@example.com"),
    ]
    by_vault = {v.vault: v for v in first.vaults}
    assert (by_vault["ingest1"].detail_reads, by_vault["ingest2"].detail_reads) == (2, 1)
    # the pending operation is read for managed certificates inside their renewal window only
    assert (by_vault["ingest1"].operation_reads, by_vault["ingest2"].operation_reads) == (2, 0)
    for vault, report in by_vault.items():  # the report's count is what Key Vault really served
        assert len(kv_requests(kv, vault)) - before[vault] == report.keyvault_calls

    # the renewal lands an emulated minute after the first version
    requests.post(f"{kv.admin_url}/clock", json={"advance_seconds": 60}, verify=kv.ca_bundle, timeout=30)
    renewed = seed(kv, "ingest1", "expiring-api", 365)
    later = NOW + timedelta(hours=1)
    mark = {v: len(kv_requests(kv, v)) for v in kv.vault_urls}
    second = ingest(env, now=later)
    assert second.ok and second.upload.rows == 3
    calls = {v: kv_requests(kv, v)[mark[v] :] for v in kv.vault_urls}
    reads = [e["path"] for v in calls for e in calls[v] if not e["path"].rstrip("/").endswith("/certificates")]
    # the renewed certificate left its renewal window; the expired one is still asked about
    assert sorted(r.rstrip("/") for r in reads) == ["/certificates/expired-web/pending", "/certificates/expiring-api"]
    assert second.keyvault_calls == sum(len(c) for c in calls.values()) == first.keyvault_calls - 3
    rows = {r["CertName"]: r for r in snapshot_rows(logs_emulator, later)}
    assert rows["expiring-api"]["CertVersion"] == renewed[0].properties.version
    assert (rows["expiring-api"]["ExpiryStatus"], rows["expired-web"]["ExpiryStatus"]) == ("NotExpired", "Expired")
    assert len(snapshot_rows(logs_emulator, NOW)) == 3  # the first snapshot is still there, unchanged


def test_listing_pages_through_next_links(kv, logs_emulator, tmp_path):
    from renewal.clients import certificate_client

    env = env_for(kv, logs_emulator, tmp_path)
    for i in range(30):
        seed(kv, "ingest2", f"bulk-{i:02d}", 60 + i)
    snapshot = take_snapshot(env, now=NOW)
    (report,) = [v for v in snapshot.vaults if v.vault == "ingest2"]
    listed = list(certificate_client(kv.vault_urls["ingest2"], env).list_properties_of_certificates())
    assert report.rows == len(listed) >= 31 and report.list_pages >= 2


def test_a_failing_vault_is_reported_and_the_others_still_ingest(kv, logs_emulator, tmp_path):
    from renewal.clients import certificate_client

    seed(kv, "ingest1", "survivor", 90)
    env = env_for(kv, logs_emulator, tmp_path)
    denied_url = kv.vault_urls["ingest2"].replace("127.0.0.1", "localhost")  # same vault, another identity
    env["CERTLC_VAULTS"] += f",ghost={logs_emulator.endpoint},denied={denied_url}"

    def factory(url, settings):
        """Real clients; the ghost vault trusts the Logs emulator's CA, the denied one has a no-access token."""
        if url == logs_emulator.endpoint:
            return certificate_client(url, {**settings, "CERTLC_KEYVAULT_CA_BUNDLE": logs_emulator.ca_bundle})
        if url == denied_url:
            return certificate_client(url, {**settings, "CERTLC_LOCAL_TOKEN": "no-access"})
        return certificate_client(url, settings)

    snapshot = take_snapshot(env, now=NOW, client_factory=factory)
    errors = {v.vault: v.error for v in snapshot.vaults}
    assert errors["ingest1"] == "" and errors["ingest2"] == ""
    assert errors["ghost"].startswith("ghost: HTTP 404") and "CERTLC_VAULTS" in errors["ghost"]
    assert errors["denied"].startswith("denied: HTTP 403") and "Certificates Officer" in errors["denied"]
    assert "survivor" in {r["CertName"] for r in snapshot.rows}
    assert {r["KeyVault"] for r in snapshot.rows} == {"ingest1", "ingest2"}
    assert kv.token not in json.dumps([v.error for v in snapshot.vaults])
