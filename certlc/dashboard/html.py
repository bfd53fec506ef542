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
    PageClock,
    StatusView,
    build_history,
    build_view,
    coverage,
    freshness,
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
# "long": text that may hold one long word (a name, a URL in a detail) breaks anywhere rather than widen the page
CELL_CLASSES = {
    "DaysLeft": ' class="num"', "CertExpiration": ' class="time"', "CertName": ' class="long"',
    "LastRenewalOutcome": ' class="long"', "Served": ' class="long"',
}  # fmt: skip
HISTORY_COLUMNS = ("Time", "Vault", "Certificate", "Event", "Trigger", "Reason / detail")
STEP_KEYS = ("KeyVault", "CertName", "Event", "Trigger")  # the HISTORY_COLUMNS between the time and the reason
STEP_CLASSES = {"Time": ' class="time"', "Certificate": ' class="long"', "Reason / detail": ' class="long"'}
# Each renewal column and its share of the width: every track may shrink to nothing and its text wraps, so the page
# never scrolls sideways, however narrow the window.
RENEWAL_COLUMNS = {
    "Started": 1.6, "Certificate": 2.4, "Trigger": 1, "Outcome": 1.1, "Reason": 1.6, "Duration": 1,
    "CA request": 1.4, "Steps": 0.6,
}  # fmt: skip
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
.fix{display:block;margin-top:2px;color:#201f1e}
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
td,th{overflow-wrap:break-word} td.long{overflow-wrap:anywhere;min-width:8em} .renewals span{overflow-wrap:anywhere}
@media (max-width:1000px){td.time,.badge{white-space:normal} th,td{padding:6px 6px}}
details.renewal{background:#fff;border-bottom:1px solid #edebe9;font-size:13px}
details.renewal>summary,.renewals-head{display:grid;grid-template-columns:var(--columns);gap:8px;padding:6px 10px}
details.renewal>summary{cursor:pointer;list-style:none}
details.renewal>summary>span{min-width:0}
details.renewal>summary>.fix{grid-column:2/-1;color:#201f1e;font-weight:600}
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
    if column == "LastRenewalOutcome" and is_failed(row) and row.get("RenewalNote"):  # the fix, shown, not hovered
        return f'{_text(row.get(column))}<span class="fix">{_text(row["RenewalNote"])}</span>'
    return _text(row.get(column))


def _shown_columns(view: StatusView) -> list[tuple[str, str]]:
    """The certificate table's columns with something in them: one empty in every row is left out."""
    members = view.members
    if not members:
        return list(TABLE_COLUMNS)
    return [(c, label) for c, label in TABLE_COLUMNS if any(_cell(r, c, view.snapshot_time) for r in members)]


def _cert_row(row: Mapping[str, Any], status: str, snapshot_time: str, columns: list[tuple[str, str]]) -> str:
    classes = " ".join(["cert", *(["failed"] if is_failed(row) else []), *([coverage(row)] if coverage(row) else [])])
    attributes = f' data-vault="{escape(str(row["KeyVault"]))}" data-status="{status}"'
    attributes += f' data-failed="{str(is_failed(row)).lower()}" data-coverage="{coverage(row) or "covered"}"'
    attributes += ' data-renewal-pending="true"' if renewal_pending(row) else ""
    cells = "".join(
        f"<td{CELL_CLASSES.get(column, '')}>{_cell(row, column, snapshot_time)}</td>" for column, _ in columns
    )
    return f'<tr class="{classes}"{attributes}>{cells}</tr>'


def _table(view: StatusView) -> str:
    columns = _shown_columns(view)
    head = "".join(f"<th>{escape(label)}</th>" for _, label in columns)
    body = []
    for status in STATUSES:
        members = view.groups.get(status, [])
        body.append(
            f'<tr class="group" data-status="{status}" style="--c:{COLOURS[status]}">'
            f'<td colspan="{len(columns)}">{LABELS[status]} ({len(members)})</td></tr>'
        )
        body.extend(_cert_row(row, status, view.snapshot_time, columns) for row in members)
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


def _step_cells(event: Mapping[str, Any]) -> dict[str, str]:
    """One audit event's cells, by HISTORY_COLUMNS, as text."""
    why = " - ".join(str(event[k]) for k in ("Reason", "Detail", "Action") if event.get(k))
    if event.get("OperatorUser"):
        why += f" (by {event['OperatorUser']} on {event.get('OperatorHost') or '?'})"
    values = (readable_time(event.get("TimeGenerated")), *(event.get(k) for k in STEP_KEYS), why)
    return {column: "" if value is None else str(value) for column, value in zip(HISTORY_COLUMNS, values, strict=True)}


def _filled(rows: list[dict[str, str]], columns: Iterable[str]) -> list[str]:
    """The columns with something in at least one row: a column empty in every row is not rendered."""
    return [column for column in columns if any(row[column] for row in rows)]


def _steps(renewal: Renewal) -> str:
    """The renewal's audit events, oldest first, as the history listed them before it was grouped."""
    rows = [_step_cells(event) for event in renewal.steps]
    columns = _filled(rows, HISTORY_COLUMNS)
    head = "".join(f"<th>{label}</th>" for label in columns)
    body = []
    for event, cells in zip(renewal.steps, rows, strict=True):
        tds = "".join(f"<td{STEP_CLASSES.get(column, '')}>{escape(cells[column])}</td>" for column in columns)
        red = " failed" if is_failed_event(event) else ""
        body.append(
            f'<tr class="event{red}" data-vault="{_text(event.get("KeyVault"))}"'
            f' data-event="{_text(event.get("Event"))}">{tds}</tr>'
        )
    return f'<table class="history"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _renewal_cells(renewal: Renewal) -> dict[str, str]:
    started = readable_time(renewal.started.isoformat()) if renewal.started else ""
    values = (
        started,
        f"{renewal.vault}/{renewal.name}",
        renewal.trigger,
        renewal.outcome.replace("_", " "),
        renewal.reason,
        readable_duration(renewal.duration_seconds),
        renewal.ca_request_id,
        str(len(renewal.steps)),
    )
    return dict(zip(RENEWAL_COLUMNS, values, strict=True))


def fix_for(renewal: Renewal) -> str:
    """What to do about a failed renewal: the action its failure notice gave (``renewal.reporting``)."""
    from renewal.reporting import ACTIONS, DEFAULT_ACTION

    return ACTIONS.get(renewal.reason, DEFAULT_ACTION) if renewal.outcome == FAILED else ""


def _renewal(renewal: Renewal, cells: dict[str, str], columns: list[str]) -> str:
    summary = "".join(f"<span>{escape(cells[c])}</span>" for c in columns)
    fix = fix_for(renewal)
    summary += f'<span class="fix">What to do: {escape(fix)}</span>' if fix else ""
    red = " failed" if renewal.outcome == FAILED else ""
    return (
        f'<details class="renewal{red}" data-vault="{escape(renewal.vault)}" data-outcome="{renewal.outcome}"'
        f' data-correlation-id="{escape(renewal.correlation_id)}"><summary>{summary}</summary>'
        f"{_steps(renewal)}</details>"
    )


def _history(events: list[Mapping[str, Any]], recorded: bool) -> str:
    """One collapsible row per renewal (its correlation id), newest first, its steps folded under it; the columns
    empty in every renewal shown are left out."""
    if not events:
        said = "No renewals recorded for this vault yet." if recorded else "No renewal history yet."
        return f'<p class="empty history-empty">{said}</p>'
    renewals = group_renewals(events)
    shown = renewals[:HISTORY_LIMIT]
    more = f'<p class="meta">The newest {len(shown)} of {len(renewals)} renewals.</p>' if renewals[len(shown) :] else ""
    cells = [_renewal_cells(r) for r in shown]
    columns = _filled(cells, RENEWAL_COLUMNS)
    tracks = " ".join(["1.2em", *(f"minmax(0,{RENEWAL_COLUMNS[c]:g}fr)" for c in columns)])
    head = '<div class="renewals-head"><span></span>' + "".join(f"<span>{c}</span>" for c in columns)
    rows = "".join(_renewal(r, c, columns) for r, c in zip(shown, cells, strict=True))
    return f'{more}<div class="renewals" style="--columns:{tracks}">{head}</div>{rows}</div>'


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


def _freshness(snapshot_time: str, clock: PageClock | None) -> str:
    """When the snapshot was taken and how old it is on the clock it was taken on, in the page's header."""
    known = freshness(snapshot_time, clock)
    said = escape(known.said()[:1].upper() + known.said()[1:])
    if known.taken is not None:
        when = escape(readable_time(snapshot_time))
        said = said.replace(when, f'<time class="snapshot" datetime="{escape(snapshot_time)}">{when}</time>', 1)
    age = "" if known.age_seconds is None else f' data-age-seconds="{known.age_seconds:.0f}"'
    ahead = f' data-clock-ahead-seconds="{known.clock.ahead_seconds:.0f}"' if known.clock.moved else ""
    return f'<span class="meta freshness"{age}{ahead}>{said}</span>'


def render_html(
    rows: Iterable[Mapping[str, Any]], history: Iterable[Mapping[str, Any]] = (), clock: PageClock | None = None
) -> str:
    """The page for the latest snapshot in ``rows`` and the renewal ``history`` (audit events, any order); the
    snapshot's age is read on ``clock`` (default: this computer's)."""
    _, latest = latest_snapshot(rows)
    history = list(history)
    vaults = [ALL_VAULTS, *vaults_in([*latest, *history])]
    views = [build_view(latest, vault) for vault in vaults]
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
        f"{_freshness(views[0].snapshot_time, clock)}"
        f'<span><label for="vault">Key vault</label> <select id="vault">{options}</select></span></header>'
        f"{sections}<script>{SCRIPT}</script></body></html>"
    )


def render(
    rows: Iterable[Mapping[str, Any]],
    path: Path | str,
    history: Iterable[Mapping[str, Any]] = (),
    clock: PageClock | None = None,
) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_html(rows, history, clock), encoding="utf-8")
    return target
