"""What an endpoint serves: one TLS handshake with SNI, reading the leaf whatever it is.

The chain and the name are not verified on purpose: an expired, self-signed or wrong-name leaf is exactly what a
renewal's last step must see. Every step (name lookup, connect, handshake) shares one deadline, so a server that
accepts and never answers costs ``timeout`` seconds and no more. ``ssl``, ``socket`` and ``cryptography`` are
imported when a probe runs: the Functions host imports ``renewal`` at start-up.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from renewal.clock import utc_now
from renewal.targets.model import Probe, Target

if TYPE_CHECKING:
    import ssl

NOT_PROBED = "not probed: the run's deadline passed"
CUT_SHORT = "no answer before the run's deadline"


class _Unreachable(Exception):
    """Why this probe has no leaf, in words for the status table."""


@cache
def _client_context() -> ssl.SSLContext:
    """One context for every probe (it is thread-safe): no chain or name check, and every cipher OpenSSL still
    has, so an old server's leaf is read rather than refused."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # what is served is compared with Key Vault by thumbprint, not trusted
    with contextlib.suppress(ssl.SSLError):  # a build without security levels keeps its defaults
        context.set_ciphers("ALL:@SECLEVEL=0")  # a weak key or cipher is read and shown, not refused
    return context


def _remaining(deadline: float, timeout: float, step: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise _Unreachable(f"timed out after {timeout:g} s {step}")
    return left


def _resolve(name: str, port: int, deadline: float, timeout: float) -> list[tuple[Any, ...]]:
    """``getaddrinfo`` has no timeout of its own: it runs on a daemon thread the probe stops waiting for."""
    import socket

    answer: list[Any] = []

    def lookup() -> None:
        try:
            answer.append(socket.getaddrinfo(name, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:  # UnicodeError: a label IDNA refuses (empty, over 63)
            answer.append(exc)

    worker = threading.Thread(target=lookup, name="certlc-probe-dns", daemon=True)
    worker.start()
    worker.join(_remaining(deadline, timeout, "looking up the name"))
    if not answer:
        raise _Unreachable(f"timed out after {timeout:g} s looking up {name}")
    found = answer[0]
    if isinstance(found, socket.gaierror):
        if found.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            raise _Unreachable(f"name {name} does not resolve")
        raise _Unreachable(f"name lookup of {name} failed: {found.strerror}")
    if isinstance(found, UnicodeError):
        raise _Unreachable(f"{name} is not a host name")
    if isinstance(found, OSError):
        raise _Unreachable(f"name lookup of {name} failed: {found.strerror or found}")
    if not found:
        raise _Unreachable(f"name {name} does not resolve")
    return found


def _connect(name: str, port: int, deadline: float, timeout: float) -> Any:
    """A connected socket to the first address of ``name`` that answers, within the deadline."""
    import socket

    last: OSError | None = None
    for family, kind, proto, _, address in _resolve(name, port, deadline, timeout):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(_remaining(deadline, timeout, "connecting"))
            sock.connect(address)
            return sock
        except TimeoutError:
            sock.close()
            raise _Unreachable(f"timed out after {timeout:g} s connecting") from None
        except _Unreachable:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            last = exc
    if isinstance(last, ConnectionRefusedError):
        raise _Unreachable("connection refused")
    raise _Unreachable(f"could not connect: {last.strerror if last and last.strerror else last}")


def _alert(exc: ssl.SSLError) -> str:
    """OpenSSL's reason in words: ``TLSV1_ALERT_INTERNAL_ERROR`` → ``TLS alert internal error``; the alerts are
    the reasons named ``SSLV3_ALERT_*``, ``TLSV1_ALERT_*``, ``TLSV13_ALERT_*`` and five ``TLSV1_*`` ones."""
    import re

    reason = str(getattr(exc, "reason", "") or "")
    alert = re.fullmatch(r"(?:SSLV3_ALERT|TLSV1_ALERT|TLSV13_ALERT|TLSV1)_([A-Z0-9_]+)", reason)
    if alert:
        return "TLS alert " + alert[1].replace("_", " ").lower()
    if reason:
        return f"TLS handshake failed: {reason.replace('_', ' ').lower()}"
    return f"TLS handshake failed: {exc}"


def _handshake(sock: Any, server_name: str | None, deadline: float, timeout: float) -> bytes:
    """The leaf's DER. Non-blocking, so the whole handshake (not each read) is held to the deadline."""
    import select
    import ssl

    sock.setblocking(False)
    try:
        tls = _client_context().wrap_socket(sock, server_hostname=server_name, do_handshake_on_connect=False)
    except (ssl.SSLError, ValueError) as exc:
        sock.close()
        raise _Unreachable(f"TLS could not start: {exc}") from None
    try:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                ready = select.select([tls], [], [], _remaining(deadline, timeout, "in the TLS handshake"))[0]
            except ssl.SSLWantWriteError:
                ready = select.select([], [tls], [], _remaining(deadline, timeout, "in the TLS handshake"))[1]
            if not ready:
                raise _Unreachable(f"timed out after {timeout:g} s in the TLS handshake")
        der = tls.getpeercert(binary_form=True)
    except (ssl.SSLEOFError, ConnectionResetError, BrokenPipeError):
        raise _Unreachable("the server closed the connection during the TLS handshake") from None
    except ssl.SSLError as exc:
        raise _Unreachable(_alert(exc)) from None
    finally:
        tls.close()
    if not der:
        raise _Unreachable("the server sent no certificate")
    return der


def _server_name(host: str) -> str | None:
    """SNI carries DNS names only (RFC 6066): an address is connected to without one."""
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host
    return None


def probe(
    host: str, port: int = 443, *, connect: str | None = None, timeout: float, now: Callable[[], datetime]
) -> Probe:
    """One handshake with SNI ``host`` at ``connect`` (else ``host``):``port``, all of it within ``timeout``
    seconds; the leaf's thumbprint (Key Vault's: SHA-1, upper-case hex), expiry and subject, or why there is none."""
    at = now()
    host = host.strip("[]")
    deadline = time.monotonic() + timeout
    try:
        sock = _connect((connect or host).strip("[]"), port, deadline, timeout)
        der = _handshake(sock, _server_name(host), deadline, timeout)
    except _Unreachable as exc:
        return Probe(host=host, port=port, at=at, error=str(exc))
    except OSError as exc:
        return Probe(host=host, port=port, at=at, error=f"no TLS answer: {exc.strerror or exc}")
    from cryptography import x509

    from renewal.x509info import thumbprint

    try:
        leaf = x509.load_der_x509_certificate(der)
        return Probe(
            host=host,
            port=port,
            at=at,
            thumbprint=thumbprint(der),
            not_after=leaf.not_valid_after_utc,
            subject=leaf.subject.rfc4514_string(),
        )
    except ValueError as exc:
        return Probe(host=host, port=port, at=at, error=f"the served certificate could not be read: {exc}")


Endpoint = tuple[str, int, str | None]  # SNI host, port, the address connected to (None: the host)


def endpoints(targets: Iterable[Target]) -> Iterator[Endpoint]:
    """Every host of every target, each (host, port, connect) once, in the targets' order."""
    seen: set[Endpoint] = set()
    for target in targets:
        for host in target.hosts:
            endpoint = (host.lower(), target.port, target.connect.lower() if target.connect else None)
            if endpoint not in seen:
                seen.add(endpoint)
                yield endpoint


def probe_all(
    targets: Iterable[Target],
    *,
    timeout: float,
    workers: int,
    deadline: float,
    now: Callable[[], datetime] = utc_now,
) -> list[Probe]:
    """One probe per endpoint of ``targets`` (``endpoints``), ``workers`` at a time, all within ``deadline``
    seconds: a probe never outlives it (its timeout is cut to what is left), and the endpoints it leaves are
    reported unreachable. At most ``workers`` probes are in flight, so memory grows with the results only."""
    if workers < 1 or timeout <= 0 or deadline <= 0:
        raise ValueError(
            f"probe_all needs workers >= 1 ({workers}), timeout > 0 ({timeout}), deadline > 0 ({deadline})"
        )
    ends = time.monotonic() + deadline
    todo = list(endpoints(targets))
    results: list[Probe | None] = [None] * len(todo)
    in_flight: dict[Future[Probe], tuple[int, bool]] = {}  # index, and whether the run's deadline cut its timeout

    def collect(future: Future[Probe]) -> None:
        index, cut = in_flight.pop(future)
        result = future.result()
        results[index] = replace(result, error=CUT_SHORT) if cut and result.error.startswith("timed out") else result

    queue = iter(enumerate(todo))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="certlc-probe")
    try:
        for index, (host, port, connect) in queue:
            left = ends - time.monotonic()
            while len(in_flight) >= workers and left > 0:
                for future in wait(in_flight, timeout=left, return_when=FIRST_COMPLETED).done:
                    collect(future)
                left = ends - time.monotonic()
            if left <= 0:
                results[index] = Probe(host=host, port=port, at=now(), error=NOT_PROBED)
                break
            future = pool.submit(probe, host, port, connect=connect, timeout=min(timeout, left), now=now)
            in_flight[future] = (index, left < timeout)
        for index, (host, port, _) in queue:  # what the deadline left, never started
            results[index] = Probe(host=host, port=port, at=now(), error=NOT_PROBED)
        for future in wait(in_flight, timeout=max(0.0, ends - time.monotonic())).done:
            collect(future)
        for index, _ in in_flight.values():  # still running at the deadline: each ends by its own (cut) timeout
            host, port, _ = todo[index]
            results[index] = Probe(host=host, port=port, at=now(), error=CUT_SHORT)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return [result for result in results if result is not None]
