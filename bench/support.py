"""What the benchmarks share: a local stack in a scratch folder, seeding, Key Vault request shapes, output; CSRs,
figures and certbot for the ACME benchmark.

Seeded certificates are due for certlc (less than a third of their lifetime left) but more than 30 days
from expiry, so Key Vault raises no NearExpiry event for them: the benchmark alone decides what is queued.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
LIFETIME_DAYS = 365
DUE_DAYS_LEFT = 60  # inside certlc's window (< 1/3 of 365 days), outside Key Vault's 30-day NearExpiry
HEALTHY_DAYS_LEFT = 300
_CERT_SUFFIXES = frozenset({"create", "import", "pending", "policy", "versions"})
_VERSION = re.compile(r"^[0-9a-f]{32}$")
CERTBOT_TIMEOUT = 120
_CERTBOT_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}):(\w+):([\w.]+):(.*)$")


@contextmanager
def local_stack(
    vaults: Sequence[str], settings: Mapping[str, str], ca_profiles: Mapping[str, Any] | None = None
) -> Iterator[Any]:
    """A started ``LocalStack`` (Azurite, emulators, Functions host) in a scratch folder removed afterwards.

    ``ca_profiles`` become the local CA's profiles.json, written before the CA is first used.
    """
    from localazure.stack import LocalStack

    with tempfile.TemporaryDirectory(prefix="certlc-bench-") as scratch:
        directory = Path(scratch)
        if ca_profiles is not None:
            (directory / "ca").mkdir(mode=0o700)
            (directory / "ca" / "profiles.json").write_text(json.dumps(ca_profiles), encoding="utf-8")
        with LocalStack(directory, vaults=vaults, extra_settings=settings, max_polling_interval=0.2) as stack:
            yield stack


def certificate_client(stack: Any, vault: str) -> Any:
    from renewal.clients import certificate_client as build

    return build(stack.keyvault.vault_urls[vault], stack.settings)


def emulated_now(stack: Any) -> dt.datetime:
    return dt.datetime.fromisoformat(stack.control.now().replace("Z", "+00:00"))


def seed(
    stack: Any,
    names: Iterable[tuple[str, str]],
    *,
    days_left: int = DUE_DAYS_LEFT,
    tags: Mapping[str, str] | None = None,
    workers: int = 8,
    policy: Mapping[str, Any] | None = None,
) -> dict[tuple[str, str], str]:
    """Create (vault, name) certificates issued by a previous CA; returns each one's current version. ``policy``:
    extra ``CertificatePolicy`` arguments (e.g. ``key_type=KeyType.rsa_hsm``)."""
    from localazure.seeding import PreviousCA, seed_certificate

    ca = PreviousCA()
    now = emulated_now(stack)
    clients = {vault: certificate_client(stack, vault) for vault in stack.vault_names}

    def one(key: tuple[str, str]) -> tuple[tuple[str, str], str]:
        vault, name = key
        cert = seed_certificate(
            clients[vault],
            ca,
            name,
            now=now,
            sans=(f"{name}.bench.example",),
            days_left=days_left,
            lifetime_days=LIFETIME_DAYS,
            tags=dict(tags or {}),
            **dict(policy or {}),
        )
        return key, cert.properties.version

    with ThreadPoolExecutor(workers) as pool:
        return dict(pool.map(one, list(names)))


def enqueue(stack: Any, bodies: Iterable[str]) -> int:
    """Send message texts to the renewal queue as Event Grid or the sweep would (base64)."""
    from renewal.clients import queue_client

    queue = queue_client(stack.settings, stack.settings["CERTLC_QUEUE_NAME"])
    sent = 0
    for body in bodies:
        queue.send_message(body)
        sent += 1
    return sent


def shape(method: str, path: str) -> str:
    """``GET /certificates/{name}/{version}`` for a logged request: names and versions folded away."""
    parts = path.strip("/").split("/")
    if len(parts) >= 2 and parts[0] in ("certificates", "secrets", "deletedcertificates"):
        parts[1] = "{name}"
        if len(parts) >= 3 and parts[2] not in _CERT_SUFFIXES and (_VERSION.match(parts[2]) or parts[2] == ""):
            parts[2] = "{version}"
    return f"{method} /{'/'.join(p for p in parts if p)}"


def vault_calls(entries: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Requests that cost a Key Vault transaction: the 401 bearer challenge is the SDK's handshake, not a call."""
    return [e for e in entries if e["status"] != 401]


def call_shapes(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    return [f"{shape(e['method'], e['path'])} -> {e['status']}" for e in vault_calls(entries)]


def count_shapes(entries: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    return dict(Counter(shape(e["method"], e["path"]) for e in vault_calls(entries)).most_common())


def write_result(name: str, result: Mapping[str, Any]) -> None:
    """Print the JSON and keep it in bench/results/<name>.json."""
    text = json.dumps(result, indent=2)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(text + "\n", encoding="utf-8")


def spread(seconds: Sequence[float]) -> dict[str, float]:
    """Median, p90, min and max, rounded to the millisecond."""
    ordered = sorted(seconds)
    p90 = statistics.quantiles(ordered, n=10, method="inclusive")[8] if len(ordered) > 1 else ordered[0]
    return {
        "median": round(statistics.median(ordered), 3),
        "p90": round(p90, 3),
        "min": round(ordered[0], 3),
        "max": round(ordered[-1], 3),
    }


@dataclass(frozen=True)
class CertbotRun:
    seconds: float  # the whole process
    startup: float  # of that, the time before its first ACME request
    chain_pem: str


class Certbot:
    """``certbot certonly --csr --standalone`` with its own config/work/logs folders, trusting pebble's TLS CA only;
    its first run registers the account."""

    def __init__(self, binary: str, pebble: Any, folder: Path) -> None:
        self.binary = binary
        self.pebble = pebble
        self.folder = folder
        self.env = {**os.environ, "REQUESTS_CA_BUNDLE": str(pebble.ca_bundle)}
        self.env.pop("CURL_CA_BUNDLE", None)

    def issue(self, name: str, port: int, csr_pem: bytes) -> CertbotRun:
        run_dir = self.folder / f"run-{name}"
        run_dir.mkdir()
        (run_dir / "csr.pem").write_bytes(csr_pem)
        command = [
            self.binary,
            "certonly",
            *("--server", self.pebble.directory_url),
            *("--non-interactive", "--agree-tos", "--register-unsafely-without-email"),
            *("--config-dir", str(self.folder / "config"), "--work-dir", str(self.folder / "work")),
            *("--logs-dir", str(run_dir / "logs"), "--csr", str(run_dir / "csr.pem"), "--standalone"),
            *("--http-01-port", str(port), "--http-01-address", "127.0.0.1"),
            *("--cert-path", str(run_dir / "cert.pem"), "--chain-path", str(run_dir / "chain.pem")),
            *("--fullchain-path", str(run_dir / "fullchain.pem")),
        ]
        launched = time.time()
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
            raise RuntimeError(f"certbot failed for {name} (exit {done.returncode}): {tail}; log in {run_dir / 'logs'}")
        startup = _first_acme_request(run_dir / "logs" / "letsencrypt.log") - launched
        return CertbotRun(seconds, startup, (run_dir / "fullchain.pem").read_text())


def _first_acme_request(log: Path) -> float:
    """When certbot sent its first ACME request, from its debug log: what comes before is its start-up."""
    for line in log.read_text(encoding="utf-8").splitlines():
        found = _CERTBOT_LOG_LINE.match(line)
        if found and found.group(3) == "acme.client" and found.group(4).startswith("Sending "):
            return dt.datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    raise RuntimeError(f"no ACME requests in certbot's log {log}")


# --- shared by benchmarks that run ``certlc worker`` processes beside the stack's host ---------------------------

CHILD_SETTING_PREFIXES = ("CERTLC_", "Certlc", "AzureWebJobs")  # a child process reads its settings file only


def spawn_worker(settings: Path, log: Path, max_polling_interval: float = 0.2) -> subprocess.Popen:
    """One ``certlc worker`` on a settings file, its output in ``log`` (never a pipe); the bench's own settings
    (the stack put them in this process's environment) stay out."""
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(CHILD_SETTING_PREFIXES)}
    with log.open("w") as output:
        return subprocess.Popen(
            [
                sys.executable,
                *("-m", "certlc", "--settings", str(settings), "worker"),
                *("--max-polling-interval", str(max_polling_interval)),
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def wait_polling(process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    """Until the worker says it polls its queue; a worker that exits first is an error with its output's tail."""
    from localazure.ports import poll_until

    def polling() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"a worker exited: {log.read_text(errors='replace')[-2000:]}")
        return "certlc worker: polling" in log.read_text(errors="replace")

    poll_until(polling, timeout=timeout, interval=0.1, what="a worker's start")


@contextmanager
def worker_processes(
    stack: Any, count: int, folder: Path | None = None
) -> Iterator[list[tuple[subprocess.Popen, Path]]]:
    """``count`` ``certlc worker`` processes on the stack's queue (its settings file), started and polling; each
    with its log file (in ``folder``, the stack's folder by default). Stopped with SIGTERM on the way out."""
    import signal

    folder = folder or Path(stack.directory)
    started: list[tuple[subprocess.Popen, Path]] = []
    try:
        for i in range(count):
            log = folder / f"worker-{count}-{i}.log"
            started.append((spawn_worker(stack.settings_path, log), log))
        for process, log in started:
            wait_polling(process, log)
        yield started
    finally:
        for process, _ in started:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)  # a paused one must run to take its SIGTERM
                process.send_signal(signal.SIGTERM)
        for process, _ in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
