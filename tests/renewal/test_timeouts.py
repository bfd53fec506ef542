"""Bounded time against real servers on loopback that take a connection and never answer.

Every call runs in a thread joined with a deadline (``within``), so a timeout that is not honoured
fails the test instead of hanging it. Budgets are 0.5 s; the SDK's and libraries' own defaults
(300 s for Key Vault, 30 s for the CAs) would fail every assertion on elapsed time.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from renewal.ca.base import CaUnavailable
from renewal.clients import (
    KeyVaultTimeouts,
    blob_container_client,
    certificate_client,
    keyvault_client_options,
    queue_client,
)
from renewal.keyvault import CertificateSnapshot, KeyVault, KeyVaultError
from renewal.messages import RenewalRequest
from renewal.notify import NotifyConfigError, Renewed, notifier_from_env
from renewal.reporting import Reporter
from renewal.runtime import ca_factory
from renewal.settings import SettingsError, settings_from_env
from renewal.vaults import Vault
from tests.fixtures.mail import TlsMaterial, make_tls_material
from tests.fixtures.servers import make_csr

BUDGET = 0.5
SLACK = 1.0  # scheduling and TLS set-up on a busy machine; far below one retry of any default
DEADLINE = 20.0  # the join deadline of every call: the test fails, never hangs
TOKEN = {"CERTLC_LOCAL_TOKEN": "certlc-test-token"}


# -- servers that never answer ---------------------------------------------------------------------


@dataclass
class Silent:
    """Accepts TCP connections (optionally finishing the TLS handshake, optionally sending ``first``)
    and then never sends another byte. ``connections`` counts what it accepted."""

    tls: ssl.SSLContext | None = None
    first: bytes = b""
    connections: int = 0
    _held: list[socket.socket] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="silent-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            while not self._stop.is_set():
                if not selector.select(timeout=0.05):
                    continue
                conn, _ = self._listener.accept()
                self.connections += 1
                self._held.append(conn)
                try:
                    if self.tls is not None:
                        conn.settimeout(5)
                        conn = self.tls.wrap_socket(conn, server_side=True)
                        self._held.append(conn)
                    if self.first:
                        conn.recv(65536)
                        conn.sendall(self.first)
                except OSError:
                    pass  # the client gave up first: that is what these tests expect

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        assert not self._thread.is_alive(), "the silent server did not stop"
        for conn in self._held:
            conn.close()
        self._listener.close()


@dataclass
class Unaccepted:
    """A listener whose accept queue is full: the kernel drops new SYNs, so a connect never completes."""

    def __post_init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self.port: int = self._listener.getsockname()[1]
        self._fillers: list[socket.socket] = []
        for _ in range(4):  # fill the queue until a connect times out (one on Linux)
            probe = socket.socket()
            probe.settimeout(0.2)
            try:
                probe.connect(("127.0.0.1", self.port))
            except TimeoutError:
                probe.close()
                return
            self._fillers.append(probe)
        raise AssertionError("could not fill the accept queue: connects never time out here")

    def close(self) -> None:
        for sock in self._fillers:
            sock.close()
        self._listener.close()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls_material(tmp_path_factory.mktemp("timeouts-tls"))


@pytest.fixture
def silent() -> Iterator[Silent]:
    server = Silent()
    yield server
    server.close()


@pytest.fixture
def silent_tls(tls: TlsMaterial) -> Iterator[Silent]:
    server = Silent(tls=tls.server_context())
    yield server
    server.close()


@pytest.fixture
def unaccepted() -> Iterator[Unaccepted]:
    server = Unaccepted()
    yield server
    server.close()


@dataclass
class Outcome:
    elapsed: float
    error: BaseException | None
    value: Any = None


def within(call: Callable[[], Any], deadline: float = DEADLINE) -> Outcome:
    """Runs ``call`` in a thread and waits at most ``deadline`` seconds for it."""
    box: dict[str, Any] = {}

    def run() -> None:
        start = time.monotonic()
        try:
            box["value"] = call()
        except BaseException as exc:  # handed to the test to judge
            box["error"] = exc
        box["elapsed"] = time.monotonic() - start

    thread = threading.Thread(target=run, name="timed-call", daemon=True)
    thread.start()
    thread.join(timeout=deadline)
    if thread.is_alive():
        pytest.fail(f"the call was still waiting after {deadline:g} s: no deadline was applied")
    return Outcome(box["elapsed"], box.get("error"), box.get("value"))


def assert_within_budget(outcome: Outcome, budget: float = BUDGET) -> None:
    assert budget * 0.9 <= outcome.elapsed < budget + SLACK, f"took {outcome.elapsed:.2f} s for a {budget} s budget"


# -- Key Vault -------------------------------------------------------------------------------------


def kv_env(tls: TlsMaterial, **settings: str) -> dict[str, str]:
    return {**TOKEN, "CERTLC_KEYVAULT_CA_BUNDLE": str(tls.ca_pem), **settings}


def keyvault_at(port: int, env: dict[str, str]) -> KeyVault:
    url = f"https://127.0.0.1:{port}"
    return KeyVault(certificate_client(url, env), Vault("kv-test", url))


def policy() -> Any:
    from azure.keyvault.certificates import CertificatePolicy

    return CertificatePolicy(issuer_name="Unknown", subject="CN=web.contoso.com")


KEYVAULT_CALLS: dict[str, Callable[[KeyVault], Any]] = {
    "get": lambda kv: kv.get("web"),
    "create": lambda kv: kv.create_pending("web", policy(), {}),
    "merge": lambda kv: kv.merge("web", [b"\x30\x00"], {}),
    "list": lambda kv: list(kv.list()),
}


@pytest.mark.parametrize("call", sorted(KEYVAULT_CALLS))
def test_key_vault_that_never_answers_is_a_transient_error_within_the_read_timeout(
    silent_tls: Silent, tls: TlsMaterial, call: str
) -> None:
    env = kv_env(tls, CERTLC_KEYVAULT_CONNECT_TIMEOUT="5", CERTLC_KEYVAULT_READ_TIMEOUT=str(BUDGET))
    outcome = within(lambda: KEYVAULT_CALLS[call](keyvault_at(silent_tls.port, env)))
    assert isinstance(outcome.error, KeyVaultError), outcome.error
    assert outcome.error.transient
    assert "did not answer in time" in str(outcome.error)
    assert "CERTLC_KEYVAULT_READ_TIMEOUT" in str(outcome.error)
    assert_within_budget(outcome)
    assert silent_tls.connections == 1, "a request over its deadline was sent again inside the call"


def test_key_vault_whose_tls_handshake_never_completes_times_out_too(silent: Silent, tls: TlsMaterial) -> None:
    env = kv_env(tls, CERTLC_KEYVAULT_CONNECT_TIMEOUT=str(BUDGET), CERTLC_KEYVAULT_READ_TIMEOUT=str(BUDGET))
    outcome = within(lambda: keyvault_at(silent.port, env).get("web"))
    assert isinstance(outcome.error, KeyVaultError) and outcome.error.transient, outcome.error
    assert_within_budget(outcome)
    assert silent.connections == 1


def test_key_vault_connect_timeout_is_its_own_setting(unaccepted: Unaccepted, tls: TlsMaterial) -> None:
    env = kv_env(tls, CERTLC_KEYVAULT_CONNECT_TIMEOUT=str(BUDGET), CERTLC_KEYVAULT_READ_TIMEOUT="10")
    outcome = within(lambda: keyvault_at(unaccepted.port, env).get("web"))
    assert isinstance(outcome.error, KeyVaultError) and outcome.error.transient, outcome.error
    assert "did not answer in time" in str(outcome.error)
    assert_within_budget(outcome)


def test_key_vault_that_stops_in_the_middle_of_an_answer_is_not_asked_again(tls: TlsMaterial) -> None:
    headers = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{"id": '
    server = Silent(tls=tls.server_context(), first=headers)
    try:
        env = kv_env(tls, CERTLC_KEYVAULT_CONNECT_TIMEOUT="5", CERTLC_KEYVAULT_READ_TIMEOUT=str(BUDGET))
        outcome = within(lambda: keyvault_at(server.port, env).get("web"))
        assert isinstance(outcome.error, KeyVaultError) and outcome.error.transient, outcome.error
        assert "did not answer in time" in str(outcome.error)
        assert_within_budget(outcome)
        assert server.connections == 1, "azure-core calls this a connection error and would retry a GET 3 times"
    finally:
        server.close()


def test_the_runtime_settings_reach_the_client(silent_tls: Silent, tls: TlsMaterial) -> None:
    env = {
        **kv_env(tls),
        "CERTLC_VAULTS": f"kv-test=https://127.0.0.1:{silent_tls.port}",
        "CERTLC_KEYVAULT_CONNECT_TIMEOUT": "4",
        "CERTLC_KEYVAULT_READ_TIMEOUT": str(BUDGET),
    }
    settings = settings_from_env(env)
    assert settings.keyvault_timeouts == KeyVaultTimeouts(connect=4.0, read=BUDGET)
    vault = settings.vaults["kv-test"]
    # What build_runtime does, with the parsed settings and an env that no longer says anything.
    client = certificate_client(vault.url, kv_env(tls), timeouts=settings.keyvault_timeouts)
    outcome = within(lambda: KeyVault(client, vault).get("web"))
    assert isinstance(outcome.error, KeyVaultError) and outcome.error.transient, outcome.error
    assert_within_budget(outcome)


def test_defaults_replace_the_sdk_300_seconds_and_caller_options_still_win() -> None:
    options = keyvault_client_options({})
    assert (options["connection_timeout"], options["read_timeout"]) == (10.0, 30.0)
    doctor = keyvault_client_options({}, retry_total=0, connection_timeout=3, read_timeout=3)
    assert (doctor["connection_timeout"], doctor["read_timeout"]) == (3, 3)
    assert doctor["retry_policy"].total_retries == 0 and options["retry_policy"].total_retries == 10


def test_sync_agent_gets_the_same_deadlines(silent_tls: Silent, tls: TlsMaterial) -> None:
    from certlc.sync.errors import SyncError
    from certlc.sync.fetch import fetch_bundle

    env = kv_env(tls, CERTLC_KEYVAULT_CONNECT_TIMEOUT="5", CERTLC_KEYVAULT_READ_TIMEOUT=str(BUDGET))
    vault = Vault("kv-test", f"https://127.0.0.1:{silent_tls.port}")
    outcome = within(lambda: fetch_bundle(vault, "web", env))
    assert isinstance(outcome.error, SyncError), outcome.error
    assert "did not answer in time" in str(outcome.error)
    assert_within_budget(outcome)
    assert silent_tls.connections == 1


# -- CA adapters -----------------------------------------------------------------------------------


def ca_env(**settings: str) -> dict[str, str]:
    return {"CERTLC_CA_TIMEOUT": str(BUDGET), **settings}


def submit_through_the_factory(name: str, env: dict[str, str], profile: str = "") -> Outcome:
    ca = ca_factory(env, clock=lambda: datetime.now(UTC))(name)  # what the runtime builds
    csr = make_csr("web.contoso.com")
    return within(lambda: ca.submit(csr, profile))


def test_cfssl_that_never_answers_is_unavailable_within_the_ca_timeout(silent: Silent) -> None:
    outcome = submit_through_the_factory("cfssl", ca_env(CERTLC_CFSSL_URL=f"http://127.0.0.1:{silent.port}"))
    assert isinstance(outcome.error, CaUnavailable), outcome.error
    assert "Timeout" in str(outcome.error)
    assert_within_budget(outcome)


def test_cfssl_connect_is_bounded_by_the_ca_timeout(unaccepted: Unaccepted) -> None:
    outcome = submit_through_the_factory("cfssl", ca_env(CERTLC_CFSSL_URL=f"http://127.0.0.1:{unaccepted.port}"))
    assert isinstance(outcome.error, CaUnavailable), outcome.error
    assert_within_budget(outcome)


@pytest.mark.parametrize("server_tls", [False, True], ids=["tls-handshake-stalls", "request-unanswered"])
def test_adcs_that_never_answers_is_unavailable_within_the_ca_timeout(tls: TlsMaterial, server_tls: bool) -> None:
    server = Silent(tls=tls.server_context() if server_tls else None)
    try:
        env = ca_env(
            CERTLC_ADCS_SERVER=f"127.0.0.1:{server.port}",
            CERTLC_ADCS_AUTH="basic",
            CERTLC_ADCS_USERNAME="svc-certlc",
            CERTLC_ADCS_PASSWORD="not-a-real-password",
            CERTLC_ADCS_CA_BUNDLE=str(tls.ca_pem),
        )
        outcome = submit_through_the_factory("adcs", env, profile="WebServer")
        assert isinstance(outcome.error, CaUnavailable), outcome.error  # not CaConfigError: a timeout is not TLS
        assert_within_budget(outcome)
        assert server.connections == 1
    finally:
        server.close()


def test_acme_server_that_never_answers_is_unavailable_within_the_ca_timeout(
    silent_tls: Silent, tls: TlsMaterial, tmp_path: Path
) -> None:
    env = ca_env(
        CERTLC_ACME_DIRECTORY=f"https://127.0.0.1:{silent_tls.port}/directory",
        CERTLC_ACME_ACCOUNT_KEY=str(tmp_path / "account.pem"),
        CERTLC_ACME_CA_BUNDLE=str(tls.ca_pem),
    )
    outcome = submit_through_the_factory("acme", env)
    assert isinstance(outcome.error, CaUnavailable), outcome.error
    assert "unreachable" in str(outcome.error) and "Timeout" in str(outcome.error)
    assert_within_budget(outcome)


def test_default_ca_timeout_is_30_seconds_for_every_adapter(tmp_path: Path) -> None:
    env = {
        "CERTLC_CFSSL_URL": "http://127.0.0.1:9",
        "CERTLC_ACME_DIRECTORY": "https://127.0.0.1:9/directory",
        "CERTLC_ACME_ACCOUNT_KEY": str(tmp_path / "account.pem"),
        "CERTLC_ADCS_SERVER": "127.0.0.1:9",
        "CERTLC_ADCS_AUTH": "basic",
        "CERTLC_ADCS_USERNAME": "u",
        "CERTLC_ADCS_PASSWORD": "p",
    }
    build = ca_factory(env, clock=lambda: datetime.now(UTC))
    assert build("cfssl")._timeout == 30.0  # type: ignore[attr-defined]
    assert build("acme").network_timeout == 30.0  # type: ignore[attr-defined]
    assert build("adcs")._clients.get().timeout == 30.0  # type: ignore[attr-defined]
    custom = ca_factory({**env, "CERTLC_CA_TIMEOUT": "7.5"}, clock=lambda: datetime.now(UTC))
    assert custom("adcs")._clients.get().timeout == 7.5  # type: ignore[attr-defined]


# -- notifications ---------------------------------------------------------------------------------


class ScriptedSmtp:
    """A plain SMTP server that answers normally until ``stall_at`` and then says nothing more.

    ``stall_at`` is ``greeting``, a command verb (``EHLO``, ``STARTTLS``, ``AUTH``, ``MAIL``, ``DATA``),
    ``handshake`` (accepts STARTTLS, never starts TLS) or ``end-of-data`` (never answers the final ``.``).
    """

    def __init__(self, stall_at: str) -> None:
        self.stall_at = stall_at
        self.reached = False
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(DEADLINE)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="scripted-smtp", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        with conn, conn.makefile("rb") as lines:
            with contextlib.suppress(OSError):  # the client hung up
                self._converse(conn, lines)
            self._stop.wait(DEADLINE)

    def _stall(self) -> None:
        self.reached = True

    def _converse(self, conn: socket.socket, lines: Any) -> None:
        if self.stall_at == "greeting":
            return self._stall()
        conn.sendall(b"220 scripted.test ESMTP\r\n")
        while line := lines.readline():
            verb = line.split(b" ", 1)[0].strip().upper().decode()
            if verb == self.stall_at:
                return self._stall()
            if verb == "EHLO":
                conn.sendall(b"250-scripted.test\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n")
            elif verb == "STARTTLS":
                conn.sendall(b"220 go ahead\r\n")
                return self._stall()  # ``handshake``: never a ServerHello
            elif verb == "DATA":
                conn.sendall(b"354 end with .\r\n")
                while (body := lines.readline()) and body != b".\r\n":
                    pass
                if self.stall_at == "end-of-data":
                    return self._stall()
                conn.sendall(b"250 queued\r\n")
            else:
                conn.sendall(b"250 ok\r\n")
        return None

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(timeout=5)
        assert not self._thread.is_alive(), "the SMTP server did not stop"


def renewed() -> Renewed:
    return Renewed(
        vault="kv-test",
        name="web",
        old_version="1" * 32,
        new_version="2" * 32,
        thumbprint="C0FFEE",
        expires_on=datetime(2031, 1, 2, tzinfo=UTC),
        ca="cfssl",
        recipients=("pki@contoso.com",),
    )


SMTP_STALLS = {
    # stall point: (security, with a login)
    "greeting": ("starttls", False),
    "EHLO": ("starttls", False),
    "STARTTLS": ("starttls", False),
    "handshake": ("starttls", False),
    "AUTH": ("none", True),
    "MAIL": ("none", False),
    "DATA": ("none", False),
    "end-of-data": ("none", False),
}


@pytest.mark.parametrize("stall_at", list(SMTP_STALLS))
def test_smtp_server_that_stops_answering_fails_the_delivery_within_the_timeout(
    stall_at: str, caplog: pytest.LogCaptureFixture
) -> None:
    security, login = SMTP_STALLS[stall_at]
    server = ScriptedSmtp(stall_at)
    try:
        env = {
            "CERTLC_SMTP_HOST": "127.0.0.1",
            "CERTLC_SMTP_PORT": str(server.port),
            "CERTLC_SMTP_SENDER": "certlc@contoso.com",
            "CERTLC_SMTP_SECURITY": security,
            "CERTLC_SMTP_TIMEOUT": str(BUDGET),
        }
        if login:
            env |= {"CERTLC_SMTP_USERNAME": "certlc", "CERTLC_SMTP_PASSWORD": "not-a-real-password"}
        notifier = notifier_from_env(env)
        with caplog.at_level(logging.WARNING, logger="renewal.notify.notifier"):
            outcome = within(lambda: notifier.send(renewed()))
        assert outcome.error is None, outcome.error  # a failed delivery never becomes an error of the renewal
        assert server.reached, f"the conversation never got to {stall_at}"
        (result,) = outcome.value.results
        assert not result.ok
        assert (
            result.error
            == f"SMTP server 127.0.0.1:{server.port} did not answer within {BUDGET:g} s (CERTLC_SMTP_TIMEOUT)"
        )
        assert_within_budget(outcome)
        assert result.error in caplog.text
    finally:
        server.close()


@pytest.mark.parametrize("answer", [b"", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"], ids=["none", "partial"])
def test_webhook_that_never_answers_fails_the_delivery_within_the_timeout(
    answer: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    server = Silent(first=answer)
    try:
        env = {
            "CERTLC_WEBHOOK_URLS": f"generic=http://127.0.0.1:{server.port}/hooks/secret-path?sig=abc",
            "CERTLC_WEBHOOK_TIMEOUT": str(BUDGET),
        }
        notifier = notifier_from_env(env)
        with caplog.at_level(logging.WARNING, logger="renewal.notify.notifier"):
            outcome = within(lambda: notifier.send(renewed()))
        assert outcome.error is None, outcome.error
        (result,) = outcome.value.results
        assert result.error == f"generic webhook at 127.0.0.1 did not answer within {BUDGET:g} s"
        assert_within_budget(outcome)
        assert result.error in caplog.text and "secret-path" not in caplog.text
        assert server.connections == 1
    finally:
        server.close()


def test_notification_timeout_after_a_renewal_is_recorded_not_raised(silent: Silent) -> None:
    """The path the workflow takes after the merge: a stalled channel must not fail (and so re-run) the renewal."""
    env = {"CERTLC_WEBHOOK_URLS": f"generic=http://127.0.0.1:{silent.port}/hook", "CERTLC_WEBHOOK_TIMEOUT": "0.5"}
    records: list[tuple[str, dict[str, Any]]] = []

    class Audit:
        def record(self, event: str, **fields: Any) -> None:
            records.append((event, fields))

    reporter = Reporter(notifier_from_env(env), Audit(), env, lambda: datetime.now(UTC))

    def snapshot(version: str) -> CertificateSnapshot:
        expires = datetime(2031, 1, 2, tzinfo=UTC)
        return CertificateSnapshot("kv-test", "web", version, True, None, expires, "Unknown", {}, None, None)

    request = RenewalRequest(vault="kv-test", name="web", trigger="near_expiry")
    outcome = within(lambda: reporter.renewed(request, snapshot("1" * 32), snapshot("2" * 32), "cfssl"))
    assert outcome.error is None, outcome.error
    assert_within_budget(outcome)
    ((event, fields),) = records
    assert event == "notified"
    assert fields["channels"] == {
        "generic:127.0.0.1": "error: generic webhook at 127.0.0.1 did not answer within 0.5 s"
    }


# -- settings --------------------------------------------------------------------------------------

BAD_SECONDS = ["soon", "0", "-1", "nan", "inf", "301"]


@pytest.mark.parametrize("raw", BAD_SECONDS)
@pytest.mark.parametrize(
    "key", ["CERTLC_KEYVAULT_CONNECT_TIMEOUT", "CERTLC_KEYVAULT_READ_TIMEOUT", "CERTLC_CA_TIMEOUT"]
)
def test_bad_renewal_timeouts_are_refused_at_start_naming_the_setting(key: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=rf"^{key}={raw!r} (is not a number|must be more than 0)"):
        settings_from_env({"CERTLC_VAULTS": "kv-test", key: raw})


@pytest.mark.parametrize("raw", BAD_SECONDS)
@pytest.mark.parametrize("key", ["CERTLC_SMTP_TIMEOUT", "CERTLC_WEBHOOK_TIMEOUT"])
def test_bad_notification_timeouts_are_refused_naming_the_setting(key: str, raw: str) -> None:
    env = {"CERTLC_SMTP_HOST": "127.0.0.1", "CERTLC_SMTP_SENDER": "a@contoso.com", "CERTLC_SMTP_SECURITY": "none"}
    with pytest.raises(NotifyConfigError, match=rf"^{key}={raw!r} (is not a number|must be more than 0)"):
        notifier_from_env({**env, key: raw})


def test_timeout_defaults() -> None:
    settings = settings_from_env({"CERTLC_VAULTS": "kv-test"})
    assert settings.keyvault_timeouts == KeyVaultTimeouts(connect=10.0, read=30.0)
    assert settings.ca_timeout == 30.0
    env = {"CERTLC_SMTP_HOST": "mail.contoso.com", "CERTLC_SMTP_SENDER": "a@contoso.com"}
    (smtp,) = notifier_from_env(env).channels
    assert smtp.settings.timeout == 10.0  # type: ignore[attr-defined]
    (hook,) = notifier_from_env({"CERTLC_WEBHOOK_URLS": "generic=https://hooks.contoso.com/x"}).channels
    assert hook.timeout == 10.0  # type: ignore[attr-defined]


# -- Storage (the renewal queues and the lock's blobs) -------------------------------------------


def storage_env(port: int) -> dict[str, str]:
    from localazure.servers import AZURITE_ACCOUNT, AZURITE_KEY

    endpoint = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
    return {
        "CertlcStorage": (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"QueueEndpoint={endpoint};BlobEndpoint={endpoint};"
        )
    }


STORAGE_CALLS: dict[str, Callable[[dict[str, str]], Any]] = {
    "queue": lambda env: queue_client(env, "certlc-renewals").send_message("x"),
    "blob": lambda env: blob_container_client(env, "certlc-locks").get_container_properties(),
}


@pytest.mark.parametrize("call", sorted(STORAGE_CALLS))
def test_storage_that_is_not_running_fails_within_seconds_not_minutes(call: str) -> None:
    """A stopped Azurite: three quick retries (1, 2 and 4 s apart), not the SDKs' 80 s."""
    from azure.core.exceptions import ServiceRequestError
    from localazure.ports import free_port

    outcome = within(lambda: STORAGE_CALLS[call](storage_env(free_port())))
    assert isinstance(outcome.error, ServiceRequestError), outcome.error
    assert 6.5 <= outcome.elapsed < 12.0, f"took {outcome.elapsed:.1f} s"


@pytest.mark.parametrize("call", sorted(STORAGE_CALLS))
def test_storage_that_never_answers_is_not_asked_again(
    call: str, silent: Silent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request over its deadline fails at once: four tries of a stalled request would wait four deadlines."""
    import renewal.clients

    monkeypatch.setattr(renewal.clients, "STORAGE_READ_TIMEOUT", BUDGET)
    outcome = within(lambda: STORAGE_CALLS[call](storage_env(silent.port)))
    assert outcome.error is not None
    assert_within_budget(outcome)
    assert silent.connections == 1
