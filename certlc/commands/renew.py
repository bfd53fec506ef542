"""``certlc renew NAME --vault V``: one renewal now, through the same workflow the queue function runs."""

from __future__ import annotations

import argparse
import json

from renewal.messages import RenewalRequest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="certificate name in Key Vault")
    parser.add_argument("--vault", required=True, help="vault name (must be in CERTLC_VAULTS)")
    parser.add_argument("--dry-run", action="store_true", help="decide and explain, change nothing")
    parser.add_argument("--force", action="store_true", help="renew even if the certificate is not due yet")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from renewal.handlers import log_result
    from renewal.runtime import build_runtime

    runtime = build_runtime(args.env, dry_run=args.dry_run)
    request = RenewalRequest(
        vault=args.vault, name=args.name, trigger="manual", force=args.force
    )
    result = runtime.workflow.handle(request)
    log_result(result)
    if args.json:
        print(
            json.dumps(
                {
                    "status": result.status,
                    "reason": result.reason,
                    "message": result.message,
                    "new_version": result.new_version,
                    "retry_in_seconds": result.retry_in_seconds,
                }
            )
        )
    else:
        print(f"{args.vault}/{args.name}: {result.status} ({result.reason}) {result.message}")
    return 0 if result.status in ("renewed", "skipped", "pending", "retrying") else 1
