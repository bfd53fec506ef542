"""Where the dashboard's rows come from: the emulator's row file, or its HTTPS rows endpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ingestion.schema import STREAM_DEFAULT


class RowsUnavailable(RuntimeError):
    """The rows cannot be read; the message says where they were looked for."""


def default_rows_file(state_dir: Path) -> Path:
    return state_dir / "logs" / "rows" / f"{STREAM_DEFAULT}.jsonl"


def rows_from_file(path: Path) -> list[dict[str, Any]]:
    """JSON lines (the emulator's store) or one JSON array (``certlc status --json`` certificates)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RowsUnavailable(f"cannot read rows from {path}: {error.strerror}; run `certlc ingest` first") from error
    try:
        if text.lstrip().startswith("["):
            return list(json.loads(text))
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError as error:
        raise RowsUnavailable(f"{path} is not JSON lines of status rows: {error}") from error


def rows_from_url(url: str, ca_bundle: str | None) -> list[dict[str, Any]]:
    import requests

    try:
        response = requests.get(f"{url.rstrip('/')}/_emulator/rows", timeout=30, verify=ca_bundle or True)
        response.raise_for_status()
        return list(response.json())
    except (requests.RequestException, ValueError) as error:
        raise RowsUnavailable(f"cannot read rows from {url}: {error}") from error
