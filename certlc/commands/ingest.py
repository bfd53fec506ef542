"""``certlc ingest``: the ingestion timer's work, once, now."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own: ``-o json`` (or ``--json``) prints the report as JSON."""


def run(args: argparse.Namespace) -> int:
    import json

    from ingestion.run import ingest
    from renewal.clock import clock_from_env

    report = ingest(args.env, now=clock_from_env(args.env)())  # the timer's clock: the local stack's may be moved
    if args.output == "json":
        print(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        print(report.summary())
    return 0 if report.ok else 1
