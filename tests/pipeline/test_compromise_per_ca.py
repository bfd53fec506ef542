"""`certlc renew NAME --compromise` for a certificate each real CA issued, run as a user runs it (a child process with
that CA's settings in its environment): a new key, the old version disabled, and the old certificate revoked for
keyCompromise as that CA shows it: pebble's management interface says Revoked, cfssl's certificate database row says
revoked (reason 1), and for AD CS, which cannot revoke over web enrollment, the notice names the exact `certutil`
command and the renewal stays unfinished until the CA's own CRL lists the serial: the next `certlc renew` after the
person ran it sees it there and finishes. test_compromise.py covers the local CA."""

from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from cryptography import x509
from localazure.emulators.adcs import RunningAdcs

from renewal import tags as cert_tags
from renewal.x509info import public_key_der
from tests.environment import without_certlc_settings
from tests.fixtures.adcs import ADCS_PASSWORD, ADCS_USERNAME
from tests.pipeline.helpers import alerts_for, audit, client, seed, unique

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class CaUnderTest:
    """A real CA as the child sees it: the tags that route a certificate to it and the settings that reach it."""

    ca: str
    profile: str
    settings: dict[str, str]


def run_certlc(stack: Any, ca: CaUnderTest, *args: str) -> subprocess.CompletedProcess[str]:
    """The command in a child process with the stack's settings file; the CA's settings in its environment win."""
    return subprocess.run(
        [sys.executable, "-m", "certlc", "--settings", str(stack.settings_path), *args],
        cwd=REPO,
        env=without_certlc_settings() | ca.settings,
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def leaf(stack: Any, name: str, version: str | None = None) -> tuple[Any, x509.Certificate]:
    got = client(stack).get_certificate_version(name, version) if version else client(stack).get_certificate(name)
    return got, x509.load_der_x509_certificate(bytes(got.cer))


def issued_by(stack: Any, ca: CaUnderTest, name: str, **policy: Any) -> tuple[Any, x509.Certificate]:
    """A certificate whose current version ``ca`` issued (the seeding CA's could not be revoked there)."""
    seed(
        stack,
        name,
        days_left=400,
        lifetime_days=500,
        tags={cert_tags.CA: ca.ca, cert_tags.PROFILE: ca.profile},
        **policy,
    )
    done = run_certlc(stack, ca, "renew", name, "--vault", "kv1", "--force")
    assert done.returncode == 0, done.stdout + done.stderr
    return leaf(stack, name)


def compromise_renewal(
    stack: Any, ca: CaUnderTest, name: str, old: Any, old_leaf: x509.Certificate, revocation: str
) -> Any:
    """Renews ``name`` (issued by ``ca``) with ``--compromise`` and checks what Key Vault shows after it: a new key
    from the same CA, the old version disabled and tagged ``<revocation> keyCompromise <UTC day>``, no step left (or,
    awaiting a person, the new version still saying so). The retired version."""
    started = stack.now()  # the days certlc writes are the stack's (its clock may have been moved forward)
    done = run_certlc(stack, ca, "renew", name, "--vault", "kv1", "--compromise")

    assert done.returncode == 0, done.stdout + done.stderr
    said = "revocation_awaiting_person" if revocation == "awaiting" else "compromise_finished"
    assert f"kv1/{name}: renewed ({said})" in done.stdout
    new, new_leaf = leaf(stack, name)
    assert new.properties.version != old.properties.version
    assert new_leaf.issuer == old_leaf.issuer  # the same CA issued the new one
    assert public_key_der(new_leaf.public_key()) != public_key_der(old_leaf.public_key())
    left = cert_tags.tag(new.properties.tags, cert_tags.COMPROMISED)  # "<old version>[ flags]" while unfinished
    assert (left.split()[0] if left else None) == (old.properties.version if revocation == "awaiting" else None)
    retired, _ = leaf(stack, name, old.properties.version)
    assert retired.properties.enabled is False
    assert cert_tags.tag(retired.properties.tags, cert_tags.REVOCATION) in on_the_day(revocation, started, stack.now())
    return retired


def on_the_day(revocation: str, started: dt.datetime, now: dt.datetime) -> set[str]:
    """``<revocation> keyCompromise <UTC day>`` for the days the test ran (a run across midnight), on the stack's
    clock."""
    days = {f"{day:%Y-%m-%d}" for day in (started, now)}
    return {f"{revocation} keyCompromise {d}" for d in days}


def assert_steps_in_order(stack: Any, name: str, revocation_event: str, *, finished: bool = True) -> None:
    events = [r["event"] for r in audit(stack, name) if r.get("trigger") == "compromise"]
    steps = ("merged", revocation_event, "retired") + (("compromise_finished",) if finished else ())
    assert all(step in events for step in steps), events
    assert [events.index(step) for step in steps] == sorted(events.index(step) for step in steps), events


def revoked_notice(alerts: Any, name: str, old: Any, old_leaf: x509.Certificate) -> None:
    """One compromise notice, saying the CA revoked the old version's certificate."""
    notice = compromise_notice(alerts, name)
    assert (notice["revocation"], notice["serial"]) == ("revoked", f"{old_leaf.serial_number:x}"), notice
    assert notice["old_version"] == old.properties.version and not notice["instructions"]


def compromise_notice(alerts: Any, name: str) -> dict[str, Any]:
    (notice,) = [a for a in alerts_for(alerts, name) if a.get("kind") == "compromise"]
    return notice


def get(url: str, ca_bundle: str | Path) -> requests.Response:
    with requests.Session() as session:
        session.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would win over verify=
        return session.get(url, verify=str(ca_bundle), timeout=10)


# -- cfssl -----------------------------------------------------------------------------------------------------------


def cfssl_row(server: Any, certificate: x509.Certificate) -> tuple[str, int]:
    with sqlite3.connect(server.database) as db:
        rows = db.execute(
            "SELECT status, reason FROM certificates WHERE serial_number = ?", (str(certificate.serial_number),)
        ).fetchall()
    assert len(rows) == 1, f"cfssl recorded {len(rows)} rows for serial {certificate.serial_number}"
    return rows[0]


def test_cfssl_compromise_revokes_at_cfssl(stack, alerts, cfssl_server) -> None:
    ca = CaUnderTest("cfssl", "server", {"CERTLC_CFSSL_URL": cfssl_server.url})
    name = unique("compromise-cfssl")
    old, old_leaf = issued_by(stack, ca, name, reuse_key=True)
    assert cfssl_row(cfssl_server, old_leaf) == ("good", 0)  # cfssl issued it and records it

    compromise_renewal(stack, ca, name, old, old_leaf, "revoked")

    assert client(stack).get_certificate_policy(name).reuse_key is True  # put back after the renewal
    assert cfssl_row(cfssl_server, old_leaf) == ("revoked", 1)
    revoked_notice(alerts, name, old, old_leaf)
    assert_steps_in_order(stack, name, "revoked")


# -- ACME (pebble) ---------------------------------------------------------------------------------------------------


@pytest.fixture
def pebble_ca(pebble: Any, tmp_path: Path) -> CaUnderTest:
    """pebble as the demo gives it to the stack: one account key for both children (only the account that ordered
    a certificate may revoke it), http-01 answered from a folder (pebble takes every answer as valid)."""
    return CaUnderTest(
        "acme",
        "",
        {
            "CERTLC_ACME_DIRECTORY": pebble.directory_url,
            "CERTLC_ACME_ACCOUNT_KEY": str(tmp_path / "account-key.pem"),
            "CERTLC_ACME_CA_BUNDLE": str(pebble.ca_bundle),
            "CERTLC_ACME_CHALLENGE": "http-01",
            "CERTLC_ACME_HTTP01_WEBROOT": str(tmp_path / "webroot"),
        },
    )


def pebble_status(pebble: Any, certificate: x509.Certificate) -> tuple[str, int | None]:
    """What pebble's management interface says of the certificate: its status and revocation reason code."""
    url = f"https://127.0.0.1:{pebble.management_port}/cert-status-by-serial/{certificate.serial_number:x}"
    answer = get(url, pebble.ca_bundle)
    answer.raise_for_status()
    body = answer.json()
    return body["Status"], body.get("Reason")


def test_acme_compromise_revokes_at_pebble(stack, alerts, pebble, pebble_ca) -> None:
    name = unique("compromise-acme")
    old, old_leaf = issued_by(stack, pebble_ca, name)
    assert pebble_status(pebble, old_leaf)[0] == "Valid"

    compromise_renewal(stack, pebble_ca, name, old, old_leaf, "revoked")

    assert pebble_status(pebble, old_leaf) == ("Revoked", 1)
    revoked_notice(alerts, name, old, old_leaf)
    assert_steps_in_order(stack, name, "revoked")


# -- AD CS (the web-enrollment emulator) -----------------------------------------------------------------------------


@pytest.fixture
def adcs_ca(stack: Any, adcs_server: RunningAdcs) -> Iterator[CaUnderTest]:
    """The emulated CA signs and publishes its CRL on the stack's clock while the test runs (an earlier test may have
    moved it days on: on the real clock its CRL, current for a day, would look stale to certlc), then on the real
    one again."""
    adcs_server.use_clock(stack.now)
    yield CaUnderTest(
        "adcs",
        "WebServer",
        {
            "CERTLC_ADCS_SERVER": adcs_server.server,
            "CERTLC_ADCS_AUTH": "basic",
            "CERTLC_ADCS_USERNAME": ADCS_USERNAME,
            "CERTLC_ADCS_PASSWORD": ADCS_PASSWORD,
            "CERTLC_ADCS_CA_BUNDLE": adcs_server.ca_bundle,
        },
    )
    adcs_server.use_clock(lambda: dt.datetime.now(dt.UTC))


def crl_entry(server: RunningAdcs, serial: int) -> x509.RevokedCertificate | None:
    """The published CRL's entry for ``serial``, its signature checked with the CA's key."""
    published = get(server.crl_url, server.ca_bundle)
    assert published.status_code == 200
    crl = x509.load_der_x509_crl(published.content)
    assert crl.is_signature_valid(server.ca.certificate.public_key())  # type: ignore[arg-type]
    return crl.get_revoked_certificate_by_serial_number(serial)


def test_adcs_compromise_names_the_certutil_command_and_the_crl_lists_the_serial_once_run(
    stack, alerts, adcs_server, adcs_ca
) -> None:
    name = unique("compromise-adcs")
    old, old_leaf = issued_by(stack, adcs_ca, name, reuse_key=True)
    assert old_leaf.issuer == adcs_server.ca.certificate.subject

    compromise_renewal(stack, adcs_ca, name, old, old_leaf, "awaiting")

    assert client(stack).get_certificate_policy(name).reuse_key is True
    as_listed = old_leaf.serial_number.to_bytes((old_leaf.serial_number.bit_length() + 7) // 8, "big").hex()
    host = urlsplit(adcs_server.url).hostname  # certutil's -config names the CA's machine, no port
    notice = compromise_notice(alerts, name)
    assert (notice["revocation"], notice["serial"]) == ("awaiting", f"{old_leaf.serial_number:x}"), notice
    assert notice["instructions"] == f'certutil -config "{host}\\certlc local CA" -revoke {as_listed} 1', notice
    assert notice["old_version"] == old.properties.version
    assert_steps_in_order(stack, name, "revocation_awaiting_person", finished=False)
    assert crl_entry(adcs_server, old_leaf.serial_number) is None  # nobody ran it yet
    started = stack.now()
    looked = run_certlc(stack, adcs_ca, "renew", name, "--vault", "kv1")  # not on the CRL yet: still awaiting
    assert looked.returncode == 0 and "renewed (revocation_awaiting_person)" in looked.stdout, looked.stdout
    assert len([a for a in alerts_for(alerts, name) if a.get("kind") == "compromise"]) == 1  # told once

    adcs_server.revoke_serial(as_listed, 1)  # the person runs the command

    entry = crl_entry(adcs_server, old_leaf.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise
    done = run_certlc(stack, adcs_ca, "renew", name, "--vault", "kv1")  # certlc sees it on the CA's CRL
    assert done.returncode == 0 and f"kv1/{name}: renewed (compromise_finished)" in done.stdout, done.stdout
    assert cert_tags.tag(leaf(stack, name)[0].properties.tags, cert_tags.COMPROMISED) is None
    retired, _ = leaf(stack, name, old.properties.version)
    assert cert_tags.tag(retired.properties.tags, cert_tags.REVOCATION) in on_the_day("revoked", started, stack.now())
    seen = [r for r in audit(stack, name) if r["event"] == "revocation_seen"]
    assert len(seen) == 1 and seen[0]["detail"] == f"CRL {adcs_server.crl_url}", seen
