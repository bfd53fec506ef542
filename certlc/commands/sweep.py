"""``certlc sweep``: the sweep timer's work, once, now."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own: ``-o json`` (or ``--json``) prints the report as JSON."""


def run(args: argparse.Namespace) -> int:
    from certlc.commands.common import checked_runtime
    from renewal import handlers

    handlers.reset_runtime(checked_runtime(args.env))
    report = handlers.on_sweep_timer()
    if args.output == "json":
        print(json.dumps(asdict(report), indent=2))
    else:
        for label, items in (
            ("queued", report.enqueued),
            ("orphaned pending operations taken over", report.taken_over),
            ("in flight", report.in_flight),
            ("warned", report.warned),
        ):
            print(f"{label}: {', '.join(items) or '-'}")
        for key, error in report.errors.items():
            print(f"error: {key}: {error}")
    return 1 if report.errors else 0
