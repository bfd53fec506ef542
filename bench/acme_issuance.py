"""Benchmark: seconds per ACME certificate for certlc, certbot and lego on one pebble with real http-01 validation.

One pebble (``PEBBLE_VA_NOSLEEP=1``, no ``PEBBLE_VA_ALWAYS_VALID``) validates every order by fetching the
http-01 answer from one loopback port, which the clients take in turns, never two at once: certlc's
``AcmeAuthority`` with an ``Http01ServerSolver``, ``certbot certonly --csr --standalone`` and
``lego --csr --http run``. Each certificate is a fresh RSA 2048 key and CSR (Key Vault's default policy) for
its own name ``<client>-<n>.certlc.test``; pebble's VA resolves the names through pebble-challtestsrv's DNS,
which answers every A query with 127.0.0.1 (``*.localhost`` does not resolve for pebble's Go resolver).
Rounds interleave the clients so machine noise falls on all three alike.

Per certificate, from "CSR in hand" to "chain in hand", as an operator gets it: certlc in-process (as in a
Functions worker, its solver already listening), certbot and lego one process per certificate (as they run
from cron), their start-up included; their time without start-up is reported next to it. Each client's first
issuance also registers its account: it is reported apart and left out of the figures. Every chain is
checked to carry the CSR's key and name and to chain to pebble's root before its time counts.

Prints a table and the JSON, writes bench/results/acme_issuance.json and exits 1 when a bar is missed:
certlc's median at most 0.1 s, and at least 5 times faster than lego's median.

    python bench/acme_issuance.py [--count 10]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from localazure.pki import csr_public_key, make_csr  # noqa: E402

from bench.support import Certbot, spread, write_result  # noqa: E402

DOMAIN = "certlc.test"  # .test is reserved (RFC 2606): the names can never be real ones
CERTLC_MEDIAN_BAR_SECONDS = 0.1
TIMES_FASTER_THAN_LEGO_BAR = 5
ISSUE_TIMEOUT = 60
LEGO_TIMEOUT = 120
STARTUP_SAMPLES = 5


@dataclass(frozen=True)
class Issuance:
    seconds: float  # what the operator waits for: the whole process for certbot and lego
    startup: float  # of that, the process start before the first ACME request (0 in-process)
    chain_pem: str


class Client(Protocol):
    name: str

    def version(self) -> str: ...

    def issue(self, identifier: str, csr_pem: bytes) -> Issuance: ...


# -- pebble resolving every name to loopback ------------------------------------------------------


@contextlib.contextmanager
def loopback_dns(folder: Path) -> Iterator[str]:
    """pebble-challtestsrv as a DNS server only: every A query gets 127.0.0.1, AAAA gets nothing."""
    from localazure.ports import LOOPBACK, free_port, port_open
    from localazure.process import ManagedProcess, start_with_retry

    from localazure import tools

    binary = tools.ensure_pebble().with_name("pebble-challtestsrv")

    def start() -> tuple[ManagedProcess, str]:
        dns, management = free_port(), free_port()
        command = [
            str(binary),
            *("-dns01", f"{LOOPBACK}:{dns}", "-management", f"{LOOPBACK}:{management}"),
            *("-http01", "", "-https01", "", "-tlsalpn01", ""),
            *("-defaultIPv4", LOOPBACK, "-defaultIPv6", ""),
        ]
        process = ManagedProcess("challtestsrv", command, folder / "challtestsrv.log", cwd=folder)
        process.wait_ready(lambda: port_open(dns) and port_open(management))
        return process, f"{LOOPBACK}:{dns}"

    folder.mkdir(parents=True, exist_ok=True)
    process, address = start_with_retry(start)
    try:
        yield address
    finally:
        process.stop()


# -- the clients ----------------------------------------------------------------------------------


class CertlcClient:
    """certlc's real adapter, in-process: ``AcmeAuthority.submit`` with an ``Http01ServerSolver`` on the port."""

    name = "certlc"

    def __init__(self, pebble: Any, port: int, folder: Path) -> None:
        from renewal.ca.acme import AcmeAuthority

        self.port = port
        self.authority = AcmeAuthority(
            pebble.directory_url,
            account_key_path=folder / "account.pem",
            ca_bundle=str(pebble.ca_bundle),
            timeout=ISSUE_TIMEOUT,
        )

    def version(self) -> str:
        return f"certlc {importlib.metadata.version('certlc')} (acme {importlib.metadata.version('acme')})"

    def issue(self, identifier: str, csr_pem: bytes) -> Issuance:
        from renewal.ca.acme import Http01ServerSolver
        from renewal.ca.base import Issued

        with Http01ServerSolver(port=self.port) as solver:  # up for this issuance only: the next client needs the port
            self.authority.solver = solver
            started = time.perf_counter()
            result = self.authority.submit(csr_pem, "")
            seconds = time.perf_counter() - started
        if not isinstance(result, Issued):
            raise RuntimeError(f"certlc did not issue {identifier}: {result!r}")
        return Issuance(seconds, 0.0, "".join(result.chain_pem))


class CertbotClient:
    """``certbot certonly --csr --standalone``, one process per certificate; start-up split from its debug log."""

    name = "certbot"

    def __init__(self, pebble: Any, port: int, folder: Path) -> None:
        from localazure import tools

        self.binary = str(tools.CERTBOT.ensure())
        self.certbot = Certbot(self.binary, pebble, folder)
        self.port = port

    def version(self) -> str:
        return _output([self.binary, "--version"])

    def issue(self, identifier: str, csr_pem: bytes) -> Issuance:
        done = self.certbot.issue(identifier, self.port, csr_pem)
        return Issuance(done.seconds, done.startup, done.chain_pem)


class LegoClient:
    """``lego --csr --http run``, one process per certificate (its first run registers the account)."""

    name = "lego"

    def __init__(self, pebble: Any, port: int, folder: Path) -> None:
        from localazure import tools

        self.binary = str(tools.LEGO.ensure())
        self.pebble = pebble
        self.port = port
        self.folder = folder
        self.env = {**os.environ, "LEGO_CA_CERTIFICATES": str(pebble.ca_bundle)}
        self.startup = statistics.median(_wall([self.binary, "--version"]) for _ in range(STARTUP_SAMPLES))

    def version(self) -> str:
        return f"lego {_output(['dpkg-query', '-W', '-f', '${Version}', 'lego'])} (Debian)"  # lego -v says "dev"

    def issue(self, identifier: str, csr_pem: bytes) -> Issuance:
        csr = self.folder / f"{identifier}.csr"
        csr.write_bytes(csr_pem)
        log = self.folder / f"{identifier}.log"
        command = [
            self.binary,
            *("--server", self.pebble.directory_url, "--accept-tos", "--email", f"bench@{DOMAIN}"),
            *("--path", str(self.folder / "store")),
            *("--http", "--http.port", f"127.0.0.1:{self.port}", "--csr", str(csr), "run"),
        ]
        with log.open("wb") as out:
            started = time.perf_counter()
            done = subprocess.run(
                command, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                timeout=LEGO_TIMEOUT, check=False,
            )  # fmt: skip
            seconds = time.perf_counter() - started
        if done.returncode != 0:
            tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-5:])
            raise RuntimeError(f"lego failed for {identifier} (exit {done.returncode}): {tail}; log in {log}")
        chain = (self.folder / "store" / "certificates" / f"{identifier}.crt").read_text()
        return Issuance(seconds, self.startup, chain)


def _output(command: Sequence[str]) -> str:
    done = subprocess.run(list(command), stdin=subprocess.DEVNULL, capture_output=True, text=True, check=True)
    return (done.stdout or done.stderr).strip()


def _wall(command: Sequence[str]) -> float:
    """Seconds a process takes to start and exit: a client's start-up when it does nothing else."""
    started = time.perf_counter()
    subprocess.run(list(command), stdin=subprocess.DEVNULL, capture_output=True, check=True)
    return time.perf_counter() - started


# -- checks and figures ---------------------------------------------------------------------------


def chain_problem(chain_pem: str, root_pem: str, identifier: str, public_key_der: bytes) -> str | None:
    """Why a chain is not a real issuance for the CSR (None when it is): a timing of a failed one is worthless.

    The leaf must carry the CSR's key and name, be signed by the next certificate, and that one by the root.
    """
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization

    certificates = x509.load_pem_x509_certificates(chain_pem.encode())
    root = x509.load_pem_x509_certificate(root_pem.encode())
    leaf = certificates[0]
    key = leaf.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if key != public_key_der:
        return "the leaf does not carry the CSR's key"
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    if identifier not in names:
        return f"the leaf names {names}, not {identifier}"
    try:
        for child, issuer in zip(certificates, [*certificates[1:], root], strict=True):
            child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature) as exc:
        return f"the chain does not lead to pebble's root: {exc or type(exc).__name__}"
    return None


def figures(seconds: Sequence[float]) -> dict[str, float]:
    return {f"{name}_seconds": value for name, value in spread(seconds).items()}


def summarize(client: Client, first: Issuance, runs: Sequence[Issuance]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "version": client.version(),
        "count": len(runs),
        **figures([r.seconds for r in runs]),
        "runs_seconds": [round(r.seconds, 3) for r in runs],
        "first_issuance_with_registration_seconds": round(first.seconds, 3),
    }
    if any(r.startup for r in runs):
        result["startup_median_seconds"] = round(statistics.median(r.startup for r in runs), 3)
        result["without_startup"] = figures([r.seconds - r.startup for r in runs])
    return result


def bars(certlc_median: float, lego_median: float) -> dict[str, dict[str, Any]]:
    """The issue's bars, judged on this run's medians."""
    return {
        "certlc_median": {
            "met": certlc_median <= CERTLC_MEDIAN_BAR_SECONDS,
            "seconds": certlc_median,
            "at_most_seconds": CERTLC_MEDIAN_BAR_SECONDS,
        },
        "certlc_vs_lego": {
            "met": certlc_median * TIMES_FASTER_THAN_LEGO_BAR <= lego_median,
            "lego_over_certlc": round(lego_median / certlc_median, 1) if certlc_median else None,
            "at_least": TIMES_FASTER_THAN_LEGO_BAR,
        },
    }


CLIENTS: Mapping[str, Callable[[Any, int, Path], Client]] = {
    "certlc": CertlcClient,
    "certbot": CertbotClient,
    "lego": LegoClient,
}


def measure(count: int, workdir: Path) -> dict[str, Any]:
    """Issues ``count`` certificates per client (after one that registers it) and checks every chain.

    The chains stay in ``workdir/chains/<client>/<name>.pem`` next to ``pebble-root.pem``.
    """
    from localazure.ports import free_port

    from localazure import servers

    port = free_port()
    chains = workdir / "chains"
    for name in CLIENTS:
        (workdir / name).mkdir(parents=True)
        (chains / name).mkdir(parents=True)
    with (
        loopback_dns(workdir / "dns") as dns,
        servers.start_pebble(workdir / "pebble", always_valid=False, http_port=port, dns_server=dns) as pebble,
    ):
        root_pem = pebble.roots_pem()
        (chains / "pebble-root.pem").write_text(root_pem)
        clients = [make(pebble, port, workdir / name) for name, make in CLIENTS.items()]
        runs: dict[str, list[Issuance]] = {client.name: [] for client in clients}
        for index in range(count + 1):  # index 0 registers the account
            for client in clients:
                identifier = f"{client.name}-{index}.{DOMAIN}"
                csr_pem = make_csr(identifier)
                public_key = csr_public_key(csr_pem)
                done = client.issue(identifier, csr_pem)
                problem = chain_problem(done.chain_pem, root_pem, identifier, public_key)
                if problem:
                    raise RuntimeError(f"{client.name} issued a bad chain for {identifier}: {problem}")
                (chains / client.name / f"{identifier}.pem").write_text(done.chain_pem)
                runs[client.name].append(done)
        results = {client.name: summarize(client, runs[client.name][0], runs[client.name][1:]) for client in clients}
    return {
        "benchmark": "acme_issuance",
        "count": count,
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "pebble": {
            "version": _output(["dpkg-query", "-W", "-f", "${Version}", "pebble"]),
            "environment": {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_VA_ALWAYS_VALID": "0"},
        },
        "validation": "http-01 answered by each client's own server on one loopback port, one client at a time",
        "names": f"<client>-<n>.{DOMAIN}, resolved by pebble-challtestsrv's DNS to 127.0.0.1",
        "measured": "CSR in hand to chain in hand; certbot and lego as one process per certificate, start-up "
        "included (without_startup leaves it out); certlc in-process with its solver listening",
        "clients": results,
        "bars": bars(results["certlc"]["median_seconds"], results["lego"]["median_seconds"]),
    }


def table(result: Mapping[str, Any]) -> str:
    rows = [("client", "median s", "p90 s", "min s", "max s", "w/o start-up s", "version")]
    for name, client in result["clients"].items():
        without = client.get("without_startup", {}).get("median_seconds")
        rows.append(
            (
                name,
                *(f"{client[f'{k}_seconds']:.3f}" for k in ("median", "p90", "min", "max")),
                "-" if without is None else f"{without:.3f}",
                client["version"],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10, help="certificates per client (default 10)")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    with tempfile.TemporaryDirectory(prefix="certlc-bench-acme-issuance-") as scratch:
        result = measure(args.count, Path(scratch))
    write_result("acme_issuance", result)
    print(table(result))
    missed = [name for name, bar in result["bars"].items() if not bar["met"]]
    if missed:
        print(f"bars missed: {', '.join(missed)}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
