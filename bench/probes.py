"""Benchmark: probing 1,000 endpoints with ``renewal.targets.probe.probe_all``, as a sweep probes every target.

The endpoints are a mix served by a child process (so the servers cost the probing process nothing): TLS listeners
that answer at once, slow ones that start the handshake after ``--slow-delay`` seconds, ports nobody listens on
(refused), and silent ones that accept and never answer (each costs a whole ``--timeout``). Each endpoint has a name
of its own (SNI) on one of a few ports. Two runs: one with a deadline long enough for all, one cut short
(``--cut-deadline``) to show the run ends on time and reports what it left. Wall time, peak RSS
(``resource.getrusage``) before and after, workers and timeout; exit 1 when an endpoint's result is not the
expected kind or a run outlives its deadline by more than half a second. Prints JSON and writes
bench/results/probes.json.

    python bench/probes.py [--endpoints 1000] [--workers 64] [--timeout 2] [--deadline 60]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.support import write_result  # noqa: E402

SHARES = {"reachable": 0.5, "slow": 0.2, "dead": 0.15, "silent": 0.15}
LISTENERS = 4  # ports per kind that listens; the names spread over them
OVERRUN = 0.5  # seconds a run may end after its deadline
SERVERS = r"""
import asyncio, json, socket, ssl, sys, threading, time
cert, key, slow_delay, listeners = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
held = []

def slow(conn):
    time.sleep(slow_delay)  # the ClientHello waits in the socket, unread
    conn.settimeout(10)
    try:
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1)
    except OSError:
        conn.close()

def slow_listener():
    server = socket.create_server(("127.0.0.1", 0), backlog=1024)
    def accept():
        while True:
            threading.Thread(target=slow, args=(server.accept()[0],), daemon=True).start()
    threading.Thread(target=accept, daemon=True).start()
    return server.getsockname()[1]

async def fast(reader, writer):
    try:
        await asyncio.wait_for(reader.read(1), 10)
    except Exception:
        pass
    writer.close()

async def silent(reader, writer):
    held.append(writer)  # never a byte back

async def main():
    ports = {"reachable": [], "slow": [slow_listener() for _ in range(listeners)], "silent": []}
    for _ in range(listeners):
        for kind, handler, tls in (("reachable", fast, context), ("silent", silent, None)):
            server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=tls, backlog=1024)
            ports[kind].append(server.sockets[0].getsockname()[1])
    print(json.dumps(ports), flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def leaf(folder: Path) -> tuple[Path, Path, str]:
    """A leaf for the listeners, and its thumbprint (what a reachable probe must report)."""
    import trustme
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from renewal.x509info import thumbprint

    issued = trustme.CA().issue_cert("probe.bench.test")
    cert, key = folder / "leaf.pem", folder / "leaf.key"
    cert.write_bytes(issued.cert_chain_pems[0].bytes())
    key.write_bytes(issued.private_key_pem.bytes())
    return cert, key, thumbprint(x509.load_pem_x509_certificate(cert.read_bytes()).public_bytes(Encoding.DER))


def dead_ports(count: int) -> list[int]:
    """Ports bound and closed again: nobody listens there during the run."""
    from localazure.ports import free_port

    return [free_port() for _ in range(count)]


def plan(endpoints: int, ports: dict[str, list[int]]) -> list[tuple[str, Any]]:
    """(expected kind, Target) for each endpoint: its own SNI name, on a port of its kind."""
    from renewal.targets.model import Target

    planned: list[tuple[str, Any]] = []
    counts = {kind: int(endpoints * share) for kind, share in SHARES.items()}
    counts["reachable"] += endpoints - sum(counts.values())
    for kind, count in counts.items():
        for n in range(count):
            port = ports[kind][n % len(ports[kind])]
            host = f"{kind}-{n}.probe.bench.test"
            planned.append((kind, Target("endpoint", f"{host}:{port}", (host,), port, connect="127.0.0.1")))
    return planned


def outcome(kind: str, probe: Any, thumbprint: str) -> bool:
    """Whether the probe says what an endpoint of this kind must show."""
    if kind in ("reachable", "slow"):
        return probe.thumbprint == thumbprint
    if kind == "dead":
        return probe.error == "connection refused"
    return probe.error.startswith("timed out after")


def run(planned: list[tuple[str, Any]], thumbprint: str, *, workers: int, timeout: float, deadline: float) -> dict:
    from renewal.targets.probe import CUT_SHORT, NOT_PROBED, probe_all

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    probes = probe_all([target for _, target in planned], timeout=timeout, workers=workers, deadline=deadline)
    seconds = time.perf_counter() - started
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kinds = [kind for kind, _ in planned]
    finished = [(kind, p) for kind, p in zip(kinds, probes, strict=True) if p.error not in (NOT_PROBED, CUT_SHORT)]
    wrong = Counter(kind for kind, p in finished if not outcome(kind, p, thumbprint))
    return {
        "endpoints": len(planned),
        "results": len(probes),
        "workers": workers,
        "timeout_seconds": timeout,
        "deadline_seconds": deadline,
        "wall_seconds": round(seconds, 3),
        "within_deadline": seconds <= deadline + OVERRUN,
        "by_kind": dict(Counter(kinds)),
        "errors": dict(Counter(p.error or "leaf read" for p in probes).most_common()),
        "not_as_expected": dict(wrong),
        "peak_rss_mib_before": round(rss_before / 1024, 1),
        "peak_rss_mib_after": round(rss_after / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds per probe")
    parser.add_argument("--deadline", type=float, default=60.0, help="seconds for the whole run")
    parser.add_argument("--cut-deadline", type=float, default=2.0, help="the second run's deadline")
    parser.add_argument("--slow-delay", type=float, default=0.5, help="seconds before a slow listener answers")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="certlc-bench-probes-") as scratch:
        cert, key, thumbprint = leaf(Path(scratch))
        command = [sys.executable, "-c", SERVERS, str(cert), str(key), str(args.slow_delay), str(LISTENERS)]
        servers = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        try:
            assert servers.stdout is not None
            ports = json.loads(servers.stdout.readline()) | {"dead": dead_ports(LISTENERS)}
            planned = plan(args.endpoints, ports)
            options = {"workers": args.workers, "timeout": args.timeout}
            full = run(planned, thumbprint, **options, deadline=args.deadline)
            cut = run(planned, thumbprint, **options, deadline=args.cut_deadline)
        finally:
            servers.terminate()
            servers.wait(timeout=10)
    bars = {
        "every_endpoint_as_expected": full["results"] == args.endpoints and not full["not_as_expected"],
        "within_deadline": full["within_deadline"] and cut["within_deadline"],
        "cut_run_reports_every_endpoint": cut["results"] == args.endpoints and not cut["not_as_expected"],
    }
    write_result("probes", {"full": full, "cut": cut, "bars": bars, "cores": _cores()})
    return 0 if all(bars.values()) else 1


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    sys.exit(main())
