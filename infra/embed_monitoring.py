"""Embed infra/monitoring.json as the nested monitoring deployment of infra/main.json.

monitoring.json is the one source of the workspace, table, DCE, DCR and workbook; main.json
carries a copy inline so it deploys from a local file, the portal and a "Deploy to Azure" link
alike (a linked template would need a URL). Run ``python infra/embed_monitoring.py`` after
editing monitoring.json (after ``embed_workbook.py`` when the workbook changed), or ``--check``
in CI to fail when main.json is stale.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

INFRA = Path(__file__).resolve().parent
MAIN = INFRA / "main.json"
MONITORING = INFRA / "monitoring.json"
MARKER = "infra/monitoring.json, embedded by infra/embed_monitoring.py"


def monitoring_deployment(template: dict) -> dict:
    matches = [r for r in template["resources"] if r.get("comments", "").startswith(MARKER)]
    if len(matches) != 1:
        raise ValueError(f"expected one deployment commented {MARKER!r} in {MAIN.name}, found {len(matches)}")
    return matches[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if main.json is out of date")
    args = parser.parse_args(argv)
    template = json.loads(MAIN.read_text(encoding="utf-8"))
    deployment = monitoring_deployment(template)
    wanted = json.loads(MONITORING.read_text(encoding="utf-8"))
    if deployment["properties"].get("template") == wanted:
        return 0
    if args.check:
        print(f"{MAIN.name} is stale: run python infra/embed_monitoring.py", file=sys.stderr)
        return 1
    deployment["properties"]["template"] = wanted
    MAIN.write_text(json.dumps(template, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
