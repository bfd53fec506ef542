"""Where the dashboard's rows come from: the emulator's row files, or its HTTPS rows endpoint.

Two streams: the status snapshots, and the renewal history (the audit events each renewal wrote). No status rows
is an error (nothing to show yet); no history is an empty history, which the page says.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ingestion.schema import STREAM_DEFAULT


class RowsUnavailable(RuntimeError):
    """The rows cannot be read; the message says where they were looked for."""


def default_rows_file(state_dir: Path, stream: str = STREAM_DEFAULT) -> Path:
    """Where the local Logs emulator stores a stream's rows."""
    return state_dir / "logs" / "rows" / f"{stream}.jsonl"


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
        raise RowsUnavailable(f"{path} is not JSON lines of rows: {error}") from error


def history_from_file(path: Path) -> list[dict[str, Any]]:
    """The renewal history; a missing file means no renewal has been recorded yet."""
    return rows_from_file(path) if path.exists() else []


def as_history_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """History rows as they are; audit records (``CERTLC_AUDIT_FILE``'s lines, keyed ``ts``) as the rows the
    Logs Ingestion sink makes of them, so either file gives the same history."""
    from ingestion.history import history_row

    return [history_row(r) if "ts" in r and "TimeGenerated" not in r else r for r in records]


def rows_from_url(url: str, ca_bundle: str | None, stream: str = STREAM_DEFAULT) -> list[dict[str, Any]]:
    """One stream's rows from a running Logs emulator (a stream nothing was sent to has none)."""
    import requests

    try:
        response = requests.get(
            f"{url.rstrip('/')}/_emulator/rows", params={"stream": stream}, timeout=30, verify=ca_bundle or True
        )
        response.raise_for_status()
        return list(response.json())
    except (requests.RequestException, ValueError) as error:
        raise RowsUnavailable(f"cannot read {stream} rows from {url}: {error}") from error
