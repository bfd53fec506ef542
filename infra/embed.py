"""Embed infra/workbook.json into infra/monitoring.json, and monitoring.json and alerts.json into infra/main.json.

Each file is the one source of what it holds: workbook.json of the workbook (edit it, or paste the portal's
Advanced Editor JSON there), monitoring.json of the workspace, tables, DCE, DCR and workbook, alerts.json of the
log alerts. The templates carry copies because a deployment needs them inline: the workbook as the
``serializedData`` string, monitoring.json and alerts.json as nested deployments of main.json, so main.json
deploys from a local file, the portal and a "Deploy to Azure" link alike (a linked template would need a URL).
Run ``python infra/embed.py`` after editing a source, or ``--check`` in CI to fail when a template is stale.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

INFRA = Path(__file__).resolve().parent
MAIN = INFRA / "main.json"
MONITORING = INFRA / "monitoring.json"
ALERTS = INFRA / "alerts.json"
WORKBOOK = INFRA / "workbook.json"
WORKBOOK_TYPE = "microsoft.insights/workbooks"
EMBEDDED = "{}, embedded by infra/embed.py"


def serialized_workbook(workbook_path: Path = WORKBOOK) -> str:
    return json.dumps(json.loads(workbook_path.read_text(encoding="utf-8")), separators=(",", ":"))


def _only(resources: list[dict], matches: Callable[[dict], bool], what: str) -> dict:
    found = [r for r in resources if matches(r)]
    if len(found) != 1:
        raise ValueError(f"expected one {what}, found {len(found)}")
    return found[0]


def workbook_resource(template: dict) -> dict:
    return _only(template["resources"], lambda r: r["type"].lower() == WORKBOOK_TYPE, f"{WORKBOOK_TYPE} resource")


def embedding_deployment(template: dict, source: Path) -> dict:
    """The nested deployment of ``template`` that carries ``source``, found by its comment."""
    marker = EMBEDDED.format(f"infra/{source.name}")
    comment = f"deployment commented {marker!r} in {MAIN.name}"
    return _only(template["resources"], lambda r: r.get("comments", "").startswith(marker), comment)


def stale_files() -> dict[Path, dict]:
    """Each template whose copy differs from its source, with the content it should have."""
    monitoring = json.loads(MONITORING.read_text(encoding="utf-8"))
    main = json.loads(MAIN.read_text(encoding="utf-8"))
    stale: dict[Path, dict] = {}
    workbook = workbook_resource(monitoring)["properties"]
    if workbook.get("serializedData") != serialized_workbook():
        workbook["serializedData"] = serialized_workbook()
        stale[MONITORING] = monitoring
    for source, content in ((MONITORING, monitoring), (ALERTS, json.loads(ALERTS.read_text(encoding="utf-8")))):
        nested = embedding_deployment(main, source)["properties"]
        if nested.get("template") != content:
            nested["template"] = content
            stale[MAIN] = main
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a template is out of date")
    args = parser.parse_args(argv)
    stale = stale_files()
    if stale and args.check:
        print(f"out of date: {', '.join(p.name for p in stale)}; run python infra/embed.py", file=sys.stderr)
        return 1
    for path, template in stale.items():
        path.write_text(json.dumps(template, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
