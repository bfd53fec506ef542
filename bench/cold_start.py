"""Benchmark: cold start of the Functions app, i.e. what ``import function_app`` costs a fresh worker.

* ``python -X importtime -c "import function_app"``: total import time and the 15 modules with the
  largest cumulative time;
* the import's wall time in a fresh process (median of ``--runs``), and the whole process's wall time;
* peak RSS of that process (``resource.getrusage`` in the child), next to a bare interpreter's;
* the lazy imports the first renewal or sweep pays for afterwards (Key Vault and queue SDKs, workflow);
* which heavy SDKs are imported at start-up: azure.identity, azure.keyvault, azure.storage,
  cryptography and requests should load on first use, not at start-up.

The Azure Functions Python worker has ``azure.functions`` loaded before it imports the app, so the
app's own share (``function_app`` minus ``azure.functions``) is reported too. Prints JSON and writes
bench/results/cold_start.json.

    python bench/cold_start.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.support import write_result  # noqa: E402

HEAVY = ("azure.identity", "azure.keyvault", "azure.storage", "cryptography", "requests")
TOP = 15
# What the first renewal or sweep loads lazily on top of the app: the price of the first invocation.
FIRST_INVOCATION = (
    "renewal.runtime",
    "renewal.audit",
    "renewal.notify",
    "renewal.reporting",
    "renewal.events",
    "renewal.sweep",
    "renewal.ca.local",
    "azure.keyvault.certificates",
    "azure.storage.queue",
)
_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)\s*$")
_CHILD = """
import json, resource, sys, time
{setup}
started = time.perf_counter()
{statement}
seconds = time.perf_counter() - started
heavy = sorted(p for p in {heavy!r} if any(m == p or m.startswith(p + ".") for m in sys.modules))
print(json.dumps({{"seconds": seconds, "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "modules": len(sys.modules), "heavy": heavy}}))
"""


@dataclass(frozen=True)
class Imported:
    name: str
    self_us: int
    cumulative_us: int
    depth: int


def parse_importtime(stderr: str) -> list[Imported]:
    """The ``-X importtime`` lines in order (a module follows everything it imported)."""
    rows = []
    for line in stderr.splitlines():
        found = _LINE.match(line)
        if found:
            self_us, cumulative, indent, name = found.groups()
            rows.append(Imported(name, int(self_us), int(cumulative), len(indent) // 2))
    return rows


def import_chain(rows: list[Imported], index: int) -> list[str]:
    """Who imported ``rows[index]``: each parent is the next row one level shallower."""
    chain = [rows[index].name]
    depth = rows[index].depth
    for row in rows[index + 1 :]:
        if row.depth < depth:
            chain.append(row.name)
            depth = row.depth
    return chain[::-1]


def importtime(env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import function_app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = parse_importtime(done.stderr)
    cumulative = {r.name: r.cumulative_us for r in rows}
    heavy = {}
    for prefix in HEAVY:
        first = next((i for i, r in enumerate(rows) if r.name == prefix or r.name.startswith(prefix + ".")), None)
        if first is not None:
            heavy[prefix] = " -> ".join(import_chain(rows, first))
    app_total = cumulative.get("function_app", 0)
    return {
        "total_ms": round(sum(r.self_us for r in rows) / 1000, 1),
        "function_app_cumulative_ms": round(app_total / 1000, 1),
        "app_own_ms": round((app_total - cumulative.get("azure.functions", 0)) / 1000, 1),
        "modules_imported": len(rows),
        "top_cumulative": [
            {
                "module": r.name,
                "cumulative_ms": round(r.cumulative_us / 1000, 1),
                "self_ms": round(r.self_us / 1000, 1),
            }
            for r in sorted(rows, key=lambda r: r.cumulative_us, reverse=True)[:TOP]
        ],
        "heavy_imported_by": heavy,
    }


def fresh_process(statement: str, env: dict[str, str], setup: str = "") -> dict[str, Any]:
    """Run ``setup`` then time ``statement`` in a new interpreter; RSS and heavy SDKs are read after both."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _CHILD.format(setup=setup, statement=statement, heavy=HEAVY)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout) | {"process_seconds": time.perf_counter() - started}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes to take the median of (default 5)")
    args = parser.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}  # no startup hooks, no -X flags
    fresh_process("import function_app", env)  # warm the OS page cache and __pycache__ once
    runs = [fresh_process("import function_app", env) for _ in range(args.runs)]
    bare = fresh_process("pass", env)
    first = [
        fresh_process(f"import {', '.join(FIRST_INVOCATION)}", env, setup="import function_app")
        for _ in range(args.runs)
    ]
    heavy = sorted({name for run in runs for name in run["heavy"]})
    result = {
        "benchmark": "cold_start",
        "python": sys.version.split()[0],
        "importtime": importtime(env),
        "runs": args.runs,
        "import_seconds_median": round(statistics.median(r["seconds"] for r in runs), 4),
        "process_seconds_median": round(statistics.median(r["process_seconds"] for r in runs), 4),
        "bare_python_process_seconds": round(bare["process_seconds"], 4),
        "peak_rss_mib": round(max(r["max_rss_kib"] for r in runs) / 1024, 1),
        "bare_python_peak_rss_mib": round(bare["max_rss_kib"] / 1024, 1),
        "modules_loaded": runs[0]["modules"],
        "first_invocation_imports_seconds_median": round(statistics.median(r["seconds"] for r in first), 4),
        "first_invocation_peak_rss_mib": round(max(r["max_rss_kib"] for r in first) / 1024, 1),
        "heavy_sdks_at_startup": heavy,
        "lazy_ok": not heavy,
    }
    write_result("cold_start", result)
    return 0 if not heavy else 1


if __name__ == "__main__":
    sys.exit(main())
