"""A certificate with a renewal pending: rows, status and dashboard show the last good version, marked pending.

Against the Key Vault emulator in both of its pending-version modes (each test names the mode it runs in):
``placeholder`` lists the pending create's disabled placeholder as the certificate, ``previous`` keeps
listing the last good version, so ingestion has to ask for the pending operation.
"""

import argparse
import json
from datetime import timedelta
from types import SimpleNamespace

import pytest
import requests

from ingestion.cache import DetailCache
from ingestion.gather import inside_renewal_window, list_vault, shows_placeholder
from ingestion.rows import CertificateDetails, ListedCertificate
from ingestion.run import ingest, take_snapshot
from renewal.decide import WindowSettings
from tests.ingestion.test_ingest_e2e import NOW, env_for, expected_row, kv_requests, seed, snapshot_rows

VAULT = "pending1"
RECIPIENT = "web@example.com"


@pytest.fixture(scope="module", params=["placeholder", "previous"])
def kv(request, tmp_path_factory):
    """An emulator per mode, so these counts see only these certificates."""
    from localazure.emulators.keyvault import start

    emulator = start(tmp_path_factory.mktemp(f"kv-{request.param}"), vaults=(VAULT,), pending_version=request.param)
    try:
        yield emulator
    finally:
        emulator.stop()


def client_for(kv):
    from renewal.clients import certificate_client

    return certificate_client(
        kv.vault_urls[VAULT], {"CERTLC_KEYVAULT_CA_BUNDLE": kv.ca_bundle, "CERTLC_LOCAL_TOKEN": kv.token}
    )


def advance(kv, seconds=60):
    requests.post(f"{kv.admin_url}/clock", json={"advance_seconds": seconds}, verify=kv.ca_bundle, timeout=30)


def paths_since(kv, mark):
    return [e["path"].rstrip("/") for e in kv_requests(kv, VAULT)[mark:]]


def test_a_pending_manual_create_shows_the_last_good_version_marked_pending(kv, logs_emulator, tmp_path, capsys):
    mode = kv.pending_version
    client = client_for(kv)
    seed(kv, VAULT, "renewing-web", 40, {"Recipient": "web@example.com"})  # older, expires later
    advance(kv)
    good = seed(kv, VAULT, "renewing-web", 20, {"Recipient": "web@example.com"})  # the newest good version
    seed(kv, VAULT, "steady-api", 10)  # inside its window, nothing pending
    seed(kv, VAULT, "calm-mail", 300)  # outside its window: its operation is never asked for
    advance(kv)
    client.begin_create_certificate("renewing-web", client.get_certificate_policy("renewing-web")).result()

    (listed,) = [p for p in client.list_properties_of_certificates() if p.name == "renewing-web"]
    if mode == "placeholder":  # the scenario this mode is about: the listing shows no certificate
        assert shows_placeholder(listed) and not listed.enabled and listed.x509_thumbprint is None
    else:
        assert not shows_placeholder(listed) and listed.x509_thumbprint == good[0].properties.x509_thumbprint

    env = env_for(kv, logs_emulator, tmp_path)
    mark = len(kv_requests(kv, VAULT))
    report = ingest(env, now=NOW)
    assert report.ok, report.as_dict()
    rows = {r["CertName"]: r for r in snapshot_rows(logs_emulator, NOW) if r["KeyVault"] == VAULT}
    expected = expected_row(VAULT, *good, "ExpiringSoon", 20, NOW, recipient="web@example.com")
    assert rows["renewing-web"] == {**expected, "RenewalPending": True}
    assert (rows["steady-api"]["RenewalPending"], rows["calm-mail"]["RenewalPending"]) == (False, False)

    # Cost: placeholder mode lists renewing-web's versions and reads the good one; previous mode reads the
    # operation of both managed certificates inside their window. calm-mail costs its detail read only.
    (vault,) = report.vaults
    counts = (vault.list_pages, vault.detail_reads, vault.version_pages, vault.operation_reads, vault.renewals_pending)
    assert counts == ((1, 3, 1, 1, 1) if mode == "placeholder" else (1, 3, 0, 2, 1))
    assert len(paths_since(kv, mark)) == report.keyvault_calls == 6

    # Warm cache: the renewal in flight costs one call a run in either mode.
    mark = len(kv_requests(kv, VAULT))
    later = NOW + timedelta(hours=1)
    snapshot = take_snapshot(env, now=later)
    extra = "/certificates/renewing-web/versions" if mode == "placeholder" else "/certificates/renewing-web/pending"
    assert sorted(paths_since(kv, mark)) == sorted(["/certificates", "/certificates/steady-api/pending", extra])
    (row,) = [r for r in snapshot.rows if r["CertName"] == "renewing-web"]
    assert (row["RenewalPending"], row["CertVersion"], row["DaysLeft"]) == (True, good[0].properties.version, 19)

    # certlc status, live from the vault: the good version's expiry and days, marked pending
    from certlc.dashboard import cli

    parser = argparse.ArgumentParser()
    cli.add_status_arguments(parser)
    args = parser.parse_args(["--no-color"])
    args.env, args.output = env, "table"  # the global -o option certlc.cli adds
    assert cli.run_status(args) == 0
    (line,) = [x for x in capsys.readouterr().out.splitlines() if " renewing-web " in x]
    expiry = good[1].not_valid_after_utc.strftime("%Y-%m-%d %H:%M")
    cells = line.split()  # vault, name, expiry day and time, days left (against the real clock), who renews it, ...
    assert [*cells[:2], f"{cells[2]} {cells[3]}", cells[5]] == [VAULT, "renewing-web", expiry, "certlc"]
    assert cells[4] in ("19", "20") and cells[-2:] == ["pending", RECIPIENT]  # ... renewal, recipient
    args = parser.parse_args([])
    args.env, args.output = env, "json"
    assert cli.run_status(args) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["renewals_pending"] == 1
    assert [c["CertName"] for c in body["certificates"] if c["RenewalPending"]] == ["renewing-web"]

    # The operation withdrawn: nothing pending, the same good version, no placeholder left
    client.delete_certificate_operation("renewing-web")
    snapshot = take_snapshot(env, now=later)
    (row,) = [r for r in snapshot.rows if r["CertName"] == "renewing-web"]
    assert (row["RenewalPending"], row["CertVersion"], row["Enabled"]) == (False, good[0].properties.version, True)


# --- the same decisions with a recording stand-in for the SDK client, for what the emulator cannot show ---


def props(name, version, *, enabled=True, thumbprint=b"\x01" * 20, expires=NOW + timedelta(days=5), created=NOW):
    return SimpleNamespace(
        name=name, version=version, enabled=enabled, x509_thumbprint=thumbprint, not_before=NOW - timedelta(days=90),
        expires_on=expires, created_on=created, tags={},
    )  # fmt: skip


class RecordingClient:
    """Answers from fixed data and records each call as Key Vault would count it."""

    def __init__(self, listing, versions=(), policy_in_version=True, operation_status="inProgress"):
        self.listing, self.versions = listing, list(versions)
        self.policy_in_version, self.operation_status = policy_in_version, operation_status
        self.calls: list[str] = []

    def list_properties_of_certificates(self):
        self.calls.append("list")
        return SimpleNamespace(by_page=lambda: [self.listing])

    def list_properties_of_certificate_versions(self, name):
        self.calls.append(f"versions {name}")
        return SimpleNamespace(by_page=lambda: [self.versions])

    def _certificate(self, name, version, with_policy):
        policy = SimpleNamespace(issuer_name="Unknown") if with_policy else None
        return SimpleNamespace(cer=None, policy=policy, properties=SimpleNamespace(version=version))

    def get_certificate(self, name):
        self.calls.append(f"get {name}")
        return self._certificate(name, "latest", True)

    def get_certificate_version(self, name, version):
        self.calls.append(f"get {name}/{version}")
        return self._certificate(name, version, self.policy_in_version)

    def get_certificate_policy(self, name):
        self.calls.append(f"policy {name}")
        return SimpleNamespace(issuer_name="Unknown")

    def get_certificate_operation(self, name):
        self.calls.append(f"operation {name}")
        return SimpleNamespace(status=self.operation_status)


@pytest.mark.parametrize(
    ("enabled", "thumbprint", "expires", "placeholder"),
    [
        (False, None, NOW + timedelta(days=365), True),  # as recorded: a placeholder with an expiry
        (False, None, None, True),
        (False, b"\x01", NOW, False),  # disabled by an operator: still a certificate
        (True, None, NOW, False),
    ],
)
def test_what_counts_as_a_placeholder_in_the_listing(enabled, thumbprint, expires, placeholder):
    assert shows_placeholder(props("web", "v9", enabled=enabled, thumbprint=thumbprint, expires=expires)) is placeholder


def test_the_newest_good_version_is_read_and_its_policy_fetched_when_the_versioned_read_leaves_it_out(tmp_path):
    placeholder = props("web", "v9", enabled=False, thumbprint=None, created=NOW)
    versions = [
        props("web", "v1", thumbprint=b"\x01" * 20, created=NOW - timedelta(days=2)),
        # created in the same second as v2 (whole seconds tie): the later expiry is the renewed one
        props("web", "v0", thumbprint=b"\x04" * 20, created=NOW - timedelta(days=1), expires=NOW + timedelta(days=1)),
        props("web", "v2", thumbprint=b"\x02" * 20, created=NOW - timedelta(days=1)),
        props("web", "v3", enabled=False, thumbprint=b"\x03" * 20, created=NOW - timedelta(hours=1)),  # disabled
        placeholder,
    ]
    client = RecordingClient([placeholder], versions, policy_in_version=False)
    listing = list_vault("kv1", client, DetailCache(tmp_path / "c.json"), {}, lambda *_: True)
    ((listed, details),) = listing.certificates
    assert (listed.thumbprint, listed.renewal_pending, details.version, details.policy_issuer) == (
        "02" * 20,
        True,
        "v2",
        "Unknown",
    )
    assert client.calls == ["list", "versions web", "get web/v2", "policy web"]  # no operation read: it is known
    assert listing.keyvault_calls == len(client.calls)


def test_a_first_version_still_pending_has_no_dates(tmp_path):
    placeholder = props("fresh", "v1", enabled=False, thumbprint=None)
    client = RecordingClient([placeholder], [placeholder])
    ((listed, _),) = list_vault("kv1", client, DetailCache(tmp_path / "c.json"), {}).certificates
    assert (listed.renewal_pending, listed.enabled, listed.expires_on, listed.not_before) == (True, False, None, None)
    assert client.calls == ["list", "versions fresh", "get fresh"]


@pytest.mark.parametrize(("status", "pending"), [("inProgress", True), ("completed", False), ("failed", False)])
def test_only_an_operation_in_progress_marks_a_listed_good_version_pending(tmp_path, status, pending):
    client = RecordingClient([props("web", "v2")], operation_status=status)
    ((listed, _),) = list_vault("kv1", client, DetailCache(tmp_path / "c.json"), {}, lambda *_: True).certificates
    assert listed.renewal_pending is pending
    assert client.calls == ["list", "get web", "operation web"]


@pytest.mark.parametrize(
    ("days", "issuer", "enabled", "ask"),
    [
        (29, "Unknown", True, True),
        (-3, "Unknown", True, True),  # expired and not renewed yet: still asked
        (31, "Unknown", True, False),  # outside the 30-day window (a 1/3 lifetime of 91 days is shorter)
        (5, "Self", True, False),  # Key Vault renews it itself
        (5, "Unknown", False, False),
    ],
)
def test_the_operation_is_asked_for_only_inside_the_renewal_window(days, issuer, enabled, ask):
    check = inside_renewal_window(NOW, WindowSettings())
    listed = ListedCertificate(
        "kv1", "web", "AB", NOW + timedelta(days=days) - timedelta(days=91), NOW + timedelta(days=days), enabled
    )
    assert check(listed, CertificateDetails("v1", "", "", "", issuer)) is ask
