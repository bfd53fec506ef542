"""Embed infra/workbook.json into monitoring.json's workbook ``serializedData``.

workbook.json is the one source (edit it, or paste the portal's Advanced Editor
JSON there); run ``python infra/embed_workbook.py`` to refresh the template, or
``--check`` in CI to fail when the template is stale.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

INFRA = Path(__file__).resolve().parent
TEMPLATE = INFRA / "monitoring.json"
WORKBOOK = INFRA / "workbook.json"
WORKBOOK_TYPE = "microsoft.insights/workbooks"


def serialized_workbook(workbook_path: Path = WORKBOOK) -> str:
    return json.dumps(json.loads(workbook_path.read_text(encoding="utf-8")), separators=(",", ":"))


def workbook_resource(template: dict) -> dict:
    matches = [r for r in template["resources"] if r["type"].lower() == WORKBOOK_TYPE]
    if len(matches) != 1:
        raise ValueError(f"expected one {WORKBOOK_TYPE} resource in the template, found {len(matches)}")
    return matches[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the template is out of date")
    args = parser.parse_args(argv)
    template = json.loads(TEMPLATE.read_text(encoding="utf-8"))
    resource = workbook_resource(template)
    wanted = serialized_workbook()
    if resource["properties"].get("serializedData") == wanted:
        return 0
    if args.check:
        print(f"{TEMPLATE.name} is stale: run python infra/embed_workbook.py", file=sys.stderr)
        return 1
    resource["properties"]["serializedData"] = wanted
    TEMPLATE.write_text(json.dumps(template, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
