"""The local dashboard: the workbook's view (pie by status, table grouped by status, who renews each certificate
and when) and the renewal history, as one HTML page."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from certlc.dashboard.view import PageClock


def render(
    rows: Iterable[Mapping[str, Any]],
    path: Path | str,
    history: Iterable[Mapping[str, Any]] = (),
    clock: PageClock | None = None,
) -> Path:
    """Write the dashboard for ``rows`` (all snapshots; only the latest is shown) and the renewal ``history``
    (audit events), and return its path. The page says how old the snapshot is on ``clock`` (``view.PageClock``:
    the local stack's, when it was moved; by default this computer's)."""
    from certlc.dashboard.html import render as render_page

    return render_page(rows, path, history, clock)
