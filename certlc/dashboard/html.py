"""The dashboard as one self-contained HTML page: inline CSS and SVG, no outside scripts or fonts.

It answers "what will happen" per certificate (who renews it, when, how the last renewal went), makes the two
kinds of trouble impossible to miss (a failed renewal is red whatever its expiry; a certificate nobody renews says
so, louder once it is close to expiry), and shows the renewal history below: the renewal metrics
(``certlc.dashboard.metrics``, the workbook's numbers), then one collapsible row per renewal with its steps folded
under it. One section per vault filter value, so every count, tile and history row a section shows is computed here,
not by the page's script.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

from certlc.dashboard.metrics import FAILED, Renewal, Summary, group_renewals, summarize
from certlc.dashboard.view import (
    ALL_VAULTS,
    COLOURS,
    DUE_NOW,
    LABELS,
    UNKNOWN,
    StatusView,
    build_history,
    build_view,
    coverage,
    is_failed,
    is_failed_event,
    latest_snapshot,
    next_renewal,
    parse_time,
    readable_duration,
    readable_time,
    renewal_pending,
    renewed_by,
    vaults_in,
)
from ingestion.schema import STATUSES

TABLE_COLUMNS = (
    ("KeyVault", "Vault"),
    ("CertName", "Name"),
    ("CertIssuer", "Issuer"),
    ("RenewedBy", "Renewed by"),
    ("NextRenewal", "Next renewal"),
    ("LastRenewalOutcome", "Last outcome"),
    ("RenewalPending", "Renewal pending"),
    ("CertExpiration", "Expiry"),
    ("DaysLeft", "Days left"),
    ("Served", "Served"),  # what its targets serve (renewal.targets)
)
CELL_CLASSES = {"DaysLeft": ' class="num"', "CertExpiration": ' class="time"'}
HISTORY_COLUMNS = ("Time", "Vault", "Certificate", "Event", "Trigger", "Reason / detail")
RENEWAL_COLUMNS = ("Started", "Certificate", "Trigger", "Outcome", "Reason", "Duration", "CA request", "Steps")
HISTORY_LIMIT = 200  # newest renewals per section: the page stays small however long the history
METRICS_DAYS = 30  # the window the workbook's History tiles use, here up to the snapshot
NOBODY = "nobody will renew this"

STYLE = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;padding:20px 24px;color:#201f1e;
background:#faf9f8}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:8px 24px;margin-bottom:16px}
h1{font-size:22px;margin:0} h2{font-size:17px;margin:24px 0 8px} .meta{color:#605e5c}
label{font-weight:600} select{font-size:14px;padding:2px 4px}
.view[hidden]{display:none}
.summary{display:flex;flex-wrap:wrap;gap:24px;align-items:stretch}
.tiles{display:grid;grid-template-columns:repeat(4,minmax(140px,1fr));gap:12px;flex:1 1 560px}
.tile{display:flex;flex-direction:column;justify-content:center;background:#fff;border:1px solid #edebe9;
border-top:4px solid #8a8886;border-radius:4px;padding:14px 16px}
.tile .value{display:block;font-size:34px;font-weight:600;line-height:1.1}
.tile .label{color:#605e5c}
.tile.alert{border-top-color:#d13438;background:#fde7e9} .tile.alert .value{color:#a4262c}
.pie{display:flex;gap:16px;align-items:center;background:#fff;border:1px solid #edebe9;padding:12px 16px;
border-radius:4px}
.legend{list-style:none;padding:0;margin:0} .legend li{margin:4px 0;white-space:nowrap}
.swatch{display:inline-block;width:12px;height:12px;margin-right:6px;vertical-align:middle;border-radius:2px}
table{width:100%;border-collapse:collapse;background:#fff;font-size:13px}
th,td{border-bottom:1px solid #edebe9;padding:6px 10px;text-align:left;vertical-align:top}
th{background:#f3f2f1;position:sticky;top:0} td.num{text-align:right;font-variant-numeric:tabular-nums}
td.time{white-space:nowrap}
tr.group td{font-weight:600;background:#f3f2f1;border-left:6px solid var(--c)}
tr.cert.failed td{background:#fde7e9;color:#a4262c}
tr.cert.failed td:first-child{box-shadow:inset 6px 0 #d13438}
tr.cert.uncovered_urgent td:first-child{box-shadow:inset 6px 0 #d13438}
.muted{color:#8a8886}
.badge{display:inline-block;padding:1px 6px;border-radius:8px;white-space:nowrap;font-size:12px}
.pending{background:#deecf9;color:#004578} .canary{background:#f3f2f1;color:#605e5c;margin-left:6px}
.due{font-weight:600}
.nobody{background:#fff4ce;color:#8a3707;border:1px solid #f2b705}
.nobody.urgent{background:#d13438;color:#fff;border-color:#a4262c;font-weight:700}
tr.event.failed td{color:#a4262c}
.metrics{display:flex;flex-wrap:wrap;gap:12px}
.metric{background:#fff;border:1px solid #edebe9;border-radius:4px;padding:10px 14px;min-width:150px}
.metric .value{display:block;font-size:24px;font-weight:600} .metric .label{color:#605e5c}
.metric.alert .value{color:#a4262c}
.renewals{--columns:1.2em 11.5em minmax(12em,1.4fr) 7em 7em minmax(8em,1fr) 7em minmax(6em,1fr) 4em}
details.renewal{background:#fff;border-bottom:1px solid #edebe9;font-size:13px}
details.renewal>summary,.renewals-head{display:grid;grid-template-columns:var(--columns);gap:8px;padding:6px 10px}
details.renewal>summary{cursor:pointer;list-style:none;white-space:nowrap}
details.renewal>summary>span{overflow:hidden;text-overflow:ellipsis}
details.renewal>summary::-webkit-details-marker{display:none}
details.renewal>summary::before{content:"\\25B8";color:#605e5c} details.renewal[open]>summary::before{content:"\\25BE"}
details.renewal.failed>summary{color:#a4262c;background:#fde7e9}
details.renewal table{margin:0 0 8px 2.2em;width:calc(100% - 2.2em)}
.renewals-head{background:#f3f2f1;font-weight:600;font-size:13px}
.empty{color:#605e5c;font-style:italic}
"""

SCRIPT = """
document.getElementById('vault').addEventListener('change', function (e) {
  document.querySelectorAll('.view').forEach(function (v) { v.hidden = v.dataset.vault !== e.target.value; });
});
"""


def _point(fraction: float, r: float, c: float) -> tuple[float, float]:
    angle = 2 * math.pi * fraction - math.pi / 2
    return c + r * math.cos(angle), c + r * math.sin(angle)


def pie_svg(counts: Mapping[str, int], size: int = 160) -> str:
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


def _text(value: Any) -> str:
    return "" if value is None else escape(str(value))


def _issuer(dn: Any) -> str:
    """The issuer's common name, the whole distinguished name on hover."""
    text = str(dn or "")
    cn = next((part.strip()[3:] for part in text.split(",") if part.strip().upper().startswith("CN=")), text)
    return f'<span title="{escape(text)}">{escape(cn)}</span>' if cn != text else escape(text)


def _renewed_by(row: Mapping[str, Any]) -> str:
    """Who renews it, the outlook's note on hover; a certificate nobody renews says so as a badge instead."""
    who, mark = renewed_by(row), coverage(row)
    note = f' title="{escape(str(row["RenewalNote"]))}"' if row.get("RenewalNote") else ""
    if mark:
        urgent = " urgent" if mark == "uncovered_urgent" else ""
        return f'<span class="badge nobody{urgent}"{note}>{"&#9888; " if urgent else ""}{NOBODY}</span>'
    return f'<span class="muted"{note}>{UNKNOWN}</span>' if who == UNKNOWN else f"<span{note}>{escape(who)}</span>"


def _next_renewal(row: Mapping[str, Any], snapshot_time: str) -> str:
    when = next_renewal(row, snapshot_time)
    if when == DUE_NOW:
        return f'<span class="due">{DUE_NOW}</span>'
    return f'<span class="muted">{when}</span>' if when == UNKNOWN else escape(when)


def _cell(row: Mapping[str, Any], column: str, snapshot_time: str) -> str:
    if column == "CertName":
        canary = ' <span class="badge canary">canary</span>' if row.get("Canary") is True else ""
        return _text(row.get(column)) + canary
    if column == "CertIssuer":
        return _issuer(row.get(column))
    if column == "RenewedBy":
        return _renewed_by(row)
    if column == "NextRenewal":
        return _next_renewal(row, snapshot_time)
    if column == "RenewalPending":  # the row's expiry and days left are the last good version's
        return '<span class="badge pending">renewal pending</span>' if renewal_pending(row) else ""
    if column == "CertExpiration":
        return escape(readable_time(row.get(column)))
    return _text(row.get(column))


def _cert_row(row: Mapping[str, Any], status: str, snapshot_time: str) -> str:
    classes = " ".join(["cert", *(["failed"] if is_failed(row) else []), *([coverage(row)] if coverage(row) else [])])
    attributes = f' data-vault="{escape(str(row["KeyVault"]))}" data-status="{status}"'
    attributes += f' data-failed="{str(is_failed(row)).lower()}" data-coverage="{coverage(row) or "covered"}"'
    attributes += ' data-renewal-pending="true"' if renewal_pending(row) else ""
    cells = "".join(
        f"<td{CELL_CLASSES.get(column, '')}>{_cell(row, column, snapshot_time)}</td>" for column, _ in TABLE_COLUMNS
    )
    return f'<tr class="{classes}"{attributes}>{cells}</tr>'


def _table(view: StatusView) -> str:
    head = "".join(f"<th>{escape(label)}</th>" for _, label in TABLE_COLUMNS)
    body = []
    for status in STATUSES:
        members = view.groups.get(status, [])
        body.append(
            f'<tr class="group" data-status="{status}" style="--c:{COLOURS[status]}">'
            f'<td colspan="{len(TABLE_COLUMNS)}">{LABELS[status]} ({len(members)})</td></tr>'
        )
        body.extend(_cert_row(row, status, view.snapshot_time) for row in members)
    return f'<table class="certs"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _tiles(view: StatusView) -> str:
    tiles = (
        ("total", "Total", view.total, False),
        ("failed", "Failed", view.failed, view.failed > 0),
        ("uncovered", "Nobody renews", view.uncovered, view.uncovered > 0),
        ("renewals-pending", "Renewal pending", view.renewals_pending, False),
    )
    return '<div class="tiles">' + "".join(
        f'<div class="tile{" alert" if alert else ""}" data-tile="{key}">'
        f'<span class="value">{value}</span><span class="label">{label}</span></div>'
        for key, label, value, alert in tiles
    ) + "</div>"  # fmt: skip


def _pie(view: StatusView) -> str:
    legend = "".join(
        f'<li><span class="swatch" style="background:{COLOURS[s]}"></span>{LABELS[s]}: '
        f'<span class="count" data-status="{s}">{n}</span></li>'
        for s, n in view.counts.items()
    )
    return f'<div class="pie">{pie_svg(view.counts)}<ul class="legend">{legend}</ul></div>'


def _metrics(summary: Summary) -> str:
    """The workbook's History tiles for this section's renewals (``certlc.dashboard.metrics``)."""

    def number(value: float | None, unit: str) -> str:
        return "-" if value is None else f"{value:g} {unit}"

    tiles = (
        ("success-rate", "Success rate", number(summary.success_rate, "%"), False),
        ("renewed", "Renewed", str(summary.renewed), False),
        ("failed", "Failed", str(summary.failed), summary.failed > 0),
        ("lead-avg", "Lead time, average", number(summary.lead_days_avg, "days"), False),
        ("lead-min", "Lead time, shortest", number(summary.lead_days_min, "days"), False),
        ("to-merged-avg", "Trigger to merged, average", number(summary.trigger_to_merged_minutes_avg, "min"), False),
        ("to-merged-max", "Trigger to merged, longest", number(summary.trigger_to_merged_minutes_max, "min"), False),
        ("to-served-avg", "Trigger to served, average", number(summary.trigger_to_served_minutes_avg, "min"), False),
        ("to-served-max", "Trigger to served, longest", number(summary.trigger_to_served_minutes_max, "min"), False),
        ("interventions", "Manual interventions", str(summary.interventions_total), False),
    )
    causes = ", ".join(f"{escape(c)} {n}" for c, n in summary.failures_by_cause.items()) or "none"
    actions = ", ".join(f"{escape(a)} {n}" for a, n in summary.interventions.items()) or "none"
    return (
        '<div class="metrics">'
        + "".join(
            f'<div class="metric{" alert" if alert else ""}" data-metric="{key}">'
            f'<span class="value">{value}</span><span class="label">{label}</span></div>'
            for key, label, value, alert in tiles
        )
        + f'</div><p class="meta causes">Failures by cause: {causes}. Manual interventions: {actions}.</p>'
    )


def _steps(renewal: Renewal) -> str:
    """The renewal's audit events, oldest first, as the history listed them before it was grouped."""
    head = "".join(f"<th>{label}</th>" for label in HISTORY_COLUMNS)
    body = []
    for event in renewal.steps:
        why = " - ".join(str(event[k]) for k in ("Reason", "Detail", "Action") if event.get(k))
        if event.get("OperatorUser"):
            why += f" (by {event['OperatorUser']} on {event.get('OperatorHost') or '?'})"
        cells = (
            f'<td class="time">{escape(readable_time(event.get("TimeGenerated")))}</td>'
            f"<td>{_text(event.get('KeyVault'))}</td><td>{_text(event.get('CertName'))}</td>"
            f"<td>{_text(event.get('Event'))}</td><td>{_text(event.get('Trigger'))}</td><td>{escape(why)}</td>"
        )
        red = " failed" if is_failed_event(event) else ""
        body.append(
            f'<tr class="event{red}" data-vault="{_text(event.get("KeyVault"))}"'
            f' data-event="{_text(event.get("Event"))}">{cells}</tr>'
        )
    return f'<table class="history"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _renewal(renewal: Renewal) -> str:
    started = readable_time(renewal.started.isoformat()) if renewal.started else ""
    cells = (
        started,
        f"{renewal.vault}/{renewal.name}",
        renewal.trigger,
        renewal.outcome.replace("_", " "),
        renewal.reason,
        readable_duration(renewal.duration_seconds),
        renewal.ca_request_id,
        str(len(renewal.steps)),
    )
    summary = "".join(f"<span>{escape(c)}</span>" for c in cells)
    red = " failed" if renewal.outcome == FAILED else ""
    return (
        f'<details class="renewal{red}" data-vault="{escape(renewal.vault)}" data-outcome="{renewal.outcome}"'
        f' data-correlation-id="{escape(renewal.correlation_id)}"><summary>{summary}</summary>'
        f"{_steps(renewal)}</details>"
    )


def _history(events: list[Mapping[str, Any]], recorded: bool) -> str:
    """One collapsible row per renewal (its correlation id), newest first, its steps folded under it."""
    if not events:
        said = "No renewals recorded for this vault yet." if recorded else "No renewal history yet."
        return f'<p class="empty history-empty">{said}</p>'
    renewals = group_renewals(events)
    shown = renewals[:HISTORY_LIMIT]
    more = f'<p class="meta">The newest {len(shown)} of {len(renewals)} renewals.</p>' if renewals[len(shown) :] else ""
    head = '<div class="renewals-head"><span></span>' + "".join(f"<span>{c}</span>" for c in RENEWAL_COLUMNS)
    return f'{more}<div class="renewals">{head}</div>{"".join(_renewal(r) for r in shown)}</div>'


def _window(snapshot_time: str) -> datetime | None:
    """The metrics' window: the workbook's 30 days, up to the snapshot the page shows (all of it without one)."""
    snapshot = parse_time(snapshot_time)
    return snapshot - timedelta(days=METRICS_DAYS) if snapshot else None


def _section(view: StatusView, history: list[Mapping[str, Any]], recorded: bool, hidden: bool) -> str:
    metrics = _metrics(summarize(history, _window(view.snapshot_time)))
    return (
        f'<section class="view" data-vault="{escape(view.vault)}"{" hidden" if hidden else ""}>'
        f'<div class="summary">{_tiles(view)}{_pie(view)}</div>'
        f"<h2>Certificates</h2>{_table(view)}"
        f"<h2>Renewals, the last {METRICS_DAYS} days</h2>{metrics}"
        f'<h2>Renewal history</h2><div class="history-view">{_history(history, recorded)}</div></section>'
    )


def render_html(rows: Iterable[Mapping[str, Any]], history: Iterable[Mapping[str, Any]] = ()) -> str:
    """The page for the latest snapshot in ``rows`` and the renewal ``history`` (audit events, any order)."""
    _, latest = latest_snapshot(rows)
    history = list(history)
    vaults = [ALL_VAULTS, *vaults_in([*latest, *history])]
    views = [build_view(latest, vault) for vault in vaults]
    snapshot = readable_time(views[0].snapshot_time) or "no snapshot yet"
    options = "".join(
        f'<option value="{escape(v)}">{"All vaults" if v == ALL_VAULTS else escape(v)}</option>' for v in vaults
    )
    sections = "".join(
        _section(view, build_history(history, view.vault), bool(history), hidden=i > 0) for i, view in enumerate(views)
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>certlc - Key Vault certificates</title>"
        f"<style>{STYLE}</style></head><body><header><h1>Key Vault certificates</h1>"
        f'<span class="meta">Snapshot <time class="snapshot">{escape(snapshot)}</time></span>'
        f'<span><label for="vault">Key vault</label> <select id="vault">{options}</select></span></header>'
        f"{sections}<script>{SCRIPT}</script></body></html>"
    )


def render(rows: Iterable[Mapping[str, Any]], path: Path | str, history: Iterable[Mapping[str, Any]] = ()) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_html(rows, history), encoding="utf-8")
    return target
