"""``renewal.targets.probe`` against real endpoints: nginx serving several names by SNI, a port nobody listens on,
servers that accept and never answer (or never accept), an alerting server and a name that does not resolve."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from localazure.ports import LOOPBACK, free_port

from renewal.clock import utc_now
from renewal.targets.model import Probe, Target
from renewal.targets.probe import CUT_SHORT, NOT_PROBED, probe, probe_all
from tests.fixtures.nginx import DEFAULT_NAME, Nginx, leaf_files

REPO = Path(__file__).resolve().parents[2]


def leaf(cert: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(cert.read_bytes())[0]


def thumbprint(cert: Path) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding

    return hashlib.sha1(leaf(cert).public_bytes(Encoding.DER), usedforsecurity=False).hexdigest().upper()


def name() -> str:
    return f"www-{uuid.uuid4().hex[:8]}.contoso.test"


def served(host: str, port: int, timeout: float = 5.0) -> Probe:
    return probe(host, port, connect=LOOPBACK, timeout=timeout, now=utc_now)


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """Accepts every connection and never sends a byte: a probe must give up at its deadline, not hang."""
    server = socket.create_server((LOOPBACK, 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


@contextlib.contextmanager
def full_backlog() -> Iterator[int]:
    """A listener whose accept queue is full, so a new connection's SYN is dropped: connect itself never ends."""
    server = socket.socket()
    server.bind((LOOPBACK, 0))
    server.listen(0)
    port = server.getsockname()[1]
    clients = []
    for _ in range(3):
        client = socket.socket()
        client.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            client.connect((LOOPBACK, port))
        clients.append(client)
    try:
        yield port
    finally:
        for client in clients:
            client.close()
        server.close()


@contextlib.contextmanager
def alerting_server(tmp_path: Path) -> Iterator[int]:
    """A TLS server that answers every handshake with the alert unrecognized_name."""
    cert, key = leaf_files(trustme.CA(), tmp_path / "alerting", "alerting.test")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda *_: ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
    server = socket.create_server((LOOPBACK, 0))
    server.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn = server.accept()[0]
            except TimeoutError:
                continue
            conn.settimeout(5)
            with contextlib.suppress(OSError), context.wrap_socket(conn, server_side=True):
                pass
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        server.close()


def test_the_served_leaf_is_the_one_in_the_files(nginx: Nginx, nginx_ca: trustme.CA, tmp_path: Path):
    host = name()
    cert, key = leaf_files(nginx_ca, tmp_path, host)
    nginx.serve(host, cert, key)

    seen = served(host, nginx.port)

    assert seen.reached and not seen.error
    assert seen.thumbprint == thumbprint(cert)
    assert seen.not_after == leaf(cert).not_valid_after_utc and seen.not_after.tzinfo is not None
    assert seen.subject == leaf(cert).subject.rfc4514_string()
    assert (seen.host, seen.port) == (host, nginx.port)


def test_sni_picks_the_leaf_of_the_name_asked_for(nginx: Nginx, nginx_ca: trustme.CA, tmp_path: Path):
    first, second = name(), name()
    for host in (first, second):
        nginx.serve(host, *leaf_files(nginx_ca, tmp_path, host))

    seen = {host: served(host, nginx.port).thumbprint for host in (first, second, name())}

    assert seen[first] == thumbprint(tmp_path / f"{first}.pem")
    assert seen[second] == thumbprint(tmp_path / f"{second}.pem")
    assert len(set(seen.values())) == 3  # a name nginx does not know gets its default server's leaf
    assert list(seen.values())[2] == thumbprint(nginx.sites[DEFAULT_NAME][0])


def test_new_files_and_a_reload_serve_the_new_leaf_and_a_name_never_updated_keeps_the_old(
    nginx: Nginx, nginx_ca: trustme.CA, tmp_path: Path
):
    updated, forgotten = name(), name()
    nginx.serve(updated, *leaf_files(nginx_ca, tmp_path, updated))
    nginx.serve(forgotten, *leaf_files(nginx_ca, tmp_path, forgotten))
    old = served(updated, nginx.port).thumbprint
    forgotten_before = served(forgotten, nginx.port).thumbprint

    leaf_files(nginx_ca, tmp_path, updated)  # a renewed leaf, over the same files
    nginx.reload()

    assert served(updated, nginx.port).thumbprint == thumbprint(tmp_path / f"{updated}.pem") != old
    assert served(forgotten, nginx.port).thumbprint == forgotten_before


def test_an_expired_self_signed_wrong_name_leaf_is_read_not_refused(nginx: Nginx, tmp_path: Path):
    host, other = name(), name()
    stale = trustme.CA()  # a CA nobody trusts, a leaf for another name, expired a month ago
    now = dt.datetime.now(dt.UTC)
    issued = stale.issue_cert(other, not_before=now - dt.timedelta(days=400), not_after=now - dt.timedelta(days=30))
    cert, key = tmp_path / "stale.pem", tmp_path / "stale.key"
    cert.write_bytes(issued.cert_chain_pems[0].bytes())
    key.write_bytes(issued.private_key_pem.bytes())
    nginx.serve(host, cert, key)

    seen = served(host, nginx.port)

    assert seen.thumbprint == thumbprint(cert)
    assert seen.not_after is not None and seen.not_after < now


def test_a_port_nobody_listens_on_is_refused():
    seen = probe(LOOPBACK, free_port(), timeout=5, now=utc_now)

    assert not seen.reached
    assert seen.error == "connection refused"


def test_a_server_that_accepts_and_stays_silent_times_out_at_the_deadline():
    with silent_server() as port:
        started = time.monotonic()
        seen = probe("www.contoso.test", port, connect=LOOPBACK, timeout=0.5, now=utc_now)
        took = time.monotonic() - started

    assert seen.error == "timed out after 0.5 s in the TLS handshake"
    assert 0.45 <= took < 1.5


def test_a_connection_that_is_never_accepted_times_out_connecting():
    with full_backlog() as port:
        started = time.monotonic()
        seen = probe(LOOPBACK, port, timeout=0.5, now=utc_now)
        took = time.monotonic() - started

    assert seen.error == "timed out after 0.5 s connecting"
    assert took < 1.5


def test_a_tls_alert_is_named(tmp_path: Path):
    with alerting_server(tmp_path) as port:
        seen = probe("www.contoso.test", port, connect=LOOPBACK, timeout=5, now=utc_now)

    assert seen.error == "TLS alert unrecognized name"


def test_a_name_that_does_not_resolve_says_so():
    seen = probe("no-such-host.invalid", 443, timeout=5, now=utc_now)

    assert seen.error == "name no-such-host.invalid does not resolve"
    assert seen.thumbprint is None and seen.host == "no-such-host.invalid"


def test_the_probe_is_stamped_with_the_clock_it_is_given():
    moment = dt.datetime(2031, 1, 2, tzinfo=dt.UTC)

    assert probe(LOOPBACK, free_port(), timeout=1, now=lambda: moment).at == moment


def target(*hosts: str, port: int, connect: str | None = LOOPBACK) -> Target:
    return Target(kind="endpoint", name=f"{hosts[0]}:{port}", hosts=hosts, port=port, connect=connect)


def test_probe_all_probes_every_host_of_every_target_once_within_its_deadline(
    nginx: Nginx, nginx_ca: trustme.CA, tmp_path: Path
):
    live = [name() for _ in range(3)]
    for host in live:
        nginx.serve(host, *leaf_files(nginx_ca, tmp_path, host))
    dead = free_port()
    with silent_server() as silent, silent_server() as silent2:
        targets = [
            target(*live[:2], port=nginx.port),
            target(live[2], live[0], port=nginx.port),  # live[0] again: probed once
            target("silent.contoso.test", port=silent),
            target("silent2.contoso.test", port=silent2),
            target("dead.contoso.test", port=dead),
            target("no-such-host.invalid", port=443, connect=None),
        ]
        started = time.monotonic()
        probes = probe_all(targets, timeout=1.0, workers=4, deadline=5.0)
        took = time.monotonic() - started

    assert took < 2.5  # the silent ones in parallel, each cut at its own 1 s
    by_host = {p.host: p for p in probes}
    assert [p.host for p in probes] == [*live[:2], live[2], "silent.contoso.test", "silent2.contoso.test",
                                        "dead.contoso.test", "no-such-host.invalid"]  # fmt: skip
    for host in live:
        assert by_host[host].thumbprint == thumbprint(tmp_path / f"{host}.pem")
    assert by_host["silent.contoso.test"].error == "timed out after 1 s in the TLS handshake"
    assert by_host["dead.contoso.test"].error == "connection refused"
    assert by_host["no-such-host.invalid"].error == "name no-such-host.invalid does not resolve"


def test_probe_all_reports_what_its_deadline_left_and_never_outlives_it():
    with silent_server() as port:
        targets = [target(f"s{n}.contoso.test", port=port) for n in range(10)]
        started = time.monotonic()
        probes = probe_all(targets, timeout=5.0, workers=2, deadline=1.0)
        took = time.monotonic() - started

    assert took < 1.5
    assert len(probes) == 10 and not any(p.reached for p in probes)
    assert [p.error for p in probes] == [CUT_SHORT] * 2 + [NOT_PROBED] * 8  # two started, the rest never did


def test_probe_all_refuses_a_run_without_a_deadline():
    with pytest.raises(ValueError, match="deadline > 0"):
        probe_all([], timeout=1, workers=1, deadline=0)


def test_importing_the_prober_loads_no_tls_or_cryptography():
    """The Functions host imports renewal at start-up: the handshake's modules load when a probe runs."""
    code = (
        "import sys, renewal.targets.probe, renewal.targets.declared; "
        "print(sorted({'ssl', 'cryptography'} & {*sys.modules}))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)

    assert result.stdout.strip() == "[]", result.stderr
