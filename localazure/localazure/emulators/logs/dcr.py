"""The DCR's stream declarations, read from the same ARM template infra/ deploys, and row checks against them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

DCR_TYPE = "microsoft.insights/datacollectionrules"


class SchemaError(ValueError):
    """A posted row does not match the stream declaration."""


def default_template() -> Path:
    return Path(__file__).resolve().parents[4] / "infra" / "monitoring.json"


def load_streams(template_path: Path) -> dict[str, dict[str, str]]:
    """Stream name → {column: type} for every DCR in the template."""
    template = json.loads(Path(template_path).read_text(encoding="utf-8"))
    streams: dict[str, dict[str, str]] = {}
    for resource in template.get("resources", []):
        if str(resource.get("type", "")).lower() != DCR_TYPE:
            continue
        for name, declaration in resource["properties"].get("streamDeclarations", {}).items():
            if name.startswith("["):
                raise ValueError(f"{template_path}: stream name {name!r} is an ARM expression; use a literal name")
            streams[name] = {c["name"]: c["type"].lower() for c in declaration["columns"]}
    if not streams:
        raise ValueError(f"{template_path}: no Microsoft.Insights/dataCollectionRules streamDeclarations found")
    return streams


def _is_datetime(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _is_guid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return isinstance(value, str)


CHECKS = {
    "string": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "long": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "real": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "datetime": _is_datetime,
    "guid": _is_guid,
    "dynamic": lambda v: True,
}


def check_rows(rows: Any, columns: Mapping[str, str]) -> list[dict[str, Any]]:
    """Rows must be objects with declared columns of the declared types; missing columns are null."""
    if not isinstance(rows, list):
        raise SchemaError("the body must be a JSON array of objects")
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise SchemaError(f"item {index} is not a JSON object")
        unknown = sorted(set(row) - set(columns))
        if unknown:
            raise SchemaError(f"item {index}: columns not declared in the stream: {', '.join(unknown)}")
        for name, value in row.items():
            if value is not None and not CHECKS.get(columns[name], CHECKS["dynamic"])(value):
                raise SchemaError(f"item {index}: column {name} must be {columns[name]}, got {value!r}")
    return rows
