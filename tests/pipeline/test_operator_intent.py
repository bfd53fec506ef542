"""The operator's intent wins over a renewal in flight: what they do to the certificate while the CA decides
(manager approval) is what the merge finds. Tags changed meanwhile are the ones the new version carries; a
version disabled or a certificate deleted meanwhile ends the renewal with an audit record and a notice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from renewal.ca.local import LocalCA
from tests.pipeline.helpers import alerts_for, audit, client, drain_until, no_pending, seed, settle, unique, versions


def waiting_for_approval(stack: Any, prefix: str, **tags: str) -> tuple[str, Any, str]:
    """A certificate whose renewal waits for the CA's approval: its name, the version renewed, the CA request."""
    name = unique(prefix)
    old = seed(stack, name, days_left=20, tags={"certlc-profile": "approval", **tags})
    settle(stack)
    (pending,) = [r for r in audit(stack, name) if r["event"] == "pending"][:1]
    return name, old, pending["ca_request_id"]


def approve(stack: Any, request_id: str) -> None:
    LocalCA(Path(stack.settings["CERTLC_LOCAL_CA_DIR"])).approve(request_id)


def test_tags_changed_during_a_renewal_are_the_ones_the_new_version_carries(stack: Any) -> None:
    name, old, request_id = waiting_for_approval(stack, "intent-tags", team="payments")
    changed = dict(old.properties.tags) | {"team": "platform", "costcentre": "42"}
    client(stack).update_certificate_properties(name, old.properties.version, tags=changed)
    approve(stack, request_id)
    drain_until(stack, lambda: len(versions(stack, name)) == 2)
    new = client(stack).get_certificate(name)
    assert (new.properties.tags["team"], new.properties.tags["costcentre"]) == ("platform", "42")


def test_a_version_disabled_during_a_renewal_gets_no_successor_and_the_recipients_are_told(
    stack: Any, alerts: Any
) -> None:
    name, old, request_id = waiting_for_approval(stack, "intent-disabled", Recipient="owner@example.com")
    client(stack).update_certificate_properties(name, old.properties.version, enabled=False)
    approve(stack, request_id)
    drain_until(
        stack, lambda: any(r.get("reason") == "certificate_disabled" for r in audit(stack, name)), names=(name,)
    )
    assert len(versions(stack, name)) == 1 and no_pending(stack, name)
    assert not any(r["event"] in ("merged", "failed") for r in audit(stack, name))
    assert any("disabled while it was renewed" in a["reason"] for a in alerts_for(alerts, name))


def test_a_certificate_deleted_during_a_renewal_is_reported_as_deleted(stack: Any, alerts: Any) -> None:
    name, _, request_id = waiting_for_approval(stack, "intent-deleted")
    client(stack).begin_delete_certificate(name).wait()
    approve(stack, request_id)
    drain_until(stack, lambda: any(r.get("reason") == "certificate_deleted" for r in audit(stack, name)), names=(name,))
    assert not any(r.get("reason") == "pending_lost" for r in audit(stack, name))
    assert any("deleted while it was renewed" in a["reason"] for a in alerts_for(alerts, name))
