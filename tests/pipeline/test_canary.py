"""The canary on the local stack: renewed by the sweep on its schedule, through the CA and the alert channel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from renewal import handlers
from renewal.messages import RenewalRequest
from tests.pipeline.helpers import alerts_for, audit, deliver, seed, settle, unique, versions

DAY_SECONDS = 86400


@pytest.fixture
def canary(stack: Any) -> Iterator[str]:
    """The stack's functions with one canary (``CERTLC_CANARY``), renewed every day: its name."""
    from renewal.ca.local import LocalCA
    from renewal.runtime import build_runtime

    # The local CA is made on first use, on the clock of whoever uses it; made after this test moves Key Vault's
    # clock, it would start in the future for the later tests' wall clock.
    LocalCA(Path(stack.settings["CERTLC_LOCAL_CA_DIR"]))
    name = unique("canary")
    settings = {**stack.settings, "CERTLC_CANARY": f"kv1/{name}", "CERTLC_CANARY_EVERY_DAYS": "1"}
    handlers.reset_runtime(build_runtime(settings))
    yield name
    handlers.reset_runtime()


def _sweep(stack: Any) -> None:
    stack.host.trigger_timer("sweep")
    settle(stack)


def _initiated(stack: Any, name: str) -> list[str]:
    return [r["trigger"] for r in audit(stack, name) if r["event"] == "renewal_initiated"]


def test_the_sweep_renews_a_healthy_canary_on_its_schedule_and_once(stack, alerts, canary):
    healthy = unique("healthy")
    for name in (canary, healthy):
        seed(stack, name, days_left=90, lifetime_days=90)  # issued just now: 60 days before either is due
    settle(stack)
    _sweep(stack)
    assert len(versions(stack, canary)) == 1, "a day has not passed: the canary is not renewed yet"

    stack.control.advance(2 * DAY_SECONDS)
    _sweep(stack)
    assert len(versions(stack, canary)) == 2
    assert len(versions(stack, healthy)) == 1, "a healthy certificate that is not the canary waits for its window"
    assert _initiated(stack, canary) == ["canary"]
    assert _initiated(stack, healthy) == []
    renewed = [a for a in alerts_for(alerts, canary) if a["kind"] == "renewed"]
    assert len(renewed) == 1, "the canary's renewal goes through the alert channel like any other"
    assert renewed[0]["canary"] is True and "canary" in renewed[0]["subject"], renewed[0]

    _sweep(stack)  # right after: the new version is not a day old
    old = min(versions(stack, canary), key=lambda v: v.created_on).version
    deliver(stack, RenewalRequest("kv1", canary, "canary", version=old).to_json())  # the sweep's message, again
    assert len(versions(stack, canary)) == 2
    assert _initiated(stack, canary) == ["canary"]
    skipped = [r["reason"] for r in audit(stack, canary) if r["event"] == "skipped"]
    assert skipped == ["superseded"], skipped
