"""``certlc failed list|retry``: what could not be renewed, and re-driving it once fixed."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="list failed and poison renewals")
    listing.add_argument("--json", action="store_true", help="print entries as JSON")
    retry = sub.add_parser("retry", help="re-drive entries as fresh renewals")
    retry.add_argument("ids", nargs="*", help="entry ids from `certlc failed list`")
    retry.add_argument("--all", action="store_true", help="re-drive every entry")


def run(args: argparse.Namespace) -> int:
    from certlc.cli import UserError
    from renewal.runtime import build_runtime

    if args.action == "retry" and not args.ids and not args.all:
        raise UserError("name the entries to retry (ids from `certlc failed list`) or pass --all")
    store = build_runtime(args.env).failed
    if args.action == "list":
        entries = store.list()
        if args.json:
            print(json.dumps([asdict(e) for e in entries], indent=2))
        elif not entries:
            print("no failed renewals")
        for e in [] if args.json else entries:
            print(
                f"{e.id}  {e.store:6}  {e.failed_at[:19]:19}  {e.vault or '?'}/{e.name or '?'}  {e.reason}: {e.message}"
            )
        return 0
    done = store.retry(None if args.all else args.ids)
    for e in done:
        print(f"re-driven: {e.vault}/{e.name} ({e.id})")
    missing = set(args.ids) - {e.id for e in done}
    for entry_id in sorted(missing):
        print(f"not re-driven (unknown id or not a renewal request): {entry_id}")
    return 1 if missing else 0
