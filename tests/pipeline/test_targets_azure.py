"""Served by Azure services, on the local stack: an Application Gateway pinned to a Key Vault version and a Front
Door that follows the newest, found through the management SDKs after each sweep, probed at the stack's TLS front
(which serves what each service would), reported, moved under CERTLC_ROLLOUT=update, and a reference pinned to some
other version left alone."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from localazure.emulators.consumers import vault_id
from localazure.stack import LOCAL_APP

from renewal.messages import RenewalRequest
from tests.pipeline.helpers import (
    HandClock,
    alerts_for,
    audit,
    deliver,
    functions_clock,
    seed,
    settle,
    unique,
    versions,
)

pytestmark = pytest.mark.timeout(240)
SUBSCRIPTION, GROUP = LOCAL_APP[0], "rg-consumers"


def seen_targets(stack: Any, name: str) -> list[Any]:
    """What the sweep's last target check saw for the certificate (``renewal.targets.store``)."""
    from renewal.ledger import lock_container
    from renewal.targets.store import TargetStore

    return TargetStore(lock_container(stack.settings)).load("kv1").seen.get(name.lower(), [])


def reasons(stack: Any, name: str) -> dict[str, str]:
    """Each target's reason by its resource's name (a gateway's listener and a domain follow the resource)."""
    return {s.name.split("/")[0]: s.reason for s in seen_targets(stack, name)}


def sweep(stack: Any) -> None:
    stack.host.trigger_timer("sweep")
    settle(stack)


def test_azure_references_are_followed_reported_and_moved_only_when_pinned_to_the_replaced_version(stack, alerts):
    name = unique("appgw")
    first = seed(stack, name, days_left=200, lifetime_days=365).properties.version
    settle(stack)
    secrets = f"{stack.keyvault.vault_urls['kv1']}/secrets/{name}"
    gateway, chosen = f"gw-{name}", f"gw-chosen-{name}"
    gateway_id = stack.consumers.add_app_gateway(
        SUBSCRIPTION, GROUP, gateway, {"www": ([f"www.{name}.test"], f"{secrets}/{first}")}
    )
    stack.consumers.add_app_gateway(
        SUBSCRIPTION, GROUP, chosen, {"api": ([f"api.{name}.test"], f"{secrets}/{'0' * 32}")}
    )
    source = f"{vault_id(SUBSCRIPTION, GROUP, 'kv1')}/secrets/{name}"  # Front Door names the secret by its ARM id
    stack.consumers.add_front_door(
        SUBSCRIPTION, GROUP, f"fd-{name}", "cdn", f"cdn.{name}.test", source, use_latest=True
    )

    with functions_clock(HandClock(stack.now())) as clock:
        sweep(stack)
        assert reasons(stack, name) == {
            gateway: "serves_current",  # pinned, to the current version
            f"fd-{name}": "serves_current",
            chosen: "pinned_elsewhere",  # someone chose another version: reported, never touched
        }
        deliver(stack, RenewalRequest("kv1", name, "manual", force=True).to_json())
        assert len(versions(stack, name)) == 2
        clock.advance(dt.timedelta(hours=1))
        sweep(stack)
        assert reasons(stack, name) == {
            gateway: "pinned_to_previous",  # reported, not moved: CERTLC_ROLLOUT=report
            f"fd-{name}": "pickup_pending",  # Front Door follows the newest version within its interval
            chosen: "pinned_elsewhere",
        }
        told = [a for a in alerts_for(alerts, name) if a["kind"] == "serving"]
        assert [a["target"].split("/")[0] for a in told] == [gateway]
        pinned = stack.consumers.resource(gateway_id)["properties"]["sslCertificates"][0]["properties"]
        assert pinned["keyVaultSecretId"].endswith(first)

    current = next(v.version for v in versions(stack, name) if v.version != first)
    with functions_clock(HandClock(stack.now() + dt.timedelta(hours=2)), CERTLC_ROLLOUT="update"):
        sweep(stack)  # moves the gateway's reference; the next sweep sees it served
        moved = stack.consumers.resource(gateway_id)["properties"]["sslCertificates"][0]["properties"]
        assert moved["keyVaultSecretId"].endswith(current)
        updated = [r["target"].split("/")[0] for r in audit(stack, name) if r["event"] == "rollout_updated"]
        assert updated == [gateway]
        stack.consumers.advance(dt.timedelta(hours=73))  # Front Door's next Key Vault poll (72 h)
        sweep(stack)
        assert reasons(stack, name) == {
            gateway: "serves_current",
            f"fd-{name}": "serves_current",
            chosen: "pinned_elsewhere",
        }
        [left] = [s for s in seen_targets(stack, name) if s.name.startswith(chosen)]
        assert left.pinned_version == "0" * 32  # left as someone chose it
