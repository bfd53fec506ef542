"""What the demo prints: a progress line per step, then the table of outcomes, its legend and what the CA said.

Apart from the assessment so that the outcomes (and the JSON summary) do not depend on how they are shown.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from certlc.demo.assessment import ATTENTION, Outcome
from certlc.demo.seeds import FAILED, NOT_EXAMINED, RENEWED

# The columns whose heading does not say it all, in the table's order
LEGEND = (
    ("outcome, reason", "what the audit trail recorded for its renewal, else the sweep's report"),
    (
        "examined by",
        "what started its renewals: a Key Vault event (near_expiry, expired), the sweep, an operator's certlc renew "
        "(manual, compromise), the sweep seeing its CA revoked it (revoked)",
    ),
    ("versions", "the issued versions Key Vault holds"),
    ("alerts", f"alerts received about it that ask for attention ({ATTENTION} or error): not the renewed notices"),
    ("check", "ok when all of this and SERVED are what the demo expects with this CA, else WRONG (why: last line)"),
    ("served", "the status snapshot's Served: the targets serving its current version / the targets certlc found"),
)


def progress(quiet: bool) -> Callable[[str], None]:
    def say(message: str) -> None:
        if not quiet:
            print(f"==> {message}", flush=True)

    return say


def print_summary(
    outcomes: list[Outcome], elapsed: float, dashboard: Path, left_out: dict[str, str] | None = None
) -> None:
    """The table, its legend, what was followed after it, and the certificates this CA was not given (why)."""
    width = max(len(o.name) for o in outcomes)
    via = max(18, *(len(", ".join(o.via)) for o in outcomes))
    served = max(len("served"), *(len(o.served) for o in outcomes))
    print()
    print(
        f"{'certificate':<{width}}  {'outcome':<12}  {'reason':<9}  {'examined by':<{via}}  versions  alerts  check  "
        f"{'served':<{served}}  what happens next (the snapshot's outlook)"
    )
    for o in outcomes:
        print(
            f"{o.name:<{width}}  {o.status:<12}  {o.reason:<9}  {', '.join(o.via) or '-':<{via}}  {o.versions:>8}  "
            f"{o.alerts:>6}  {'ok' if o.ok else 'WRONG':<5}  {o.served or '-':<{served}}  {o.outlook or '-'}"
        )
    column = max(len(name) for name, _ in LEGEND)
    print()
    for name, meaning in LEGEND:
        print(f"  {name:<{column}}  {meaning}")
    followed = [o for o in outcomes if o.moved or o.serving_alerts]
    if followed:
        print("\nwhere they are served (the target check's audit records and the serving alerts received):")
    for o in followed:
        for move in o.moved:
            print(f"  {o.name}: moved {move}")
        for alert in o.serving_alerts:
            print(f"  {o.name}: serving alert: {alert}")
    retired = [o for o in outcomes if o.retired]
    if retired:
        print("\nold keys retired (Key Vault's versions and tags, the CA, the compromise notices received):")
    for o in retired:
        print(f"  {o.name}: {o.retired}")
    said = [o for o in outcomes if o.ca_request_id or o.ca_message or o.waited]
    if said:
        print("\nwhat the CA said (from the audit trail):")
    for o in said:
        status = f"pending, then {o.status}" if o.waited else o.status
        print(f"  {o.name}: request {o.ca_request_id or '-'} {status}: {o.ca_message or '-'}")
    if left_out:
        print("\nleft out with this CA:")
    for name, why in (left_out or {}).items():
        print(f"  {name}: {why}")
    counts = {status: sum(o.status == status for o in outcomes) for status in (RENEWED, FAILED, NOT_EXAMINED)}
    unexamined = ", ".join(o.name for o in outcomes if o.status == NOT_EXAMINED) or "none"
    print(
        f"\n{counts[RENEWED]} renewed, {counts[FAILED]} failed, {counts[NOT_EXAMINED]} not examined by the pipeline "
        f"({unexamined}), in {elapsed:.1f} s; outcomes from the audit trail, the sweep's report and Key Vault, "
        "SERVED from the status snapshot"
    )
    print(f"dashboard: {dashboard.resolve()}")
