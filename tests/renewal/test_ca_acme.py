"""The ACME adapter against a real pebble."""

from __future__ import annotations

import errno
import functools
import os
import stat
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from localazure.ports import free_port

from localazure import servers, tools
from renewal.ca import acme
from renewal.ca.acme import AcmeAuthority, Http01FolderSolver, Http01ServerSolver
from renewal.ca.base import CaConfigError, CaUnavailable, Denied, Issued, Pending
from renewal.clock import utc_now
from renewal.runtime import ca_factory
from tests.fixtures.servers import (
    PEBBLE_BLOCKED_DOMAIN,
    PEBBLE_EAB_HMAC,
    PEBBLE_EAB_KID,
    make_csr,
    serve_or_skip,
    submit_on_threads,
    verify_chain,
)

pytestmark = pytest.mark.pebble


@pytest.fixture(scope="module")
def solver() -> Iterator[Http01ServerSolver]:
    with Http01ServerSolver() as running:
        yield running


@pytest.fixture
def authority(pebble, solver, tmp_path) -> AcmeAuthority:
    return AcmeAuthority(
        pebble.directory_url,
        account_key_path=tmp_path / "acme" / "account.pem",
        contact_email="pki@certlc.test",
        ca_bundle=str(pebble.ca_bundle),
        solver=solver,
    )


@pytest.mark.parametrize("key_type", ["rsa", "ec"])
def test_issues_a_chain_that_verifies_against_pebbles_root(pebble, authority, key_type) -> None:
    result = authority.submit(make_csr("www.certlc.test", "certlc.test", key_type=key_type), "server")

    assert isinstance(result, Issued)
    assert len(result.chain_pem) >= 2  # leaf + intermediate
    leaf = verify_chain(result.chain_pem, pebble.roots_pem(), "certlc.test")
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == ["certlc.test", "www.certlc.test"]


def test_account_key_is_private_and_made_once(pebble, authority) -> None:
    first_url = authority.account_url
    key_file = authority.account_key_path
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key_bytes = key_file.read_bytes()

    again = AcmeAuthority(pebble.directory_url, account_key_path=key_file, ca_bundle=str(pebble.ca_bundle))

    assert again.account_url == first_url
    assert key_file.read_bytes() == key_bytes


@pytest.mark.timeout(90)
def test_the_first_renewals_on_many_threads_share_one_new_account(pebble, authority, monkeypatch) -> None:
    """The host runs a batch of renewals at once on one shared adapter, whose account key has no account yet:
    every thread looks for the account and creates it, and those that lose the race are told it exists (HTTP 200
    with its URL, a ConflictError to the client) and use it. A pause after each answer (each carries a nonce the
    client keeps) stands for a slow CA and lets the threads overlap."""
    from acme import client as acme_client

    keep = acme_client.ClientNetwork._add_nonce

    def keep_then_pause(net: acme_client.ClientNetwork, response: Any) -> None:
        keep(net, response)
        time.sleep(0.02)

    monkeypatch.setattr(acme_client.ClientNetwork, "_add_nonce", keep_then_pause)

    outcomes = submit_on_threads(authority, [f"batch{i}.certlc.test" for i in range(8)], "server")

    assert outcomes == ["Issued"] * 8
    found = AcmeAuthority(
        pebble.directory_url, account_key_path=authority.account_key_path, ca_bundle=str(pebble.ca_bundle)
    )
    assert authority.account_url == found.account_url  # one account for the key


def test_folder_solver_writes_answers_and_cleans_them_up(pebble, tmp_path) -> None:
    webroot = tmp_path / "www"
    authority = AcmeAuthority(
        pebble.directory_url,
        account_key_path=tmp_path / "account.pem",
        ca_bundle=str(pebble.ca_bundle),
        solver=Http01FolderSolver(webroot),
    )

    assert isinstance(authority.submit(make_csr("folder.certlc.test"), "server"), Issued)
    challenge_dir = webroot / ".well-known" / "acme-challenge"
    assert challenge_dir.is_dir()
    assert list(challenge_dir.iterdir()) == []


def test_order_unfinished_by_the_deadline_is_pending_then_polled_to_issuance(pebble, authority) -> None:
    authority.timeout = 0
    csr = make_csr("slow.certlc.test")
    pending = authority.submit(csr, "server")

    assert isinstance(pending, Pending)
    assert pending.request_id.startswith(f"https://127.0.0.1:{pebble.port}/")

    authority.timeout = 60
    issued = authority.poll(pending.request_id, csr)

    assert isinstance(issued, Issued)
    assert issued.request_id == pending.request_id
    verify_chain(issued.chain_pem, pebble.roots_pem(), "slow.certlc.test")


class ReadOnlyDisk:
    """While on, the thread that turned it on may read files but not write, make or remove any, as on a Flex
    Consumption instance whose package is read-only; what it tried is kept in ``refused``. Other threads (the
    session's local stack writes its audit file and rows meanwhile) are not this test's adapter."""

    WRITES = frozenset({"os.mkdir", "os.remove", "os.rename", "os.rmdir", "os.chmod", "os.truncate", "shutil.rmtree"})

    def __init__(self) -> None:
        self.thread: int | None = None
        self.refused: list[tuple[str, str]] = []

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if self.thread != threading.get_ident():
            return
        if event == "open":
            _, mode, flags = args
            writing = bool(set(mode or "") & set("wax+")) or bool((flags or 0) & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        else:
            writing = event in self.WRITES
        if writing:
            self.refused.append((event, str(args[0])))
            raise PermissionError(errno.EROFS, "Read-only file system", str(args[0]))

    def __enter__(self) -> ReadOnlyDisk:
        self.refused.clear()
        self.thread = threading.get_ident()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread = None


@pytest.fixture(scope="module")
def read_only_disk() -> ReadOnlyDisk:
    disk = ReadOnlyDisk()
    sys.addaudithook(disk)  # for the life of the process; it does nothing unless entered
    return disk


def test_a_pending_order_is_finished_by_a_fresh_azure_instance_that_writes_nothing(
    pebble, authority, read_only_disk, tmp_path, monkeypatch
) -> None:
    """Another instance, with nothing but the app settings (the account key as a PEM, as a Key Vault reference
    gives it), the order URL from the queue message and the CSR from Key Vault's pending operation."""
    authority.timeout = 0
    csr = make_csr("moved.certlc.test")
    pending = authority.submit(csr, "server")
    assert isinstance(pending, Pending)

    instance = tmp_path / "instance"
    instance.mkdir()
    monkeypatch.chdir(instance)
    monkeypatch.setenv("HOME", str(instance))
    monkeypatch.setenv("TMPDIR", str(instance))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    env = {
        "WEBSITE_INSTANCE_ID": "a-fresh-instance",
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "CERTLC_ACME_DIRECTORY": pebble.directory_url,
        "CERTLC_ACME_ACCOUNT_KEY": authority.account_key_path.read_text(),
        "CERTLC_ACME_CA_BUNDLE": str(pebble.ca_bundle),
    }
    with read_only_disk:
        fresh = ca_factory(env, utc_now)("acme")
        issued = fresh.poll(pending.request_id, csr)
        account_url = fresh.account_url

    assert read_only_disk.refused == []
    assert list(instance.iterdir()) == []
    assert isinstance(issued, Issued), issued
    verify_chain(issued.chain_pem, pebble.roots_pem(), "moved.certlc.test")
    assert account_url == authority.account_url  # found again (onlyReturnExisting), not a new account


def test_a_failure_after_issuance_names_the_order_and_following_it_never_issues_again(
    pebble, authority, monkeypatch
) -> None:
    finalized: list[str] = []
    finalize = AcmeAuthority._finalize

    def counted(self: AcmeAuthority, client: Any, order: Any) -> Any:
        finalized.append(order.uri)
        return finalize(self, client, order)

    split_chain = acme._split_chain
    failures = [OSError(errno.EROFS, "Read-only file system")]

    def fails_once(fullchain_pem: str) -> tuple[str, ...]:
        if failures:
            raise failures.pop()
        return split_chain(fullchain_pem)

    monkeypatch.setattr(AcmeAuthority, "_finalize", counted)
    monkeypatch.setattr(acme, "_split_chain", fails_once)
    csr = make_csr("after.certlc.test")

    with pytest.raises(CaUnavailable, match="OSError") as failure:
        authority.submit(csr, "server")
    order_url = failure.value.request_id
    assert order_url and finalized == [order_url]

    issued = authority.poll(order_url, csr)

    assert isinstance(issued, Issued) and issued.request_id == order_url
    verify_chain(issued.chain_pem, pebble.roots_pem(), "after.certlc.test")
    assert finalized == [order_url]  # the CA signed once


def test_issuance_takes_milliseconds_not_seconds(pebble, authority) -> None:
    """No fixed one-second sleeps: the first look at the order comes after milliseconds."""
    authority.account_url  # noqa: B018 -- the account once, as an instance does
    took = []
    for n in range(5):
        started = time.perf_counter()
        assert isinstance(authority.submit(make_csr(f"fast{n}.certlc.test", key_type="ec"), ""), Issued)
        took.append(time.perf_counter() - started)

    assert statistics.median(took) < 0.5, took


def test_poll_refuses_an_order_of_another_server(authority) -> None:
    with pytest.raises(CaConfigError, match="not an order of the ACME server"):
        authority.poll("https://127.0.0.1:1/my-order/abc", make_csr("other.certlc.test"))


def test_rejected_identifier_is_denied(authority) -> None:
    result = authority.submit(make_csr(PEBBLE_BLOCKED_DOMAIN), "server")

    assert isinstance(result, Denied)
    assert "rejectedIdentifier" in result.reason


def test_unparsable_csr_is_denied(authority) -> None:
    result = authority.submit(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n", "server")

    assert isinstance(result, Denied)
    assert "not a valid PEM certificate request" in result.reason


def test_csr_the_ca_refuses_is_denied(authority) -> None:
    """pebble refuses a CSR whose key is an ACME account key (badCSR)."""
    authority.account_url  # noqa: B018 -- creates the account and its key
    account_key = serialization.load_pem_private_key(authority.account_key_path.read_bytes(), None)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bad.certlc.test")]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("bad.certlc.test")]), critical=False)
        .sign(account_key, hashes.SHA256())
    )

    result = authority.submit(csr.public_bytes(serialization.Encoding.PEM), "server")

    assert isinstance(result, Denied)
    assert "badCSR" in result.reason


def test_answers_already_published_are_cleaned_up_when_a_later_one_fails(pebble, tmp_path) -> None:
    """A name the solver cannot serve (a zone it does not know, a full disk) must not leave the others' answers."""
    webroot = tmp_path / "www"

    class SecondFails(Http01FolderSolver):
        def present(self, identifier: str, token: str, validation: str) -> None:
            if self.folder.is_dir() and list(self.folder.iterdir()):
                raise OSError("no space left for the second answer")
            super().present(identifier, token, validation)

    authority = AcmeAuthority(
        pebble.directory_url,
        account_key_path=tmp_path / "account.pem",
        ca_bundle=str(pebble.ca_bundle),
        solver=SecondFails(webroot),
    )
    with pytest.raises(CaUnavailable, match="no space left"):
        authority.submit(make_csr("first.certlc.test", "second.certlc.test"), "server")
    assert list((webroot / ".well-known" / "acme-challenge").iterdir()) == []


def test_challenge_type_not_offered_is_denied(pebble, tmp_path) -> None:
    class CarrierPigeon:
        challenge_type = "pigeon-01"

        def present(self, identifier: str, token: str, validation: str) -> None: ...

        def cleanup(self, identifier: str, token: str) -> None: ...

    authority = AcmeAuthority(
        pebble.directory_url,
        account_key_path=tmp_path / "account.pem",
        ca_bundle=str(pebble.ca_bundle),
        solver=CarrierPigeon(),
    )
    result = authority.submit(make_csr("pigeon.certlc.test"), "server")

    assert isinstance(result, Denied)
    assert "no pigeon-01 challenge" in result.reason and "http-01" in result.reason


def test_no_solver_is_a_configuration_error(pebble, tmp_path) -> None:
    authority = AcmeAuthority(
        pebble.directory_url, account_key_path=tmp_path / "account.pem", ca_bundle=str(pebble.ca_bundle)
    )
    with pytest.raises(CaConfigError, match="no solver"):
        authority.submit(make_csr("nosolver.certlc.test"), "server")


def test_server_down_is_unavailable(tmp_path) -> None:
    authority = AcmeAuthority(
        f"https://127.0.0.1:{free_port()}/dir", account_key_path=tmp_path / "account.pem", network_timeout=2
    )
    with pytest.raises(CaUnavailable, match="unreachable"):
        authority.submit(make_csr("down.certlc.test"), "server")


def test_external_account_binding(pebble_eab, solver, tmp_path) -> None:
    authority = AcmeAuthority(
        pebble_eab.directory_url,
        account_key_path=tmp_path / "account.pem",
        eab_kid=PEBBLE_EAB_KID,
        eab_hmac_key=PEBBLE_EAB_HMAC,
        ca_bundle=str(pebble_eab.ca_bundle),
        solver=solver,
    )
    result = authority.submit(make_csr("eab.certlc.test"), "server")

    assert isinstance(result, Issued)
    verify_chain(result.chain_pem, pebble_eab.roots_pem(), "eab.certlc.test")


def test_missing_external_account_binding_is_a_configuration_error(pebble_eab, solver, tmp_path) -> None:
    authority = AcmeAuthority(
        pebble_eab.directory_url,
        account_key_path=tmp_path / "account.pem",
        ca_bundle=str(pebble_eab.ca_bundle),
        solver=solver,
    )
    with pytest.raises(CaConfigError, match="requires external account binding"):
        authority.submit(make_csr("eab.certlc.test"), "server")


def test_wrong_external_account_key_is_a_configuration_error(pebble_eab, solver, tmp_path) -> None:
    authority = AcmeAuthority(
        pebble_eab.directory_url,
        account_key_path=tmp_path / "account.pem",
        eab_kid=PEBBLE_EAB_KID,
        eab_hmac_key="b10lLJs8l1GPIzsLP0s6pMt8O0XVGnfTaCeROxQM0BIt2XrJMDHJZBM5NuQmQJQH",
        ca_bundle=str(pebble_eab.ca_bundle),
        solver=solver,
    )
    with pytest.raises(CaConfigError, match="account setup"):
        authority.submit(make_csr("eab.certlc.test"), "server")


def test_half_an_external_account_binding_is_refused(tmp_path) -> None:
    with pytest.raises(CaConfigError, match="both the key id and the HMAC key"):
        AcmeAuthority("https://127.0.0.1:1/dir", account_key_path=tmp_path / "a.pem", eab_kid="kid")


@pytest.fixture(scope="module")
def validating_pebble(tmp_path_factory, solver) -> Iterator[servers.PebbleServer]:
    """pebble that really fetches http-01 answers, from the module's solver."""
    start = functools.partial(
        servers.start_pebble, tmp_path_factory.mktemp("pebble-http01"), always_valid=False, http_port=solver.port
    )
    with serve_or_skip("pebble", tools.ensure_pebble, start) as server:
        yield server


def test_real_http01_validation_issues(validating_pebble, solver, tmp_path) -> None:
    authority = AcmeAuthority(
        validating_pebble.directory_url,
        account_key_path=tmp_path / "account.pem",
        ca_bundle=str(validating_pebble.ca_bundle),
        solver=solver,
    )
    result = authority.submit(make_csr("localhost"), "server")

    assert isinstance(result, Issued)
    verify_chain(result.chain_pem, validating_pebble.roots_pem(), "localhost")


def test_failed_http01_validation_is_denied_with_the_cas_finding(validating_pebble, tmp_path) -> None:
    with Http01ServerSolver() as unreachable:  # not on the port pebble checks
        authority = AcmeAuthority(
            validating_pebble.directory_url,
            account_key_path=tmp_path / "account.pem",
            ca_bundle=str(validating_pebble.ca_bundle),
            solver=unreachable,
        )
        result = authority.submit(make_csr("localhost"), "server")

    assert isinstance(result, Denied)
    assert "http-01" in result.reason and "returned 404" in result.reason


def test_the_runtime_builds_the_adapter_from_app_settings(pebble_eab, tmp_path) -> None:
    """CERTLC_ACME_* settings, with external account binding and a web-root http-01 solver."""
    from renewal.clock import utc_now
    from renewal.runtime import ca_factory

    env = {
        "CERTLC_ACME_DIRECTORY": pebble_eab.directory_url,
        "CERTLC_ACME_ACCOUNT_KEY": str(tmp_path / "account.pem"),
        "CERTLC_ACME_EAB_KID": PEBBLE_EAB_KID,
        "CERTLC_ACME_EAB_HMAC_KEY": PEBBLE_EAB_HMAC,
        "CERTLC_ACME_CA_BUNDLE": str(pebble_eab.ca_bundle),
        "CERTLC_ACME_HTTP01_WEBROOT": str(tmp_path / "www"),
    }
    result = ca_factory(env, utc_now)("acme").submit(make_csr("settings.certlc.test"), "")
    assert isinstance(result, Issued), result
    verify_chain(result.chain_pem, pebble_eab.roots_pem(), "settings.certlc.test")
    assert (tmp_path / "www" / ".well-known" / "acme-challenge").is_dir()
