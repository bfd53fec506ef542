"""Failure handling through the real functions: denied, pending, CA down, Key Vault faults, crashes, races."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from certlc.cli import main as certlc
from renewal import handlers
from renewal.ca.local import LocalCA
from renewal.messages import RenewalRequest
from renewal.runtime import build_runtime
from tests.pipeline.helpers import (
    alerts_for,
    audit,
    client,
    deliver,
    drain_until,
    merged,
    near_expiry_event,
    no_pending,
    seed,
    settle,
    unique,
    versions,
)


def test_ca_denial_fails_permanently_with_an_alert_and_no_pending_operation(stack, alerts):
    name = unique("denied")
    seed(stack, name, days_left=5, tags={"certlc-profile": "retired-template", "Recipient": "owner@example.com"})
    drain_until(stack, lambda: any(r["event"] == "failed" for r in audit(stack, name)))  # a delivery may be retried
    assert len(versions(stack, name)) == 1
    assert no_pending(stack, name)
    failed = [r for r in audit(stack, name) if r["event"] == "failed"]
    assert [r["reason"] for r in failed] == ["ca_denied"]
    kinds = [a["kind"] for a in alerts_for(alerts, name)]
    assert "renewal_failed" in kinds and "escalation" in kinds, "5 days before expiry a failure escalates"
    entries = [e for e in build_runtime(stack.settings).failed.list() if e.name == name]
    assert [e.reason for e in entries] == ["ca_denied"]


def test_failed_list_and_retry_through_the_cli(stack, capsys):
    name = unique("redrive")
    seed(stack, name, days_left=12, tags={"certlc-profile": "retired-template"})
    drain_until(stack, lambda: any(r["event"] == "failed" for r in audit(stack, name)))  # a delivery may be retried
    settings = str(stack.settings_path)
    assert certlc(["--settings", settings, "failed", "list", "--json"]) == 0
    listed = [e for e in json.loads(capsys.readouterr().out) if e["name"] == name]
    assert len(listed) == 1 and listed[0]["reason"] == "ca_denied"

    client(stack).update_certificate_properties(name, tags={"certlc-profile": "server"})  # the operator's fix
    assert certlc(["--settings", settings, "failed", "retry", listed[0]["id"]]) == 0
    assert f"re-driven: kv1/{name}" in capsys.readouterr().out
    drain_until(stack, lambda: len(versions(stack, name)) == 2)
    assert certlc(["--settings", settings, "failed", "list", "--json"]) == 0
    assert not [e for e in json.loads(capsys.readouterr().out) if e["name"] == name]


def test_ca_pending_is_polled_until_approved(stack):
    name = unique("approval")
    seed(stack, name, days_left=20, tags={"certlc-profile": "approval"})
    settle(stack)
    pending = [r for r in audit(stack, name) if r["event"] == "pending"]
    assert pending and len(versions(stack, name)) == 1
    LocalCA(Path(stack.settings["CERTLC_LOCAL_CA_DIR"])).approve(pending[0]["ca_request_id"])
    drain_until(stack, lambda: len(versions(stack, name)) == 2)
    assert no_pending(stack, name)
    assert sum(r["event"] == "submitted" for r in audit(stack, name)) == 1, "a pending request is polled, not resent"


def test_ca_pending_then_denied_fails_and_withdraws_the_pending_operation(stack, alerts):
    name = unique("refused")
    seed(stack, name, days_left=20, tags={"certlc-profile": "approval"})
    settle(stack)
    pending = [r for r in audit(stack, name) if r["event"] == "pending"]
    assert pending and not no_pending(stack, name)
    LocalCA(Path(stack.settings["CERTLC_LOCAL_CA_DIR"])).deny(pending[0]["ca_request_id"], "manager declined")
    drain_until(stack, lambda: any(r["event"] == "failed" for r in audit(stack, name)))
    assert [r["reason"] for r in audit(stack, name) if r["event"] == "failed"] == ["ca_denied"]
    assert len(versions(stack, name)) == 1 and no_pending(stack, name)
    assert any("manager declined" in a["reason"] for a in alerts_for(alerts, name) if a["kind"] == "renewal_failed")


class LateCA:
    """A port where the CA is not, until ``arrive()``: then every connection there is forwarded to the real one."""

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._listener: socket.socket | None = None
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]

    def arrive(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._target))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: Any, sink: Any) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()


def test_a_ca_down_past_all_attempts_tells_once_keeps_trying_and_renews_when_it_is_back(stack, alerts, cfssl_server):
    """Transient never becomes permanent: after CERTLC_MAX_ATTEMPTS one alert (not permanent), no failed-store entry,
    no failed tag; the renewal goes on at the capped back-off and, once the CA answers again, renews by itself."""
    name = unique("cadown")
    seed(stack, name, days_left=20, tags={"certlc-ca": "cfssl", "certlc-profile": "server"})
    late = LateCA(int(cfssl_server.url.rsplit(":", 1)[1]))
    settings = stack.settings | {
        "CERTLC_CFSSL_URL": f"http://127.0.0.1:{late.port}",
        "CERTLC_MAX_ATTEMPTS": "3",
        "CERTLC_BACKOFF_BASE_SECONDS": "1",
        "CERTLC_BACKOFF_CAP_SECONDS": "2",
        "CERTLC_QUEUE_NAME": f"cadown-{unique('q')}",  # this test delivers each retry itself
    }
    workflow = build_runtime(settings).workflow
    request = RenewalRequest("kv1", name, "manual")
    try:
        for _ in range(5):  # attempts 1 to 5: the CA is down for all of them
            result = workflow.handle(request)
            assert (result.status, result.reason) == ("retrying", "ca_unavailable"), result.message
            request = result.request
        failures = [a for a in alerts_for(alerts, name) if a["kind"] == "renewal_failed"]
        assert [(a["reason_code"], a["permanent"], a["attempt"]) for a in failures] == [("retries_exhausted", False, 3)]
        assert "keeps trying" in failures[0]["reason"]
        assert not any(r["event"] == "failed" for r in audit(stack, name))
        assert not [e for e in build_runtime(settings).failed.list() if e.name == name]
        tags = client(stack).get_certificate(name).properties.tags or {}
        assert "failed" not in tags.get("certlc-last-outcome", "")  # not tagged as failed: events still act on it
        late.arrive()
        result = workflow.handle(request)
    finally:
        late.close()
    assert (result.status, request.attempt) == ("renewed", 6), result.message
    assert len(versions(stack, name)) == 2 and no_pending(stack, name)
    assert len([a for a in alerts_for(alerts, name) if a["kind"] == "renewal_failed"]) == 1  # told once


@pytest.mark.parametrize("status", [429, 503])
def test_key_vault_error_bursts_are_ridden_out(stack, status):
    name = unique(f"burst{status}")
    seed(stack, name, days_left=400, lifetime_days=500)
    stack.control.add_fault(status=status, retry_after=1, count=6, path=f"/certificates/{name}")
    try:
        deliver(stack, RenewalRequest("kv1", name, "manual", force=True).to_json())
        drain_until(stack, lambda: len(versions(stack, name)) == 2)
    finally:
        stack.control.clear_faults()
    assert merged(stack, name) == 1
    assert no_pending(stack, name)


def _mentions(name: str, args: tuple) -> bool:
    from cryptography import x509

    for arg in args:
        if isinstance(arg, str) and arg == name:
            return True
        if isinstance(arg, RenewalRequest) and arg.name == name:
            return True
        if isinstance(arg, bytes) and arg.startswith(b"-----BEGIN CERTIFICATE REQUEST"):
            return name in x509.load_pem_x509_csr(arg).subject.rfc4514_string()
    return False


def _crash_after(mocker, target: str, attribute: str, name: str) -> None:
    """Let the real step run for ``name``, then raise once, as a process dying right after it would."""
    import importlib

    module_name, class_name = target.rsplit(".", 1)
    cls = getattr(importlib.import_module(module_name), class_name)
    real = getattr(cls, attribute)
    crashed = threading.Event()

    def crashing(self, *args, **kwargs):
        value = real(self, *args, **kwargs)
        if not crashed.is_set() and _mentions(name, args):
            crashed.set()
            raise RuntimeError(f"injected crash after {attribute}")
        return value

    mocker.patch.object(cls, attribute, crashing)


@pytest.mark.parametrize(
    ("target", "attribute"),
    [
        ("renewal.keyvault.KeyVault", "get"),
        ("renewal.keyvault.KeyVault", "create_pending"),
        ("renewal.ca.local.LocalCA", "submit"),
        ("renewal.keyvault.KeyVault", "merge"),
        ("renewal.reporting.Reporter", "renewed"),
    ],
)
def test_a_crash_after_any_step_still_renews_exactly_once(stack, mocker, target, attribute):
    name = unique("crash")
    seed(stack, name, days_left=400, lifetime_days=500)
    handlers.reset_runtime()
    body = RenewalRequest("kv1", name, "manual", force=True).to_json()
    _crash_after(mocker, target, attribute, name)
    try:
        deliver(stack, body)  # the first delivery dies (or, for notify, survives)
    except RuntimeError:
        deliver(stack, body, dequeue_count=2)  # the host delivers the same message again
    drain_until(stack, lambda: len(versions(stack, name)) == 2 and no_pending(stack, name))
    settle(stack)
    assert len(versions(stack, name)) == 2
    assert sum(r["event"] == "merged" for r in audit(stack, name)) >= 1


def test_two_workers_on_one_certificate_issue_one_certificate(stack, mocker):
    """Two instances (separate runtimes): the second finds the certificate's lock taken and looks again later."""
    name = unique("race")
    seed(stack, name, days_left=400, lifetime_days=500)
    inside_ca, release = threading.Event(), threading.Event()
    real_submit = LocalCA.submit

    def slow_submit(self, csr_pem, profile, replaces=None):
        inside_ca.set()
        release.wait(30)
        return real_submit(self, csr_pem, profile, replaces)

    mocker.patch.object(LocalCA, "submit", slow_submit)
    first, second = build_runtime(stack.settings), build_runtime(stack.settings)
    request = RenewalRequest("kv1", name, "manual", force=True)
    results = {}
    worker = threading.Thread(target=lambda: results.setdefault("first", first.workflow.handle(request)))
    worker.start()
    assert inside_ca.wait(30)
    results["second"] = second.workflow.handle(RenewalRequest("kv1", name, "manual", force=True))
    release.set()
    worker.join(30)
    assert results["first"].status == "renewed"
    assert results["second"].status == "retrying" and results["second"].reason == "locked_elsewhere"
    drain_until(stack, lambda: no_pending(stack, name))
    settle(stack)
    assert len(versions(stack, name)) == 2


@pytest.mark.parametrize("kind", ["renewal request", "raw event"])
def test_poison_messages_are_listed_and_re_driven(stack, capsys, kind):
    """What the Functions host moved to <queue>-poison shows in `certlc failed list` and can be retried."""
    from renewal.clients import queue_client

    name = unique("poison")
    old = seed(stack, name, days_left=400, lifetime_days=500, tags={"certlc-renew-before-days": "450"})
    if kind == "raw event":
        body = json.dumps(near_expiry_event(stack, name, old.properties.version))
    else:
        body = RenewalRequest("kv1", name, "manual", force=True).to_json()
    queue_client(stack.settings, f"{stack.settings['CERTLC_QUEUE_NAME']}-poison").send_message(body)
    settings = str(stack.settings_path)
    assert certlc(["--settings", settings, "failed", "list", "--json"]) == 0
    entry = next(e for e in json.loads(capsys.readouterr().out) if e["name"] == name)
    assert (entry["store"], entry["vault"]) == ("poison", "kv1")
    assert certlc(["--settings", settings, "failed", "retry", entry["id"]]) == 0
    drain_until(stack, lambda: len(versions(stack, name)) == 2)


def test_the_recovery_commands_read_whatever_is_in_the_queues_and_hide_nothing(stack, capsys):
    """Not base64, not JSON, an unknown kind, beside a plain-JSON event: listed (the unreadable ones as such),
    the readable one re-driven, and every other entry still visible right after."""
    import base64

    from renewal.clients import queue_client

    raw = {"message_encode_policy": None, "message_decode_policy": None}
    queue = stack.settings["CERTLC_QUEUE_NAME"]
    poison = queue_client(stack.settings, f"{queue}-poison", **raw)
    failed = queue_client(stack.settings, f"{queue}-failed", **raw)
    name = unique("unreadable")
    old = seed(stack, name, days_left=400, lifetime_days=500, tags={"certlc-renew-before-days": "450"})
    event = json.dumps(near_expiry_event(stack, name, old.properties.version))
    readable = poison.send_message(event).id  # as an Event Grid queue subscription wrote it in 2021: plain JSON
    unreadable = [
        poison.send_message("not base64, not JSON!").id,
        poison.send_message(base64.b64encode(b'{"kind": "mystery"}').decode()).id,
        failed.send_message(base64.b64encode(b"{broken").decode()).id,
    ]
    settings = str(stack.settings_path)
    for _ in range(2):  # a second look right away: the first hid nothing
        assert certlc(["--settings", settings, "failed", "list", "--json"]) == 0
        entries = {e["id"]: e for e in json.loads(capsys.readouterr().out)}
        assert {i: entries[i]["reason"] for i in unreadable} == dict.fromkeys(unreadable, "unreadable")
        assert (entries[readable]["vault"], entries[readable]["name"]) == ("kv1", name)
    assert certlc(["--settings", settings, "failed", "retry", readable, *unreadable]) == 1  # some not re-driven
    out = capsys.readouterr().out
    assert f"re-driven: kv1/{name} ({readable})" in out and out.count("not re-driven:") == 3
    drain_until(stack, lambda: len(versions(stack, name)) == 2)
    assert certlc(["--settings", settings, "failed", "remove", *unreadable]) == 0
    assert capsys.readouterr().out.count("removed: ") == 3
    assert certlc(["--settings", settings, "failed", "list", "--json"]) == 0
    assert not {e["id"] for e in json.loads(capsys.readouterr().out)} & set(unreadable)


def test_a_certificate_with_too_many_tags_fails_before_a_version_is_started(stack, alerts):
    """Key Vault takes 15 tags; certlc adds 3 of its own: 13 of the operator's cannot be renewed as they are."""
    name = unique("tags")
    tags = {f"team{n:02}": "x" for n in range(13)} | {"certlc-renew-before-days": "25"}
    seed(stack, name, days_left=20, tags=tags)
    drain_until(stack, lambda: any(r["event"] == "failed" for r in audit(stack, name)))
    failed = [r for r in audit(stack, name) if r["event"] == "failed"]
    assert [r["reason"] for r in failed] == ["too_many_tags"]
    assert "remove 2 of" in failed[0]["detail"]
    assert not any(r["event"] in ("csr_created", "submitted") for r in audit(stack, name))
    assert len(versions(stack, name)) == 1 and no_pending(stack, name)
    assert any(a["kind"] == "renewal_failed" for a in alerts_for(alerts, name))


def test_a_message_nobody_can_act_on_is_refused_at_the_door_with_one_notice_an_hour(stack, alerts):
    """A correlation id of 300 characters would have been refused by Key Vault at the merge (tag values take 256),
    after the CA signed: it is refused when read, before any effect, and its cause is announced once."""
    from renewal import handlers
    from renewal.runtime import build_runtime

    def notices() -> list[dict]:
        bodies = [r.body for r in alerts.received() if isinstance(r.body, dict)]
        return [body for body in bodies if body.get("kind") == "message_rejected"]

    handlers.reset_runtime()  # a runtime whose hour of notices has not begun
    before = len(notices())
    name = unique("door")
    old = seed(stack, name, days_left=400, lifetime_days=500, tags={"certlc-renew-before-days": "450"})
    for filler in "xy":
        request = RenewalRequest("kv1", name, "manual", version=old.properties.version, correlation_id=filler * 300)
        deliver(stack, request.to_json())
    assert not any(r["event"] in ("csr_created", "submitted") for r in audit(stack, name))
    assert len(versions(stack, name)) == 1
    refused = [e for e in build_runtime(stack.settings).failed.list() if name in e.body]
    assert [e.reason for e in refused] == ["invalid_request", "invalid_request"]
    assert "'correlation_id' is 300 characters long, over 64" in refused[0].message
    (notice,) = notices()[before:]  # two messages, one cause: one notice
    assert notice["reason_code"] == "invalid_request" and notice["sample"].startswith('{"attempt":1,"correlation_id"')
