"""The dashboard as one self-contained HTML page: inline CSS and SVG, no outside scripts or fonts."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from html import escape
from pathlib import Path
from typing import Any

from certlc.dashboard.view import (
    ALL_VAULTS,
    COLOURS,
    LABELS,
    StatusView,
    build_view,
    latest_snapshot,
    renewal_pending,
    vaults_in,
)
from ingestion.schema import STATUSES

TABLE_COLUMNS = (
    ("KeyVault", "Vault"),
    ("CertName", "Name"),
    ("CertSubject", "Subject"),
    ("CertExpiration", "Expiry (UTC)"),
    ("DaysLeft", "Days left"),
    ("RenewalPending", "Renewal"),
    ("CertRecipient", "Recipient"),
    ("CertThumbprint", "Thumbprint"),
    ("LastRenewalOutcome", "Last renewal"),
)

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#201f1e;background:#faf9f8}
h1{font-size:22px;margin:0 0 4px} .meta{color:#605e5c;margin-bottom:16px}
.panel{display:flex;gap:32px;align-items:flex-start;flex-wrap:wrap}
.pie{background:#fff;border:1px solid #edebe9;padding:16px;border-radius:4px}
.legend{list-style:none;padding:0;margin:12px 0 0} .legend li{margin:4px 0}
.swatch{display:inline-block;width:12px;height:12px;margin-right:6px;vertical-align:middle;border-radius:2px}
table{border-collapse:collapse;background:#fff;font-size:13px;min-width:720px}
th,td{border-bottom:1px solid #edebe9;padding:6px 10px;text-align:left;vertical-align:top}
th{background:#f3f2f1} td.num{text-align:right}
tr.group td{font-weight:600;background:#f3f2f1;border-left:6px solid var(--c)}
td.thumb{font-family:ui-monospace,monospace;font-size:11px}
label{margin-right:8px} select{font-size:14px;margin-bottom:16px}
.view[hidden]{display:none}
.pending{display:inline-block;padding:1px 6px;border-radius:8px;background:#deecf9;color:#004578;white-space:nowrap}
"""

SCRIPT = """
document.getElementById('vault').addEventListener('change', function (e) {
  document.querySelectorAll('.view').forEach(function (v) { v.hidden = v.dataset.vault !== e.target.value; });
});
"""


def _point(fraction: float, r: float, c: float) -> tuple[float, float]:
    angle = 2 * math.pi * fraction - math.pi / 2
    return c + r * math.cos(angle), c + r * math.sin(angle)


def pie_svg(counts: Mapping[str, int], size: int = 220) -> str:
    total = sum(counts.values())
    c = r = size / 2
    parts = [f'<svg class="pie-chart" width="{size}" height="{size}" viewBox="0 0 {size} {size}" role="img">']
    if total == 0:
        parts.append(f'<circle cx="{c}" cy="{c}" r="{r - 1}" fill="#edebe9"/>')
    start = 0.0
    for status in STATUSES:
        count = counts.get(status, 0)
        if not count:
            continue
        label = f"{LABELS[status]}: {count}"
        if count == total:
            parts.append(f'<circle data-status="{status}" cx="{c}" cy="{c}" r="{r}" fill="{COLOURS[status]}">')
        else:
            end = start + count / total
            x1, y1 = _point(start, r, c)
            x2, y2 = _point(end, r, c)
            large = 1 if end - start > 0.5 else 0
            path = f"M{c},{c} L{x1:.2f},{y1:.2f} A{r},{r} 0 {large} 1 {x2:.2f},{y2:.2f} Z"
            parts.append(f'<path data-status="{status}" d="{path}" fill="{COLOURS[status]}">')
            start = end
        parts.append(f"<title>{escape(label)}</title>" + ("</circle>" if count == total else "</path>"))
    parts.append("</svg>")
    return "".join(parts)


def _cell(row: Mapping[str, Any], column: str) -> str:
    if column == "RenewalPending":  # the row's expiry and days left are the last good version's
        return '<span class="pending">renewal pending</span>' if renewal_pending(row) else ""
    value = row.get(column)
    if value is None:
        return ""
    if column == "CertExpiration":
        return escape(str(value).replace("T", " ").removesuffix("Z")[:16])
    return escape(str(value))


def _table(view: StatusView) -> str:
    head = "".join(f"<th>{escape(label)}</th>" for _, label in TABLE_COLUMNS)
    body = []
    for status in STATUSES:
        members = view.groups.get(status, [])
        body.append(
            f'<tr class="group" data-status="{status}" style="--c:{COLOURS[status]}">'
            f'<td colspan="{len(TABLE_COLUMNS)}">{LABELS[status]} ({len(members)})</td></tr>'
        )
        for row in members:
            cells = "".join(
                f'<td class="{"num" if col == "DaysLeft" else "thumb" if col == "CertThumbprint" else ""}">'
                f"{_cell(row, col)}</td>"
                for col, _ in TABLE_COLUMNS
            )
            pending = ' data-renewal-pending="true"' if renewal_pending(row) else ""
            body.append(f'<tr class="cert" data-status="{status}"{pending}>{cells}</tr>')
    return f'<table class="certs"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _section(view: StatusView, hidden: bool) -> str:
    legend = "".join(
        f'<li><span class="swatch" style="background:{COLOURS[s]}"></span>{LABELS[s]}: '
        f'<span class="count" data-status="{s}">{n}</span></li>'
        for s, n in view.counts.items()
    )
    return (
        f'<section class="view" data-vault="{escape(view.vault)}"{" hidden" if hidden else ""}>'
        f'<div class="panel"><div class="pie">{pie_svg(view.counts)}<ul class="legend">{legend}'
        f'<li>Total: <span class="total">{view.total}</span></li>'
        f'<li>Renewal pending: <span class="renewals-pending">{view.renewals_pending}</span></li>'
        f"</ul></div>{_table(view)}</div></section>"
    )


def render_html(rows: Iterable[Mapping[str, Any]]) -> str:
    rows = list(rows)
    _, latest = latest_snapshot(rows)
    views = [build_view(latest)] + [build_view(latest, vault) for vault in vaults_in(latest)]
    snapshot = views[0].snapshot_time or "no snapshot yet"
    options = "".join(
        f'<option value="{escape(v.vault)}">{"All vaults" if v.vault == ALL_VAULTS else escape(v.vault)}</option>'
        for v in views
    )
    sections = "".join(_section(v, hidden=i > 0) for i, v in enumerate(views))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>certlc - Key Vault certificates</title>"
        f"<style>{STYLE}</style></head><body><h1>Key Vault certificates</h1>"
        f'<div class="meta">Snapshot <time class="snapshot">{escape(snapshot)}</time> (UTC)</div>'
        f'<label for="vault">Key vault</label><select id="vault">{options}</select>'
        f"{sections}<script>{SCRIPT}</script></body></html>"
    )


def render(rows: Iterable[Mapping[str, Any]], path: Path | str) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_html(rows), encoding="utf-8")
    return target
