"""Runs every benchmark, each in a fresh process with its own local stack, and writes bench/results/summary.json.

The ingestion benchmark runs at a small scale (1,000 certificates), the sweep's cost at 2,000 certificates and
the reliability matrix with ``--quick`` unless ``--full`` asks for their full size (the sweep's at 10,000).
Exit code 0 only when every benchmark met its own bar.

    python bench/run_all.py [--full] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.support import RESULTS, write_result  # noqa: E402

SMALL_INGEST_CERTS = 1000
FULL_SWEEP_CERTS = 10_000  # sweep_cost's own default is 2,000


def benchmarks(full: bool) -> dict[str, list[str]]:
    """Name (also its results file) → arguments after the script."""
    return {
        "cold_start": [],
        "keyvault_calls": [],
        "throughput": ["--matrix", "full"] if full else [],
        "ingest_10k": [] if full else ["--certs", str(SMALL_INGEST_CERTS)],
        "sweep_cost": ["--certs", str(FULL_SWEEP_CERTS)] if full else [],
        "acme_issuance": [],
        "reliability": [] if full else ["--quick"],
        "probes": [],
    }


def run_one(name: str, args: list[str]) -> dict[str, Any]:
    result_file = RESULTS / f"{name}.json"
    result_file.unlink(missing_ok=True)  # a stale file must not pass for this run's figures
    print(f"==> {name} {' '.join(args)}".rstrip(), flush=True)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "bench" / f"{name}.py"), *args], cwd=ROOT, check=False)
    entry: dict[str, Any] = {
        "arguments": args,
        "exit_code": done.returncode,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if result_file.exists():
        entry["result"] = json.loads(result_file.read_text(encoding="utf-8"))
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--full",
        action="store_true",
        help="ingestion and the sweep's cost at 10,000, the whole reliability matrix (minutes)",
    )
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    args = parser.parse_args(argv)
    chosen = benchmarks(args.full)
    unknown = set(args.only or ()) - set(chosen)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {sorted(chosen)}")
    summary = {name: run_one(name, extra) for name, extra in chosen.items() if not args.only or name in args.only}
    failed = sorted(name for name, entry in summary.items() if entry["exit_code"] != 0)
    print("==> summary", flush=True)
    write_result("summary", {"benchmarks": summary, "failed": failed})
    if failed:
        print(f"benchmarks that missed their bar or failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
