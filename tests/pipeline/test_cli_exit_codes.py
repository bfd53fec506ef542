"""`certlc renew` and `certlc failed` on the local stack, through certlc.cli.main: the exit-code rule (0 done or
nothing to do, 1 failed, refused, retrying or no such certificate, 2 a usage or configuration mistake), each
message printed once, and a dry run that changes nothing."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from certlc.cli import main as certlc
from renewal.messages import RenewalRequest
from renewal.runtime import build_runtime
from tests.pipeline.helpers import alerts_for, audit, client, seed, unique, versions

pytestmark = pytest.mark.timeout(120)


def due(stack, name: str, **tags: str) -> None:
    """Due by its own renew-before tag, 400 days out: no NearExpiry event renews it behind the test's back."""
    seed(stack, name, days_left=400, lifetime_days=500, tags={"certlc-renew-before-days": "450", **tags})


def renew(stack, *args: str) -> int:
    return certlc(["--settings", str(stack.settings_path), "renew", *args])


def test_a_certificate_that_does_not_exist_is_exit_1(stack, capsys):
    name = unique("missing")
    assert renew(stack, name, "--vault", "kv1") == 1
    out = capsys.readouterr().out
    assert out.count("not_found") == 1, out


def test_a_vault_not_configured_is_exit_2_said_once(stack, capsys):
    assert renew(stack, "web", "--vault", "kv9") == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().splitlines() == ["certlc: vault 'kv9' is not in CERTLC_VAULTS (kv1, kv2)"]


def test_a_due_certificate_is_renewed_with_exit_0(stack, capsys):
    name = unique("cli-due")
    due(stack, name)
    assert renew(stack, name, "--vault", "kv1") == 0
    assert f"kv1/{name}: renewed" in capsys.readouterr().out
    assert len(versions(stack, name)) == 2


def test_a_renewal_left_retrying_is_exit_1(stack, capsys):
    name = unique("cli-retry")
    due(stack, name, **{"certlc-ca": "cfssl", "certlc-profile": "server"})  # cfssl is down in the stack
    assert renew(stack, name, "--vault", "kv1") == 1
    assert f"kv1/{name}: retrying (ca_unavailable)" in capsys.readouterr().out


def test_a_dry_run_changes_nothing_and_says_it_would_renew(stack, alerts, capsys):
    name = unique("cli-dry")
    due(stack, name)
    before = client(stack).get_certificate(name)
    runtime = build_runtime(stack.settings)
    assert renew(stack, name, "--vault", "kv1", "--dry-run", "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["status"], result["reason"]) == ("skipped", "dry_run")
    assert "would renew" in result["message"] and "answers" in result["message"]
    after = client(stack).get_certificate(name)
    assert after.properties.version == before.properties.version and after.properties.tags == before.properties.tags
    assert audit(stack, name) == [] and alerts_for(alerts, name) == []
    assert not [e for e in runtime.failed.list() if e.name == name]
    # other tests' renewals may come and go on the shared queue meanwhile: look for this certificate's message
    waiting = runtime.renewals._client.peek_messages(max_messages=32)
    assert not [m for m in waiting if name in str(m.content)], [m.content for m in waiting]


def test_a_dry_run_that_would_fail_writes_no_failure(stack, alerts, capsys):
    """A profile the CA does not offer: the real run is denied (exit 1); the dry run says so and records nothing."""
    name = unique("cli-dry-deny")
    due(stack, name, **{"certlc-profile": "retired-template"})
    assert renew(stack, name, "--vault", "kv1", "--dry-run") == 1
    assert "does not offer profile 'retired-template'" in capsys.readouterr().out
    assert audit(stack, name) == [] and alerts_for(alerts, name) == []
    assert not [e for e in build_runtime(stack.settings).failed.list() if e.name == name]
    tags = client(stack).get_certificate(name).properties.tags
    assert not any(key.startswith("certlc-last") for key in tags), tags


def test_a_dry_run_with_a_ca_that_does_not_answer_is_exit_1(stack, capsys):
    name = unique("cli-dry-cadown")
    due(stack, name, **{"certlc-ca": "cfssl", "certlc-profile": "server"})
    assert renew(stack, name, "--vault", "kv1", "--dry-run") == 1
    assert "CA 'cfssl' does not answer" in capsys.readouterr().out
    assert audit(stack, name) == []


def test_an_unknown_ca_adapter_fails_the_dry_run_with_exit_2(stack, capsys, monkeypatch):
    name = unique("cli-dry-digicert")
    due(stack, name)
    monkeypatch.setenv("CERTLC_CA", "digicert")
    assert renew(stack, name, "--vault", "kv1", "--dry-run") == 2
    captured = capsys.readouterr()
    assert "would renew" not in captured.out
    assert captured.err.strip().splitlines() == [
        "certlc: unknown CA adapter 'digicert': use local, cfssl, acme or adcs (CERTLC_CA or tag certlc-ca)"
    ]


@pytest.fixture
def own_queue(stack, monkeypatch):
    """A renewal queue of this test's own, so its failed and poison stores hold only what the test puts there."""
    queue = unique("cli-q")
    monkeypatch.setenv("CERTLC_QUEUE_NAME", queue)
    env = stack.settings | {"CERTLC_QUEUE_NAME": queue}
    runtime = build_runtime(env)
    from renewal.clients import queue_client

    poison = queue_client(env, f"{queue}-poison")
    poison.create_queue()
    yield runtime, poison
    for name in (queue, f"{queue}-failed", f"{queue}-poison"):
        queue_client(env, name).delete_queue()


def failed_ids(stack, capsys) -> dict[str, dict]:
    capsys.readouterr()
    assert certlc(["--settings", str(stack.settings_path), "failed", "list", "--json"]) == 0
    return {e["id"]: e for e in json.loads(capsys.readouterr().out)}


def test_retry_all_re_drives_what_it_can_and_leaves_the_rest_for_remove(stack, own_queue, capsys):
    runtime, poison = own_queue
    now = dt.datetime.now(dt.UTC)
    runtime.failed.add(RenewalRequest(vault="kv1", name="web", trigger="sweep"), "", "ca_denied", "no", now)
    runtime.failed.add(None, "{not json", "invalid_message", "unreadable", now)
    poison.send_message("not a renewal at all")
    entries = failed_ids(stack, capsys)
    assert len(entries) == 3
    assert certlc(["--settings", str(stack.settings_path), "failed", "retry", "--all"]) == 1
    out = capsys.readouterr().out
    assert out.count("re-driven: kv1/web") == 1 and out.count("not re-driven") == 2, out
    left = failed_ids(stack, capsys)
    assert len(left) == 2 and all(e["vault"] is None for e in left.values()), left  # no new `?/?` entries
    assert runtime.renewals._client.get_queue_properties().approximate_message_count == 1

    first, second = sorted(left)
    assert certlc(["--settings", str(stack.settings_path), "failed", "remove", first, "nope"]) == 1
    assert capsys.readouterr().out.splitlines() == [f"removed: {first}", "not removed: nope: no such entry"]
    assert list(failed_ids(stack, capsys)) == [second]


def test_purge_needs_yes_and_then_empties_both_stores(stack, own_queue, capsys):
    runtime, poison = own_queue
    runtime.failed.add(None, "{not json", "invalid_message", "unreadable", dt.datetime.now(dt.UTC))
    poison.send_message("not a renewal at all")
    assert certlc(["--settings", str(stack.settings_path), "failed", "purge"]) == 2
    assert len(failed_ids(stack, capsys)) == 2
    assert certlc(["--settings", str(stack.settings_path), "failed", "purge", "--yes"]) == 0
    assert failed_ids(stack, capsys) == {}
