"""Served, not just stored: on the local stack, a certificate's declared endpoints are real nginx servers, probed
with a TLS handshake after each sweep; what they serve shows in `certlc targets`, `certlc status` and the snapshot
rows, an endpoint left on the old version alerts, and the replaced version is retired only once nothing serves it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from renewal.messages import RenewalRequest
from tests.cli import run_certlc
from tests.fixtures.nginx import Nginx
from tests.pipeline.helpers import (
    HandClock,
    alerts_for,
    audit,
    client,
    deliver,
    functions_clock,
    secret_client,
    seed,
    settle,
    unique,
    versions,
)

pytestmark = pytest.mark.timeout(240)


def serve_current(stack: Any, nginx: Nginx, name: str, host: str, folder: Path) -> str:
    """What `certlc sync` does for a server: the certificate's current secret as PEM files, then a reload. The
    version served."""
    secret = secret_client(stack).get_secret(name)
    folder.mkdir(parents=True, exist_ok=True)
    pem = folder / f"{host}-{secret.properties.version}.pem"
    pem.write_text(secret.value)
    nginx.serve(host, pem, pem)  # the secret holds the key and the chain, as Key Vault exports them
    return secret.properties.version


def targets_json(stack: Any, name: str) -> list[dict[str, Any]]:
    done = run_certlc("--settings", str(stack.settings_path), "targets", name, "--vault", "kv1", "-o", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["targets"]


def status_json(stack: Any, name: str) -> dict[str, Any]:
    done = run_certlc("--settings", str(stack.settings_path), "status", "--vault", "kv1", "-o", "json", timeout=180)
    assert done.returncode in (0, 1), done.stderr
    return next(c for c in json.loads(done.stdout)["certificates"] if c["CertName"] == name)


def test_a_renewed_certificate_is_followed_to_its_endpoints_until_every_one_serves_it(stack, nginx, alerts, tmp_path):
    name = unique("served")
    reloaded, forgotten = f"{name}.example.com", f"old-{name}.example.com"
    closed = f"closed-{name}.example.com"

    def at(host: str) -> str:
        return f"{host}:{nginx.port}@127.0.0.1"

    endpoints = f"{at(reloaded)},{at(forgotten)},{closed}:9@127.0.0.1"
    seed(
        stack,
        name,
        days_left=200,
        lifetime_days=365,
        tags={"certlc-endpoints": endpoints},
        content_type="application/x-pem-file",
    )
    settle(stack)
    first = serve_current(stack, nginx, name, reloaded, tmp_path)
    serve_current(stack, nginx, name, forgotten, tmp_path)

    with functions_clock(HandClock(stack.now())) as clock:
        stack.host.trigger_timer("sweep")
        settle(stack)
        before = {t["target"]: t for t in targets_json(stack, name)}
        assert before[at(reloaded)]["reason"] == "serves_current"
        assert before[f"{closed}:9@127.0.0.1"]["reason"] == "unreachable"  # a clear state, within the deadline

        forced = RenewalRequest("kv1", name, "manual", force=True)
        deliver(stack, forced.to_json())
        assert len(versions(stack, name)) == 2
        serve_current(stack, nginx, name, reloaded, tmp_path)  # one server was reloaded, the other forgotten
        clock.advance(dt.timedelta(hours=1))
        stack.host.trigger_timer("sweep")
        settle(stack)

        now = {t["target"]: t for t in targets_json(stack, name)}
        assert now[at(reloaded)]["reason"] == "serves_current"
        assert now[at(forgotten)]["reason"] == "serves_previous"
        [told] = [a for a in alerts_for(alerts, name) if a["kind"] == "serving"]
        assert forgotten in told["target"] and told["problem"] == "not_served"
        row = status_json(stack, name)
        assert row["Served"] == f"1/3: {at(forgotten)} serves the old version"

    with functions_clock(HandClock(stack.now() + dt.timedelta(days=3)), CERTLC_RETIRE_AFTER_DAYS="1") as clock:
        stack.host.trigger_timer("sweep")
        settle(stack)
        assert all(v.enabled for v in versions(stack, name)), "retired while an endpoint serves the old version"
        assert len([a for a in alerts_for(alerts, name) if a["kind"] == "serving"]) == 2  # one a day

        serve_current(stack, nginx, name, forgotten, tmp_path)
        nginx.sites.pop(closed, None)
        kv = client(stack)
        tags = kv.get_certificate(name).properties.tags  # the closed endpoint retired, the other tags kept
        kv.update_certificate_properties(name, tags={**tags, "certlc-endpoints": endpoints.rsplit(",", 1)[0]})
        for _ in range(2):  # the first sees both serve it (since now), the second a day later retires
            stack.host.trigger_timer("sweep")
            settle(stack)
            clock.advance(dt.timedelta(days=1, hours=1))
        old = next(v for v in versions(stack, name) if v.version == first)
        assert not old.enabled
        served = [r for r in audit(stack, name) if r["event"] == "served"]
        assert [r["correlation_id"] for r in served][-1] == forced.correlation_id  # folded under the renewal
        assert [r["old_version"] for r in audit(stack, name) if r["event"] == "retired"] == [first]


def test_an_endpoint_serving_a_certificate_outside_key_vault_that_expires_soon_alerts(stack, nginx, nginx_ca, alerts):
    """Whatever Key Vault knows: a load balancer still serving a hand-installed certificate is found by what it
    serves, and its expiry is a case for a person."""
    name = unique("outside")
    host = f"{name}.example.com"
    issued = nginx_ca.issue_cert(host, not_after=stack.now() + dt.timedelta(days=3))
    folder = Path(nginx.folder) / name
    folder.mkdir()
    pem = folder / "hand-installed.pem"
    pem.write_bytes(issued.private_key_pem.bytes() + b"".join(b.bytes() for b in issued.cert_chain_pems))
    nginx.serve(host, pem, pem)
    seed(stack, name, days_left=200, lifetime_days=365, tags={"certlc-endpoints": f"{host}:{nginx.port}@127.0.0.1"})
    settle(stack)
    with functions_clock(HandClock(stack.now())):
        stack.host.trigger_timer("sweep")
        settle(stack)
    [state] = targets_json(stack, name)
    assert (state["served"], state["reason"]) == ("other", "serves_other")
    [told] = [a for a in alerts_for(alerts, name) if a["kind"] == "serving"]
    assert told["problem"] == "served_expiring" and "Key Vault does not hold" in told["detail"]


def test_an_endpoint_only_a_machine_on_premises_reaches_is_probed_there_and_shown_with_the_others(
    stack, nginx, tmp_path
):
    """CERTLC_PROBER gives the on-premises endpoint to the prober `onprem-1`: the app's check leaves it alone, and
    `certlc targets --check` on that machine (CERTLC_PROBER_NAME=onprem-1) probes it; status shows both."""
    import os
    import subprocess
    import sys

    from tests.cli import REPO

    name = unique("onprem")
    public, private = f"{name}.example.com", f"intranet-{name}.corp.example"
    endpoints = f"{public}:{nginx.port}@127.0.0.1,{private}:{nginx.port}@127.0.0.1"
    seed(stack, name, days_left=200, lifetime_days=365, tags={"certlc-endpoints": endpoints},
         content_type="application/x-pem-file")  # fmt: skip
    settle(stack)
    for host in (public, private):
        serve_current(stack, nginx, name, host, tmp_path)
    rule = "onprem-1=*.corp.example"
    with functions_clock(HandClock(stack.now()), CERTLC_PROBER=rule):
        stack.host.trigger_timer("sweep")
        settle(stack)
    assert status_json(stack, name)["Served"] == "1/1"  # the app probed only its own

    env = {**os.environ, "PYTHONPATH": str(REPO), "CERTLC_PROBER": rule, "CERTLC_PROBER_NAME": "onprem-1"}
    command = [
        sys.executable,
        "-m",
        "certlc",
        "--settings",
        str(stack.settings_path),
        "targets",
        "--check",
        "-o",
        "json",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["targets"] == 1
    assert status_json(stack, name)["Served"] == "2/2"
    targets = {t["target"]: t for t in targets_json_stored(stack, name)}
    assert targets[f"{private}:{nginx.port}@127.0.0.1"]["reason"] == "serves_current"
    shown = run_certlc("--settings", str(stack.settings_path), "status", name, "--vault", "kv1")
    assert shown.returncode == 0, shown.stderr
    listed = shown.stdout.split("Targets", 1)[1].splitlines()
    assert any(private in line and "current" in line for line in listed), shown.stdout  # each target, and since


def targets_json_stored(stack: Any, name: str) -> list[dict[str, Any]]:
    """`certlc targets NAME --no-probe`: what the app's and the probers' last checks saw, together."""
    done = run_certlc(
        "--settings", str(stack.settings_path), "targets", name, "--vault", "kv1", "--no-probe", "-o", "json"
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["targets"]


def test_a_certlc_worker_on_premises_probes_the_endpoints_only_it_reaches(stack, nginx, tmp_path):
    """The on-premises worker, named in CERTLC_PROBER_NAME, runs the target check for its endpoints (here once, with
    --drain, as a scheduled task would); the app's status shows what it saw."""
    import subprocess
    import sys

    from tests.cli import REPO
    from tests.environment import without_certlc_settings

    name = unique("worker-probe")
    private = f"intranet-{name}.corp.example"
    seed(stack, name, days_left=200, lifetime_days=365, tags={"certlc-endpoints": f"{private}:{nginx.port}@127.0.0.1"},
         content_type="application/x-pem-file")  # fmt: skip
    settle(stack)
    serve_current(stack, nginx, name, private, tmp_path)
    settings = json.loads(stack.settings_path.read_text())
    settings["Values"] |= {
        "CERTLC_PROBER": "onprem-2=*.corp.example",
        "CERTLC_PROBER_NAME": "onprem-2",
        "CERTLC_QUEUE_NAME": unique("worker-probe"),  # the stack's own messages are not this worker's
    }
    own = tmp_path / "worker.settings.json"
    own.write_text(json.dumps(settings))
    command = [sys.executable, "-m", "certlc", "--settings", str(own), "worker", "--drain", "--timeout", "60"]
    done = subprocess.run(command, cwd=REPO, env=without_certlc_settings(), capture_output=True, text=True,
                          timeout=180, stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert status_json(stack, name)["Served"] == "1/1"


def test_a_compromise_notice_names_the_endpoints_still_serving_the_exposed_certificate(stack, nginx, alerts, tmp_path):
    """The last target check saw the endpoint serve the version whose key is exposed: the compromise notice names it,
    since it still serves that key (and, once revoked, a certificate clients refuse)."""
    name = unique("served-compromised")
    host = f"{name}.example.com"
    target = f"{host}:{nginx.port}@127.0.0.1"
    seed(
        stack,
        name,
        days_left=200,
        lifetime_days=365,
        tags={"certlc-endpoints": target},
        content_type="application/x-pem-file",
    )
    settle(stack)
    deliver(stack, RenewalRequest("kv1", name, "manual", force=True).to_json())  # a version the local CA issued
    exposed = serve_current(stack, nginx, name, host, tmp_path)
    with functions_clock(HandClock(stack.now())):
        stack.host.trigger_timer("sweep")  # the target check sees what the endpoint serves
        settle(stack)
        assert {t["target"]: t["reason"] for t in targets_json(stack, name)} == {target: "serves_current"}

    done = run_certlc("--settings", str(stack.settings_path), "renew", name, "--vault", "kv1", "--compromise")

    assert done.returncode == 0, done.stdout + done.stderr
    (notice,) = [a for a in alerts_for(alerts, name) if a["kind"] == "compromise"]
    assert notice["old_version"] == exposed and notice["still_serving"] == [target], notice
