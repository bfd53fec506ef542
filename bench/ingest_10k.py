"""Benchmark: status ingestion of 10,000 certificates across several vaults, on the local emulators.

Seeds the Key Vault emulator through the real SDK (import), then runs ``ingestion.run.ingest``
twice: cold (every version read once) and warm (the detail cache leaves only list pages).
Prints JSON (time, Key Vault calls, upload calls and sizes, peak memory) and writes it to
bench/results/ingest_10k.json.

    python bench/ingest_10k.py [--certs 10000] [--vaults 4] [--workers 8]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import trustme  # noqa: E402
from localazure.emulators import keyvault, logs  # noqa: E402
from localazure.emulators.keyvault.emulator import Emulator  # noqa: E402

from ingestion.run import ingest  # noqa: E402
from ingestion.upload import MAX_BODY_BYTES  # noqa: E402
from renewal.clients import certificate_client  # noqa: E402
from tests.fixtures.pki import issued_pfx  # noqa: E402


def seed(kv: Emulator, certs: int, workers: int, now: datetime) -> float:
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
        "rows": report.upload.rows,
        "ok": report.ok,
        "keyvault_calls": report.keyvault_calls,
        "keyvault_list_pages": sum(v.list_pages for v in report.vaults),
        "keyvault_detail_reads": sum(v.detail_reads for v in report.vaults),
        "upload_calls": len(calls),
        "upload_statuses": sorted({c["status"] for c in calls}),
        "max_upload_body_bytes": max((c["body_bytes"] for c in calls), default=0),
        "max_upload_uncompressed_bytes": max((c.get("decoded_bytes", 0) for c in calls), default=0),
        "peak_python_memory_mib": round(peak / 2**20, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--certs", type=int, default=10_000)
    parser.add_argument("--vaults", type=int, default=4)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args(argv)
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="certlc-bench-") as state:
        kv = keyvault.start(Path(state) / "kv", vaults=[f"bench{i}" for i in range(1, args.vaults + 1)])
        logs_emulator = logs.start(Path(state))
        try:
            seed_seconds = seed(kv, args.certs, args.workers, now)
            env = {
                "CERTLC_VAULTS": ",".join(f"{n}={u}" for n, u in kv.vault_urls.items()),
                "CERTLC_KEYVAULT_CA_BUNDLE": kv.ca_bundle,
                "CERTLC_LOCAL_TOKEN": kv.token,
                "CERTLC_INGEST_CACHE": str(Path(state) / "ingest-cache.json"),
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
                "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
        finally:
            logs_emulator.stop()
            kv.stop()
    text = json.dumps(result, indent=2)
    print(text)
    out = ROOT / "bench" / "results" / "ingest_10k.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n", encoding="utf-8")
    ok = all(r["ok"] and r["rows"] == args.certs and r["max_upload_uncompressed_bytes"] <= MAX_BODY_BYTES
             for r in (result["cold"], result["warm"]))  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
