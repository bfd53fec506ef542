"""Benchmark: ACME issuance time, certlc's adapter against certbot, on the same pebble with real http-01.

One pebble (``start_pebble`` with ``always_valid=False``, ``PEBBLE_VA_NOSLEEP=1`` and authorization
reuse off, so every order is validated) fetches http-01 answers from one loopback port. Rounds
alternate the clients on that port, never both at once: certlc's ``AcmeAuthority`` with an
``Http01ServerSolver``, then ``certbot certonly --csr --standalone``. Both sign the same kind of CSR
(RSA 2048, Key Vault's default) for ``localhost``, the one name every machine resolves to loopback.

* per certificate, from "have the CSR" to "have the chain": median / p90 / min / max seconds;
  certbot's time is its whole process (that is how it runs from cron), split from its debug log into
  start-up, ACME protocol and the rest;
* account registration, once per client;
* the seconds each client spends in the fixed 1 s poll sleeps of ``acme`` (``poll_authorizations``,
  ``poll_finalization``) and certbot (its first authorization poll), against the total.

Prints JSON and writes bench/results/acme_vs_certbot.json.

    python bench/acme_vs_certbot.py [--count 10]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.support import write_result  # noqa: E402

IDENTIFIER = "localhost"
ISSUE_TIMEOUT = 60
CERTBOT_TIMEOUT = 120
_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}):(\w+):([\w.]+):(.*)$")


@dataclass(frozen=True)
class Issuance:
    seconds: float
    slept: float  # in the clients' fixed poll sleeps
    phases: dict[str, float]


def ensure_certbot() -> str:
    """certbot from Debian, installed only when missing."""
    found = shutil.which("certbot")
    if found is None:
        from certlc.localstack.tools import apt_install

        apt_install("certbot")
        found = shutil.which("certbot")
    if found is None:
        raise RuntimeError("certbot is not on PATH after `apt-get install certbot`; install it by hand")
    return found


def make_csr(identifier: str) -> tuple[bytes, bytes]:
    """A CSR and its public key (DER), as Key Vault would make them for a default policy."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identifier)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(identifier)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return csr.public_bytes(serialization.Encoding.PEM), public


def check_leaf(chain_pem: str, public_key_der: bytes, who: str) -> None:
    """The chain's first certificate must carry the CSR's key: a timing of a failed issuance is worthless."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    certificates = x509.load_pem_x509_certificates(chain_pem.encode())
    leaf_key = (
        certificates[0]
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    if len(certificates) < 2 or leaf_key != public_key_der:
        raise RuntimeError(f"{who} returned a chain that is not leaf + issuer for the CSR's key")


@contextmanager
def counting_sleep() -> Iterator[list[float]]:
    """Adds up what ``time.sleep`` is asked for on this thread (the solver's threads do not sleep)."""
    asked: list[float] = []
    original = time.sleep
    thread = threading.get_ident()

    def sleep(seconds: float) -> None:
        if threading.get_ident() == thread:
            asked.append(seconds)
        original(seconds)

    time.sleep = sleep  # type: ignore[assignment]
    try:
        yield asked
    finally:
        time.sleep = original  # type: ignore[assignment]


def spread(seconds: Sequence[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    p90 = statistics.quantiles(ordered, n=10, method="inclusive")[8] if len(ordered) > 1 else ordered[0]
    return {
        "median": round(statistics.median(ordered), 3),
        "p90": round(p90, 3),
        "min": round(ordered[0], 3),
        "max": round(ordered[-1], 3),
    }


# -- certlc -------------------------------------------------------------------------------------


def certlc_register(pebble: Any, folder: Path) -> tuple[Any, float]:
    """A new account for certlc's adapter; also pays the lazy import of ``acme``, as a worker's first call would."""
    from renewal.ca.acme import AcmeAuthority

    authority = AcmeAuthority(
        pebble.directory_url,
        account_key_path=folder / "account.pem",
        ca_bundle=str(pebble.ca_bundle),
        timeout=ISSUE_TIMEOUT,
    )
    started = time.perf_counter()
    authority.account_url  # noqa: B018 - registers the account
    return authority, time.perf_counter() - started


def certlc_issue(authority: Any, port: int, csr_pem: bytes, public_key: bytes) -> Issuance:
    from renewal.ca.acme import Http01ServerSolver
    from renewal.ca.base import Issued

    with Http01ServerSolver(port=port) as solver:  # up for the issuance only: certbot needs the port next
        authority.solver = solver
        with counting_sleep() as slept:
            started = time.perf_counter()
            result = authority.submit(csr_pem, "")
            seconds = time.perf_counter() - started
    if not isinstance(result, Issued):
        raise RuntimeError(f"certlc did not issue: {result!r}")
    check_leaf("".join(result.chain_pem), public_key, "certlc")
    return Issuance(seconds, float(sum(slept)), {})


# -- certbot ------------------------------------------------------------------------------------


class Certbot:
    """certbot runs with its own config/work/logs folders and trusts pebble's TLS CA only."""

    def __init__(self, binary: str, pebble: Any, folder: Path) -> None:
        self.binary = binary
        self.pebble = pebble
        self.folder = folder
        self.env = {**os.environ, "REQUESTS_CA_BUNDLE": str(pebble.ca_bundle)}
        self.env.pop("CURL_CA_BUNDLE", None)

    def run(self, action: str, logs: Path, *extra: str) -> float:
        command = [
            self.binary,
            action,
            *("--server", self.pebble.directory_url),
            *("--non-interactive", "--agree-tos", "--register-unsafely-without-email"),
            *("--config-dir", str(self.folder / "config"), "--work-dir", str(self.folder / "work")),
            *("--logs-dir", str(logs)),
            *extra,
        ]
        started = time.perf_counter()
        done = subprocess.run(
            command,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CERTBOT_TIMEOUT,
            check=False,
        )
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-5:])
            raise RuntimeError(f"certbot {action} failed (exit {done.returncode}): {tail}; log in {logs}")
        return seconds

    def register(self) -> float:
        return self.run("register", self.folder / "logs-register")

    def issue(self, index: int, port: int, csr_pem: bytes, public_key: bytes) -> Issuance:
        run_dir = self.folder / f"run-{index}"
        run_dir.mkdir()
        (run_dir / "csr.pem").write_bytes(csr_pem)
        launched = time.time()
        seconds = self.run(
            "certonly",
            run_dir / "logs",
            *("--csr", str(run_dir / "csr.pem"), "--standalone"),
            *("--http-01-port", str(port), "--http-01-address", "127.0.0.1"),
            *("--cert-path", str(run_dir / "cert.pem"), "--chain-path", str(run_dir / "chain.pem")),
            *("--fullchain-path", str(run_dir / "fullchain.pem")),
        )
        check_leaf((run_dir / "fullchain.pem").read_text(), public_key, "certbot")
        phases, slept = certbot_phases(run_dir / "logs" / "letsencrypt.log", launched, seconds)
        return Issuance(seconds, slept, phases)


def certbot_phases(log: Path, launched: float, seconds: float) -> tuple[dict[str, float], float]:
    """Where certbot's time goes, from its debug log; its fixed sleeps from the polls it logs.

    certbot sleeps 1 s before each authorization poll round (the first one too) and ``acme`` 2.x 1 s
    before each order poll after finalizing, so each such request stands for one second asleep.
    ``authorized_to_finalize`` is the gap between the last authorization poll and the finalize request
    (the standalone plugin stopping its HTTP server).
    """
    requests: list[tuple[float, str]] = []
    sleeps = 0
    waiting = False
    for line in log.read_text(encoding="utf-8").splitlines():
        found = _LOG_LINE.match(line)
        if not found:
            continue
        stamp, _, source, message = found.groups()
        if source != "acme.client" or not message.startswith("Sending "):
            waiting = waiting or "Waiting for verification" in message
            continue
        requests.append((dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp(), message))
        if (waiting and "/authZ/" in message) or "/my-order/" in message:
            sleeps += 1
    if not requests:
        raise RuntimeError(f"no ACME requests in certbot's log {log}")
    last_authz = max(t for t, message in requests if "/authZ/" in message)
    finalize = min(t for t, message in requests if "/finalize-order/" in message)
    startup = requests[0][0] - launched
    protocol = requests[-1][0] - requests[0][0]
    return {
        "startup": round(startup, 3),
        "acme_protocol": round(protocol, 3),
        "authorized_to_finalize": round(finalize - last_authz, 3),
        "after_last_request": round(seconds - startup - protocol, 3),
    }, float(sleeps)


# -- the run ------------------------------------------------------------------------------------


def summarize(registration: float, runs: Sequence[Issuance]) -> dict[str, Any]:
    seconds = [r.seconds for r in runs]
    result: dict[str, Any] = {
        "registration_seconds": round(registration, 3),
        "per_certificate_seconds": spread(seconds),
        "poll_sleep_seconds_per_certificate": spread([r.slept for r in runs]),
        "poll_sleep_share_of_time": round(sum(r.slept for r in runs) / sum(seconds), 2),
        "without_poll_sleeps_seconds": spread([r.seconds - r.slept for r in runs]),
        "runs_seconds": [round(s, 3) for s in seconds],
    }
    if runs[0].phases:
        result["phases_median_seconds"] = {
            name: round(statistics.median(r.phases[name] for r in runs), 3) for name in runs[0].phases
        }
    return result


def measure(count: int) -> dict[str, Any]:
    from certlc.localstack import servers
    from certlc.localstack.ports import free_port

    certbot_binary = ensure_certbot()
    version = subprocess.run([certbot_binary, "--version"], capture_output=True, text=True, check=True)
    # Every order validated for real: pebble would otherwise reuse a valid authorization (50 % by default).
    os.environ["PEBBLE_AUTHZREUSE"] = "0"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="certlc-bench-acme-") as scratch:
        folder = Path(scratch)
        with servers.start_pebble(folder / "pebble", always_valid=False, http_port=port) as pebble:
            authority, certlc_registration = certlc_register(pebble, folder / "certlc")
            certbot = Certbot(certbot_binary, pebble, folder / "certbot")
            certbot_registration = certbot.register()
            certlc_runs: list[Issuance] = []
            certbot_runs: list[Issuance] = []
            for index in range(count):
                csr_pem, public_key = make_csr(IDENTIFIER)
                certlc_runs.append(certlc_issue(authority, port, csr_pem, public_key))
                csr_pem, public_key = make_csr(IDENTIFIER)
                certbot_runs.append(certbot.issue(index, port, csr_pem, public_key))
    certlc = summarize(certlc_registration, certlc_runs)
    peer = summarize(certbot_registration, certbot_runs)
    return {
        "count": count,
        "identifier": IDENTIFIER,
        "pebble": {"PEBBLE_VA_ALWAYS_VALID": "0", "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_AUTHZREUSE": "0"},
        "validation": "http-01, pebble fetches the answer from one loopback port; clients take turns on it",
        "certbot_version": version.stdout.strip() or version.stderr.strip(),
        "certlc": certlc,
        "certbot": peer,
        "median_ratio_certbot_to_certlc": round(
            peer["per_certificate_seconds"]["median"] / certlc["per_certificate_seconds"]["median"], 2
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10, help="issuances per client (default 10)")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    write_result("acme_vs_certbot", measure(args.count))
    return 0


if __name__ == "__main__":
    sys.exit(main())
