"""The local dashboard: the workbook's view (pie by status, table grouped by status) as one HTML page."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def render(rows: Iterable[Mapping[str, Any]], path: Path | str) -> Path:
    """Write the dashboard for ``rows`` (all snapshots; only the latest is shown) and return its path."""
    from certlc.dashboard.html import render as render_page

    return render_page(rows, path)
