"""At scale the ingestion paces itself: pending operations read only where certlc's renewal lock (or the listing)
says one may exist, a vault's reads side by side under a limiter at 90 % of Key Vault's read limit, and a 429 waited
out instead of failing the snapshot.

The Key Vault emulator runs in this run's pending-version mode (``CERTLC_TEST_KEYVAULT_PENDING_VERSION``): the
placeholder mode lists a pending create's disabled placeholder, the previous mode keeps listing the last version.
"""

import logging
import time
import uuid
from datetime import timedelta

import pytest

from ingestion import gather
from ingestion.gather import ReadPacer, pending_reads, retry_after_seconds
from ingestion.rows import CertificateDetails, ListedCertificate
from ingestion.run import take_snapshot
from renewal.ledger import BlobLedger, RenewalRecord, lock_container
from renewal.pacing.limits import OTHERS_PER_VAULT, WINDOW_SECONDS
from tests.fixtures.keyvault import pending_mode
from tests.ingestion.test_ingest_e2e import NOW, env_for, kv_requests, seed

VAULT = "pacing1"


@pytest.fixture(scope="module")
def kv(tmp_path_factory):
    from localazure.emulators.keyvault import start

    emulator = start(tmp_path_factory.mktemp("kv-pacing") / "state", vaults=(VAULT,), pending_version=pending_mode())
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def control(kv):
    from localazure.emulators.keyvault.control import EmulatorControl

    ctl = EmulatorControl(kv.admin_url, kv.ca_bundle)
    ctl.reset()
    yield ctl
    ctl.reset()
    ctl.close()


@pytest.fixture
def names():
    """Certificate names of this test only (the module's vault keeps every test's certificates)."""
    tag = uuid.uuid4().hex[:6]
    return lambda name: f"{name}-{tag}"


def client_for(kv):
    from renewal.clients import certificate_client

    return certificate_client(
        kv.vault_urls[VAULT], {"CERTLC_KEYVAULT_CA_BUNDLE": kv.ca_bundle, "CERTLC_LOCAL_TOKEN": kv.token}
    )


def pending_paths(kv, mark):
    return sorted(e["path"].strip("/").split("/")[1] for e in kv_requests(kv, VAULT)[mark:] if "/pending" in e["path"])


def rows_by_name(snapshot):
    return {r["CertName"]: r for r in snapshot.rows}


# --- which pending operations are read -----------------------------------------------------------------------------


def test_the_pending_operation_is_read_only_for_a_renewal_the_lock_names(kv, azurite, logs_emulator, tmp_path, names):
    """Three managed certificates inside their renewal window: only the one certlc is renewing (an unfinished
    record in the lock's container, a pending create in Key Vault) is marked pending; in the previous mode that
    takes its operation read, in the placeholder mode the listing already says it; the others cost no read."""
    renewing, idle, also_idle = names("renewing"), names("idle"), names("idle-too")
    for name in (renewing, idle, also_idle):
        seed(kv, VAULT, name, 10)
    client = client_for(kv)
    client.begin_create_certificate(renewing, client.get_certificate_policy(renewing))
    env = env_for(
        kv, logs_emulator, tmp_path, CertlcStorage=azurite.connection_string, CERTLC_LOCK_CONTAINER=f"locks-{idle}"
    )
    with BlobLedger(lock_container(env)).hold(VAULT, renewing) as held:  # as the workflow leaves it: waiting
        held.save(RenewalRecord(owner="corr-1", state="pending", next_action_at=NOW + timedelta(minutes=5)))

    mark = len(kv_requests(kv, VAULT))
    snapshot = take_snapshot(env, now=NOW)
    rows = rows_by_name(snapshot)
    assert (rows[renewing]["RenewalPending"], rows[idle]["RenewalPending"], rows[also_idle]["RenewalPending"]) == (
        True,
        False,
        False,
    )
    (report,) = snapshot.vaults
    assert report.pending_reads == "unfinished renewals" and not report.error
    if pending_mode() == "placeholder":  # the placeholder says it: the versions list, no operation read
        assert pending_paths(kv, mark) == [] and report.operation_reads == 0
    else:
        assert pending_paths(kv, mark) == [renewing] and report.operation_reads == 1

    # Warm: the idle certificates cost nothing beyond the listing, run after run
    mark = len(kv_requests(kv, VAULT))
    again = take_snapshot(env, now=NOW + timedelta(hours=1))
    assert rows_by_name(again)[renewing]["RenewalPending"] is True
    assert pending_paths(kv, mark) == ([] if pending_mode() == "placeholder" else [renewing])
    client.delete_certificate_operation(renewing)


def test_a_finished_record_is_not_read(kv, azurite, logs_emulator, tmp_path, names):
    done = names("done")
    seed(kv, VAULT, done, 10)
    env = env_for(
        kv, logs_emulator, tmp_path, CertlcStorage=azurite.connection_string, CERTLC_LOCK_CONTAINER=f"locks-{done}"
    )
    with BlobLedger(lock_container(env)).hold(VAULT, done) as held:
        held.save(RenewalRecord(owner="corr-2", state="merged", next_action_at=NOW))
    mark = len(kv_requests(kv, VAULT))
    snapshot = take_snapshot(env, now=NOW)
    assert rows_by_name(snapshot)[done]["RenewalPending"] is False
    assert done not in pending_paths(kv, mark)


@pytest.mark.parametrize("storage", ["not configured", "unreachable"])
def test_without_the_lock_records_every_managed_certificate_in_its_window_is_read(
    kv, logs_emulator, tmp_path, names, caplog, storage
):
    """No lock container (an ingest run without storage settings) or one that cannot be listed: the rule before
    the lock was asked, with a log line saying so."""
    due, calm = names("due"), names("calm")
    seed(kv, VAULT, due, 10)
    seed(kv, VAULT, calm, 300)
    extra = {}
    if storage == "unreachable":
        extra["CertlcStorage"] = (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
            "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;"
        )
    env = env_for(kv, logs_emulator, tmp_path, **extra)
    mark = len(kv_requests(kv, VAULT))
    with caplog.at_level(logging.WARNING, logger="ingestion.run"):
        snapshot = take_snapshot(env, now=NOW)
    (report,) = snapshot.vaults
    assert report.pending_reads == "renewal window" and not report.error
    assert due in pending_paths(kv, mark) and calm not in pending_paths(kv, mark)
    (line,) = [r.getMessage() for r in caplog.records if "renewal window" in r.getMessage()]
    reason = "no renewal lock container" if storage == "not configured" else "could not be listed"
    assert line.startswith(f"ingest: {VAULT}: ") and reason in line


def test_the_pending_rule_names_only_unfinished_certificates():
    check = pending_reads({"web"})
    details = CertificateDetails("v1", "", "", "", "Unknown")

    def listed(name):
        return ListedCertificate("kv1", name, "AB", NOW, NOW + timedelta(days=5), True)

    assert (check(listed("Web"), details), check(listed("api"), details)) == (True, False)


# --- reads side by side, under the limiter -------------------------------------------------------------------------


def test_a_vaults_reads_run_side_by_side_under_the_limiter(kv, control, logs_emulator, tmp_path, names, monkeypatch):
    """24 cold reads that take 0.2 s each: one at a time they would take 4.8 s. Throttling on, no 429. Then the
    vault's pacer at 20 weight a second: the same 25 requests (24 reads and a page) cannot go faster than it."""
    fresh = [names(f"fresh{i:02d}") for i in range(24)]
    for name in fresh:
        seed(kv, VAULT, name, 200)
    env = env_for(kv, logs_emulator, tmp_path)
    control.throttling(True, time_scale=1.0)
    pattern = "|".join(fresh)
    control.add_fault(latency_ms=200, method="GET", path=f"/certificates/({pattern})/?$")
    started = time.perf_counter()
    snapshot = take_snapshot(env, now=NOW)
    seconds = time.perf_counter() - started
    assert {r["CertName"] for r in snapshot.rows} >= set(fresh)
    assert seconds < 2.0, seconds  # 12 readers: two rounds of 0.2 s, plus the rest
    stats = control.throttle_stats()["vaults"][VAULT]
    assert stats["throttled"] == {"create": 0, "other": 0}

    monkeypatch.setattr("ingestion.run.VAULT_READ_RATE", 20.0)
    (tmp_path / "cache.json").unlink()  # cold again
    control.clear_faults()
    mark = len(kv_requests(kv, VAULT))
    started = time.perf_counter()
    snapshot = take_snapshot(env, now=NOW)
    seconds = time.perf_counter() - started
    (report,) = snapshot.vaults
    sent = len(kv_requests(kv, VAULT)[mark:])
    assert report.read_weight == report.keyvault_calls == sent
    # 20 a second after a burst of a quarter second's worth (5)
    assert seconds >= (sent - 5) / 20 * 0.95, (seconds, sent)


def fake_time():
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    return now, (lambda: now[0]), sleep


@pytest.mark.parametrize("weight", [1, 4, 8, 16])
def test_the_pacer_stays_under_ninety_percent_of_the_read_limit_in_every_window(weight):
    now, clock, sleep = fake_time()
    pacer = ReadPacer(clock=clock, sleep=sleep)
    sent = []
    for _ in range(4000):
        pacer.acquire(weight)
        sent.append(now[0])
    window, limit = WINDOW_SECONDS, OTHERS_PER_VAULT
    most = max(sum(1 for t in sent if start <= t < start + window) for start in sent) * weight
    assert most <= 0.925 * limit  # 90 % plus the quarter-second burst
    burst = gather.BURST_SECONDS * gather.VAULT_READ_RATE
    rate = (len(sent) * weight - burst) / sent[-1]  # sustained, after the first burst
    assert 0.89 * limit / window <= rate <= 0.91 * limit / window


def test_a_429_pauses_the_vault_and_halves_its_rate_then_it_climbs_back():
    _, clock, sleep = fake_time()
    pacer = ReadPacer(100.0, burst_seconds=0, clock=clock, sleep=sleep)
    pacer.acquire()
    assert pacer.throttled(3.0)  # Retry-After: 3
    assert pacer.acquire() == pytest.approx(3.0, abs=0.02) and pacer.rate == 50.0
    pacer.succeeded()
    assert pacer.throttled(None) and pacer.throttled(None)  # none given: 0.5 s, then 1 s, and so on
    assert pacer.throttled_seconds == pytest.approx(3.0 + gather.BACKOFF_FIRST * 3)
    sleep(60)
    pacer.acquire()
    assert pacer.rate == 100.0


def test_waiting_out_429s_has_an_end():
    _, clock, sleep = fake_time()
    pacer = ReadPacer(clock=clock, sleep=sleep, throttled_most=10)
    assert pacer.throttled(6) and not pacer.throttled(6)


@pytest.mark.parametrize(
    ("value", "seconds"), [("2", 2.0), ("0.5", 0.5), ("", None), (None, None), ("soon", None), ("-3", 0.0)]
)
def test_retry_after(value, seconds):
    assert retry_after_seconds(value) == seconds


# --- 429s ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("retry_after", [0, None])
def test_429s_during_ingestion_are_waited_out(kv, control, logs_emulator, tmp_path, names, monkeypatch, retry_after):
    """Five 429s in a row on one certificate's read (more than the SDK's own three retries), with and without
    Retry-After: the snapshot has every row and no failed vault."""
    monkeypatch.setattr(gather, "BACKOFF_FIRST", 0.02)
    target = names("throttled")
    seed(kv, VAULT, target, 100)
    spec = {"status": 429, "count": 5, "method": "GET", "path": f"/certificates/{target}"}
    if retry_after is not None:
        spec["retry_after"] = retry_after
    control.add_fault(**spec)
    control.clear_requests()
    env = env_for(kv, logs_emulator, tmp_path)
    snapshot = take_snapshot(env, now=NOW)
    (report,) = snapshot.vaults
    assert report.error == "" and report.throttled == 5
    assert target in rows_by_name(snapshot)
    statuses = [e["status"] for e in control.requests() if target in e["path"]]
    assert statuses == [429] * 5 + [200]


def test_429s_on_the_listing_are_waited_out(kv, control, logs_emulator, tmp_path, monkeypatch):
    monkeypatch.setattr(gather, "BACKOFF_FIRST", 0.02)
    control.add_fault(status=429, count=4, method="GET", path="^/certificates/?$")
    snapshot = take_snapshot(env_for(kv, logs_emulator, tmp_path), now=NOW)
    (report,) = snapshot.vaults
    assert report.error == "" and report.throttled == 4 and report.rows > 0
