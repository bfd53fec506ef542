"""Benchmark: status ingestion of 10,000 certificates across several vaults, on the local emulators.

Seeds the Key Vault emulator (in a process of its own) through the real SDK (import), starts Azurite for the
renewal lock's container (no renewal in flight: no unfinished record), then runs ``ingestion.run.ingest`` twice:
cold (every version read once) and warm (the detail cache leaves the list pages only), and once pages the listings
alone (the vaults side by side, each with the ingestion's own client). Prints JSON (time, Key Vault calls and their
weight, upload calls and sizes, peak memory, the bars) and writes it to bench/results/ingest_10k.json.

Bars, from the run itself: cold within 1.5 times the read-limit bound (each vault's request weight over Key
Vault's 400 a second per vault, the vaults side by side: the slowest vault's) or, where the emulator serves slower
than Key Vault on this machine, within 1.5 times the same reads made by bare threads, warm's Key Vault phase within the
listings alone. Exit code 1 when a bar is missed or a row is missing.

    python bench/ingest_10k.py [--certs 10000] [--vaults 4] [--workers 8]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import trustme  # noqa: E402
from localazure.emulators import logs  # noqa: E402

from ingestion.run import _default_client_factory, ingest  # noqa: E402
from ingestion.upload import MAX_BODY_BYTES  # noqa: E402
from localazure import servers  # noqa: E402
from renewal.clients import certificate_client  # noqa: E402
from renewal.pacing.limits import OTHERS_PER_VAULT, WINDOW_SECONDS  # noqa: E402
from tests.fixtures.pki import issued_pfx  # noqa: E402

KEYVAULT_READS_PER_SECOND = OTHERS_PER_VAULT / WINDOW_SECONDS  # per vault: 400 weight a second
COLD_BAR = 1.5  # times the read-limit bound


@dataclass(frozen=True)
class SeparateKeyVault:
    """The Key Vault emulator in a process of its own, as Key Vault is to certlc: in this one it would compete with
    the ingestion's reader threads for the interpreter, and the bench would measure that, not the ingestion."""

    process: subprocess.Popen
    ca_bundle: str
    token: str
    vault_urls: dict[str, str]

    @classmethod
    def start(cls, state: Path, vaults: list[str]) -> SeparateKeyVault:
        command = [sys.executable, "-m", "certlc", "emulator", "keyvault", "--json", "--state", str(state)]
        for vault in vaults:
            command += ["--vault", vault]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        line = process.stdout.readline() if process.stdout else ""
        if not line:
            process.kill()
            raise RuntimeError(f"the Key Vault emulator did not start (exit {process.wait(timeout=10)})")
        described = json.loads(line)
        return cls(process, described["ca_bundle"], described["token"], dict(described["vaults"]))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def seed(kv: SeparateKeyVault, certs: int, workers: int, now: datetime) -> float:
    ca = trustme.CA()
    env = {"CERTLC_KEYVAULT_CA_BUNDLE": kv.ca_bundle, "CERTLC_LOCAL_TOKEN": kv.token}
    clients = {name: certificate_client(url, env) for name, url in kv.vault_urls.items()}
    vaults = list(clients)

    def one(i: int) -> None:
        days = (i % 400) - 30  # expired, expiring soon and healthy
        name = f"cert-{i:05d}"
        pfx, _ = issued_pfx(ca, f"{name}.bench.example", now - timedelta(days=30), now + timedelta(days=days))
        clients[vaults[i % len(vaults)]].import_certificate(name, pfx)

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(certs)))
    return time.perf_counter() - started


def timed_ingest(env: dict[str, str], logs_emulator: logs.RunningLogsEmulator) -> dict:
    cache = Path(env["CERTLC_INGEST_CACHE"])
    cache_before = cache.read_bytes() if cache.exists() else None
    before = len(logs_emulator.requests())
    started = time.perf_counter()
    report = ingest(env)
    seconds = time.perf_counter() - started
    calls = logs_emulator.requests()[before:]
    # Memory in a second, traced pass from the same cache state: tracing slows the emulators in
    # this process several times over, so it must stay out of the timed pass.
    cache_after = cache.read_bytes()
    if cache_before is None:
        cache.unlink()
    else:
        cache.write_bytes(cache_before)
    tracemalloc.start()
    ingest(env)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    cache.write_bytes(cache_after)
    return {
        "seconds": round(seconds, 3),
        "keyvault_seconds": max((v.seconds for v in report.vaults), default=0.0),  # the slowest vault's reads
        "read_limit_bound_seconds": read_limit_bound(report),
        "rows": report.upload.rows,
        "ok": report.ok,
        "keyvault_calls": report.keyvault_calls,
        "keyvault_weight": sum(v.read_weight for v in report.vaults),
        "keyvault_list_pages": sum(v.list_pages for v in report.vaults),
        "keyvault_detail_reads": sum(v.detail_reads for v in report.vaults),
        "keyvault_operation_reads": sum(v.operation_reads for v in report.vaults),
        "keyvault_throttled": sum(v.throttled for v in report.vaults),
        "pending_reads": sorted({v.pending_reads for v in report.vaults}),
        "upload_calls": len(calls),
        "upload_statuses": sorted({c["status"] for c in calls}),
        "max_upload_body_bytes": max((c["body_bytes"] for c in calls), default=0),
        "max_upload_uncompressed_bytes": max((c.get("decoded_bytes", 0) for c in calls), default=0),
        "peak_python_memory_mib": round(peak / 2**20, 1),
    }


def read_limit_bound(report) -> float:
    """Seconds Key Vault's read limit alone allows for the run's requests: each vault's weight at 400 a second,
    the vaults side by side (the slowest vault)."""
    return round(max((v.read_weight / KEYVAULT_READS_PER_SECOND for v in report.vaults), default=0.0), 3)


def list_only(env: dict[str, str], vault_urls: dict[str, str]) -> dict:
    """The listings alone: every vault paged (no reads), side by side, with the ingestion's own clients."""

    def one(url: str) -> int:
        client = _default_client_factory(url, env)
        try:
            return sum(1 for _ in client.list_properties_of_certificates().by_page())
        finally:
            client.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(len(vault_urls)) as pool:
        pages = list(pool.map(one, vault_urls.values()))
    return {"seconds": round(time.perf_counter() - started, 3), "list_pages": sum(pages)}


def bare_reads(env: dict[str, str], vault_urls: dict[str, str], certs: int) -> dict:
    """What the emulator serves on this machine: every certificate read once by plain threads (as many per vault as
    the ingestion's readers), nothing else. Key Vault answers 400 a second per vault; where the emulator answers
    slower, that, not the ingestion, sets how fast a cold run can be here."""
    from ingestion.gather import READS_PER_VAULT

    vaults = list(vault_urls)
    clients = {name: _default_client_factory(url, env) for name, url in vault_urls.items()}

    def one(i: int) -> None:
        clients[vaults[i % len(vaults)]].get_certificate(f"cert-{i:05d}")

    started = time.perf_counter()
    with ThreadPoolExecutor(READS_PER_VAULT * len(vaults)) as pool:
        list(pool.map(one, range(certs)))
    seconds = time.perf_counter() - started
    for client in clients.values():
        client.close()
    return {"seconds": round(seconds, 3), "reads": certs, "reads_per_second": round(certs / seconds, 1)}


def bars(result: dict) -> dict:
    """Cold within 1.5 times the slower of two floors measured here: Key Vault's read limit, and what the emulator
    serves on this machine (``bare_reads``); both are in the result, so a run on a faster machine shows which binds."""
    cold, warm, listing = result["cold"], result["warm"], result["list_only"]
    floor = max(cold["read_limit_bound_seconds"], result["bare_reads"]["seconds"])
    cold_bar = round(COLD_BAR * floor, 3)
    return {
        "cold": {"seconds": cold["seconds"], "at_most": cold_bar, "met": cold["seconds"] <= cold_bar},
        "warm": {
            "keyvault_seconds": warm["keyvault_seconds"],
            "at_most": listing["seconds"],
            "met": warm["keyvault_seconds"] <= listing["seconds"],
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--certs", type=int, default=10_000)
    parser.add_argument("--vaults", type=int, default=4)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args(argv)
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="certlc-bench-") as state:
        kv = SeparateKeyVault.start(Path(state) / "kv", [f"bench{i}" for i in range(1, args.vaults + 1)])
        logs_emulator = logs.start(Path(state))
        azurite = servers.start_azurite(Path(state) / "azurite")  # the renewal lock's records: none unfinished
        try:
            seed_seconds = seed(kv, args.certs, args.workers, now)
            env = {
                "CERTLC_VAULTS": ",".join(f"{n}={u}" for n, u in kv.vault_urls.items()),
                "CERTLC_KEYVAULT_CA_BUNDLE": kv.ca_bundle,
                "CERTLC_LOCAL_TOKEN": kv.token,
                "CERTLC_INGEST_CACHE": str(Path(state) / "ingest-cache.json"),
                "CertlcStorage": azurite.connection_string,
                **logs_emulator.settings(),
            }
            result = {
                "benchmark": "ingest_10k",
                "certificates": args.certs,
                "vaults": args.vaults,
                "seed_seconds": round(seed_seconds, 1),
                "upload_limit_bytes": MAX_BODY_BYTES,
                "cold": timed_ingest(env, logs_emulator),
                "warm": timed_ingest(env, logs_emulator),
                "list_only": list_only(env, kv.vault_urls),
                "bare_reads": bare_reads(env, kv.vault_urls, args.certs),
                "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
            result["bars"] = bars(result)
        finally:
            azurite.stop()
            logs_emulator.stop()
            kv.stop()
    text = json.dumps(result, indent=2)
    print(text)
    out = ROOT / "bench" / "results" / "ingest_10k.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n", encoding="utf-8")
    ok = all(r["ok"] and r["rows"] == args.certs and r["max_upload_uncompressed_bytes"] <= MAX_BODY_BYTES
             for r in (result["cold"], result["warm"]))  # fmt: skip
    missed = [name for name, bar in result["bars"].items() if not bar["met"]]
    if missed:
        print(f"ingest_10k missed its bar: {', '.join(missed)}", file=sys.stderr)
    return 0 if ok and not missed else 1


if __name__ == "__main__":
    sys.exit(main())
