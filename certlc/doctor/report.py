"""Deciding the exit code, and the two ways to show the results (a line per check, or JSON)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from certlc.doctor.result import CheckResult

OK, FAILED = 0, 1


def exit_code(results: Sequence[CheckResult]) -> int:
    """0 only when there were checks and every one passed."""
    return OK if results and all(r.ok for r in results) else FAILED


def table(results: Sequence[CheckResult], verbose: bool = False) -> str:
    """One line per check: ``ok``/``FAIL``, what was checked, what was seen, and the fix when it failed."""
    width = max((len(r.name) for r in results), default=0)
    lines = []
    for r in results:
        line = f"{'ok' if r.ok else 'FAIL':4}  {r.name:{width}}  {r.detail}"
        if not r.ok:
            line += f"  fix: {r.fix}"
        if verbose:
            line += f"  [{r.target or '-'}, {r.seconds:.2f} s]"
        lines.append(line)
    bad = sum(not r.ok for r in results)
    lines.append(f"{len(results) - bad} ok, {bad} failed" if bad else f"all {len(results)} checks passed")
    return "\n".join(lines)


def as_json(results: Sequence[CheckResult]) -> str:
    return json.dumps(
        {"ok": exit_code(results) == OK, "checks": [r.as_dict() for r in results]},
        indent=2,
    )
