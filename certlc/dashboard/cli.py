"""``certlc dashboard`` and ``certlc status``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from certlc.dashboard.source import RowsUnavailable, default_rows_file, rows_from_file, rows_from_url
from certlc.stack_files import DEFAULT_DIR as DEFAULT_STATE_DIR  # where `certlc local up` keeps its state

if TYPE_CHECKING:
    from certlc.dashboard.view import PageClock
    from certlc.doctor.heartbeat import SweepSeen


def add_dashboard_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--rows", type=Path, help="status rows file (default: the local Logs emulator's rows)")
    source.add_argument("--logs-url", help="a running Logs emulator's endpoint to read rows and history from")
    parser.add_argument(
        "--history", type=Path, help="renewal history rows file (default: the local Logs emulator's history)"
    )
    parser.add_argument(
        "--ca-bundle", help="CA file for --logs-url (default: CERTLC_LOGS_CA_BUNDLE, a file's path or the PEM text)"
    )
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="local stack state directory")
    parser.add_argument(
        "--out", type=Path, default=None, help="HTML file to write (default: <state-dir>/dashboard.html)"
    )
    parser.add_argument(
        "--no-ingest",
        action="store_true",
        help="show the stored snapshot as it is (default: take a new one first, as certlc ingest does, when the "
        "settings' services answer; --rows never ingests)",
    )


def run_dashboard(args: argparse.Namespace) -> int:
    """Status rows and renewal history from the Logs emulator (its files, or its endpoint), on one page, with the
    snapshot's time and age. First a new snapshot, as ``certlc ingest`` takes it, unless ``--no-ingest`` or
    ``--rows``: when that cannot be done (the local stack is not running) or fails, one line on stderr, the page
    from the stored snapshot all the same, and exit 1 (the page is not current)."""
    from certlc.cli import UserError
    from certlc.dashboard import render
    from certlc.dashboard.source import history_from_file
    from certlc.dashboard.view import freshness, latest_snapshot
    from ingestion.history import STREAM_DEFAULT as HISTORY_STREAM
    from renewal.trust import ca_bundle

    out = args.out or args.state_dir / "dashboard.html"
    if out.is_dir():
        raise UserError(f"--out {out} is a folder: name the HTML file to write, e.g. {out / 'dashboard.html'}")
    trust = None
    if args.logs_url:  # --ca-bundle is read as the setting is: a file's path or the PEM text
        given = {"--ca-bundle": args.ca_bundle} if args.ca_bundle else os.environ
        trust = ca_bundle(given, "--ca-bundle" if args.ca_bundle else "CERTLC_LOGS_CA_BUNDLE")
    not_current, clock = None, None
    if not args.no_ingest and not args.rows:
        not_current, clock = ingest_first(args)
    shown = "the stored" if clock is None else "the new, incomplete"
    if clock is None:
        clock = saved_clock(args.state_dir) if not (args.rows or args.logs_url) else None
    try:
        if args.logs_url:
            rows = rows_from_url(args.logs_url, trust)
        else:
            rows = rows_from_file(args.rows or default_rows_file(args.state_dir))
        if args.logs_url and not args.history:
            history = rows_from_url(args.logs_url, trust, HISTORY_STREAM)
        else:
            history = history_from_file(args.history or default_rows_file(args.state_dir, HISTORY_STREAM))
    except RowsUnavailable as error:
        said = f"{not_current}, and no stored snapshot to show instead: {error}" if not_current else error
        print(f"certlc dashboard: {said}", file=sys.stderr)
        return 1
    try:
        path = render(rows, out, history, clock)
    except OSError as error:  # a folder that does not exist or cannot be written
        raise UserError(f"cannot write {out}: {error.strerror or error}") from None
    said = freshness(latest_snapshot(rows)[0], clock).said()
    if not_current:
        print(f"certlc dashboard: {not_current}; the page shows {shown} {said}", file=sys.stderr)
    print(said[:1].upper() + said[1:])
    print(path.resolve())  # last, on its own line: what a script opens (`certlc dashboard | tail -1`)
    return 1 if not_current else 0


def dashboard_settings(args: argparse.Namespace) -> dict[str, str]:
    """The settings to ingest with, refusing a stopped local stack's (``StackNotRunning``): ``--settings``; else,
    when the page shows a local stack's rows, that stack's own settings file; else the usual ones."""
    from certlc.cli import load_settings

    path = getattr(args, "settings", None)
    own = args.state_dir / "local.settings.json"
    if path is None and not args.logs_url and own.is_file():
        path = str(own)
    return load_settings(path)


def ingest_first(args: argparse.Namespace) -> tuple[str | None, PageClock | None]:
    """A new snapshot, as ``certlc ingest`` takes it (``ingestion.run.ingest``), on the clock the ingest timer uses
    (the local stack's, when its clock was moved). Why the page will not be current (None when it will), and the
    clock the snapshot was taken on (None when nothing was ingested). A setting that cannot work is raised."""
    from certlc.cli import STACK_NOT_RUNNING, StackNotRunning
    from certlc.commands.common import Endpoint, Unreachable, require_reachable
    from certlc.dashboard.view import PageClock
    from ingestion.run import ingest
    from ingestion.upload import target_from_env
    from renewal.clock import clock_from_env
    from renewal.settings import settings_from_env

    try:
        env = dashboard_settings(args)
    except StackNotRunning as error:
        return f"cannot take a new snapshot: {error}", None
    if not env.get("CERTLC_VAULTS", "").strip():
        return f"cannot take a new snapshot: no settings found, and {STACK_NOT_RUNNING}", None
    vaults = settings_from_env(env).vaults.values()  # ConfigError (exit 2) before any network
    target = target_from_env(env)
    stack_time = clock_from_env(env)
    endpoints = [Endpoint(f"vault {v.name}", v.url, "CERTLC_VAULTS") for v in vaults]
    endpoints.append(Endpoint("the Logs Ingestion endpoint", target.endpoint, "CERTLC_DCE_ENDPOINT"))
    if env.get("CERTLC_CLOCK_URL", "").strip():
        endpoints.append(Endpoint("the clock", env["CERTLC_CLOCK_URL"], "CERTLC_CLOCK_URL"))
    try:
        require_reachable(endpoints)
    except Unreachable as error:
        return f"cannot take a new snapshot: {error}", None
    now = stack_time()
    ahead = (now - datetime.now(UTC)).total_seconds()
    report = ingest(env, now=now)
    clock = PageClock(now, ahead, "the local stack's clock") if env.get("CERTLC_CLOCK_URL") else PageClock(now)
    return (None if report.ok else f"a vault or the upload failed: {report.summary()}"), clock


KEYVAULT_CLOCK_FILE = Path("keyvault") / "clock.json"  # the local stack's Key Vault emulator keeps its clock here


def saved_clock(state_dir: Path) -> PageClock:
    """The local stack's clock, from the offset its Key Vault emulator saved when it was last moved (kept while the
    stack is down, used again when it starts); this computer's clock when it was never moved."""
    from certlc.dashboard.view import stack_clock, wall_clock

    try:
        offset = float(json.loads((state_dir / KEYVAULT_CLOCK_FILE).read_text())["offset_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return wall_clock()
    return stack_clock(offset)


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="one certificate: everything certlc knows about it, read live")
    parser.add_argument("--vault", help="the vault (must be in CERTLC_VAULTS; optional when it lists one vault)")
    parser.add_argument("--rows", type=Path, help="read stored status rows instead of the vaults in CERTLC_VAULTS")
    parser.add_argument("--no-color", action="store_true", help="plain text even on a terminal")
    parser.add_argument(
        "--summary",
        action="store_true",
        help="the renewal metrics and one line per renewal (-v: with its steps), from the renewal history",
    )
    parser.add_argument(
        "--history",
        type=Path,
        help="with --summary: history rows or audit JSON lines (default: CERTLC_AUDIT_FILE)",
    )
    parser.add_argument(
        "--days", type=_days, default=SUMMARY_DAYS, help=f"with --summary: the window (default {SUMMARY_DAYS})"
    )


SUMMARY_DAYS = 30  # the workbook's History tab's window


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        days = 0
    if days < 1:
        raise argparse.ArgumentTypeError(f"--days must be a whole number of days, 1 or more, not {text!r}")
    return days


def last_sweep(env: Mapping[str, str]) -> SweepSeen:
    """When the sweep last ran (``certlc.doctor.heartbeat``), under the doctor's deadline for one call."""
    from certlc.doctor.heartbeat import sweep_seen
    from certlc.doctor.run import DEFAULT_TIMEOUT

    return sweep_seen(env, DEFAULT_TIMEOUT)


def run_status(args: argparse.Namespace) -> int:
    """Live from the vaults (the same rows ``ingest`` would upload); 1 when any vault failed, 2 for a setting
    that cannot work (raised to ``certlc.cli.main``). With NAME: that certificate (``certlc.commands.status``)."""
    from certlc.dashboard.terminal import render_json, render_table
    from renewal.errors import ConfigError

    if args.summary:
        return run_summary(args)
    if args.history:
        from certlc.cli import UserError

        raise UserError("--history is read by --summary; pass both, or neither")
    if args.name:
        from certlc.commands.status import run

        return run(args)
    failed: list[str] = []
    env = getattr(args, "env", None) or os.environ
    if args.vault and not args.rows:  # stored rows may name vaults no longer configured
        known_vault(env, args.vault)
    try:
        if args.rows:
            rows = rows_from_file(args.rows)
        else:
            from certlc.commands.common import Endpoint, require_reachable
            from ingestion.run import take_snapshot
            from renewal.settings import settings_from_env
            from renewal.trust import ca_bundle

            vaults = settings_from_env(env).vaults.values()
            ca_bundle(env, "CERTLC_KEYVAULT_CA_BUNDLE", ConfigError)  # a setting mistake is told before a dead vault
            require_reachable([Endpoint(f"vault {v.name}", v.url, "CERTLC_VAULTS") for v in vaults])  # one line now
            snapshot = take_snapshot(env)
            rows = snapshot.rows
            failed = [v.error for v in snapshot.vaults if v.error]
    except ConfigError:
        raise
    except (RowsUnavailable, ValueError) as error:
        print(f"certlc status: {error}", file=sys.stderr)
        return 1
    if args.vault:
        rows = [r for r in rows if str(r.get("KeyVault", "")).lower() == args.vault.lower()]
    colour = not args.no_color and sys.stdout.isatty() and "NO_COLOR" not in os.environ
    seen = None if args.rows else last_sweep(env)
    if args.output == "json":
        body = json.loads(render_json(rows, failed))
        print(json.dumps(body | ({"sweep": seen.as_dict()} if seen else {}), indent=2))
    else:
        print(render_table(rows, colour) + (f"\n{seen.line()}" if seen else ""))
    for error in failed:
        print(f"certlc status: vault skipped: {error}", file=sys.stderr)
    return 1 if failed else 0


def known_vault(env: Mapping[str, str], name: str) -> None:
    """``--vault`` must name a vault of ``CERTLC_VAULTS`` (exit 2 naming them), as every command's ``--vault``:
    filtering on a vault certlc does not manage would print an empty table and exit 0."""
    from certlc.commands.common import chosen_vault
    from renewal.vaults import vaults_from_env

    chosen_vault(vaults_from_env(env), name)


def run_summary(args: argparse.Namespace) -> int:
    """``certlc status --summary``: the metrics the workbook's History tab shows and one line per renewal, from
    the renewal history (``--history``, else ``CERTLC_AUDIT_FILE``); the window ends at the app's clock. 1 when the
    history cannot be read, 2 for options that do not go together or no history to read."""
    from certlc.cli import UserError
    from certlc.dashboard.metrics import group_renewals, summarize, within
    from certlc.dashboard.source import as_history_rows, history_from_file
    from certlc.dashboard.terminal import render_summary, render_summary_json
    from renewal.clock import clock_from_env

    if args.name:
        raise UserError("--summary sums up every renewal: leave out the name (certlc status NAME shows one)")
    if args.rows:
        raise UserError("--summary reads the renewal history (--history), not status rows (--rows)")
    env = getattr(args, "env", None) or os.environ
    if args.vault and env.get("CERTLC_VAULTS", "").strip():  # a history copied elsewhere is read without settings
        known_vault(env, args.vault)
    path = args.history or env.get("CERTLC_AUDIT_FILE", "").strip()
    if not path:
        raise UserError(
            "no renewal history to sum up: pass --history FILE (history rows or audit JSON lines) or set "
            "CERTLC_AUDIT_FILE; in Azure, the workbook's History tab shows these numbers"
        )
    try:
        rows = as_history_rows(history_from_file(Path(path)))
    except RowsUnavailable as error:
        print(f"certlc status: {error}", file=sys.stderr)
        return 1
    if args.vault:
        rows = [r for r in rows if str(r.get("KeyVault", "")).lower() == args.vault.lower()]
    since = clock_from_env(env)() - timedelta(days=args.days)
    summary, renewals = summarize(rows, since), group_renewals(within(rows, since))
    if args.output == "json":
        print(render_summary_json(summary, renewals))
    else:
        print(render_summary(summary, renewals, steps=args.verbose))
    return 0
