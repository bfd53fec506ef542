"""`certlc local up/add/down` as a user runs them: separate processes, real servers, any folder."""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from localazure.ports import poll_until, port_open
from localazure.seeding import SAMPLES

from tests.anywhere import certlc_in
from tests.cli import run_certlc

REPO = Path(__file__).resolve().parents[2]
NOT_RUNNING = "certlc: the local stack is not running: run certlc local up"


@pytest.fixture
def stack_dir(tmp_path: Path, azurite) -> Path:  # azurite: installs it (or fails loudly in CI)
    return tmp_path / "stack"


@contextlib.contextmanager
def empty_stack(stack_dir: Path, elsewhere: Path) -> Iterator[dict[str, Any]]:
    """`certlc local up --empty` from ``elsewhere``, its JSON answer, and `certlc local down` afterwards."""
    up = certlc_in(elsewhere, "local", "up", "--empty", "--dir", str(stack_dir), "--json")
    try:
        assert up.returncode == 0, up.stderr
        yield json.loads(up.stdout)
    finally:
        certlc_in(elsewhere, "local", "down", "--dir", str(stack_dir))


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working folder outside the repository."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def outlooks(info: dict, vault: str = "kv1") -> dict[str, object]:
    """Each certificate in the stack's vault and what certlc's outlook says of it, read through certlc's adapter."""
    from localazure.emulators.keyvault.control import EmulatorControl
    from localazure.stack import certificate_client, emulated_now

    from renewal.canary import CanarySettings
    from renewal.decide import WindowSettings, facts_of, plan
    from renewal.keyvault import KeyVault
    from renewal.vaults import Vault

    url = info["keyvault_vaults"][vault]
    client = certificate_client(url, info["keyvault_token"], info["ca_bundle"])
    kv = KeyVault(client, Vault(vault, url))
    now = emulated_now(EmulatorControl(info["keyvault_admin_url"], info["ca_bundle"]))
    names = [p.name for p in client.list_properties_of_certificates()]
    return {name: plan(facts_of(kv.current(name), CanarySettings()), now, WindowSettings()) for name in names}


def test_local_up_prints_endpoints_and_down_stops_it(stack_dir):
    up = run_certlc("local", "up", "--dir", str(stack_dir), "--json")
    try:
        assert up.returncode == 0, up.stderr
        info = json.loads(up.stdout)
        for key in (
            "keyvault_url",
            "keyvault_admin_url",
            "ca_bundle",
            "queue_connection_string",
            "queue_name",
            "eventgrid_url",
            "logs_endpoint",
            "settings_file",
            "pid",
        ):
            assert info[key], key
        settings = json.loads(Path(info["settings_file"]).read_text())["Values"]
        sample = json.loads((REPO / "local.settings.sample.json").read_text())["Values"]
        assert set(settings) <= set(sample), f"local.settings.sample.json lacks {set(settings) - set(sample)}"

        status = run_certlc("--settings", info["settings_file"], "status", "-o", "json")
        assert status.returncode == 0, status.stderr
        assert {r["CertName"] for r in json.loads(status.stdout)["certificates"]} == {s.name for s in SAMPLES}

        again = run_certlc("local", "up", "--dir", str(stack_dir))  # idempotent: says so, changes nothing
        assert again.returncode == 0, again.stderr
        assert f"already running (pid {info['pid']})" in again.stdout
    finally:
        down = run_certlc("local", "down", "--dir", str(stack_dir))
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout
    assert not (stack_dir / "stack.json").exists()
    with pytest.raises(ProcessLookupError):
        os.kill(info["pid"], 0)
    after = run_certlc("--settings", info["settings_file"], "failed", "list", timeout=30)  # its ports are dead now
    assert after.returncode == 1, after.stderr
    assert after.stderr.strip() == NOT_RUNNING


def test_local_up_seeds_one_certificate_for_each_renewer_and_prints_the_vault(stack_dir, elsewhere):
    up = certlc_in(elsewhere, "local", "up", "--dir", str(stack_dir))
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        info = json.loads((stack_dir / "stack.json").read_text())
        assert f"vault kv1: {info['keyvault_vaults']['kv1']}" in up.stdout
        assert f"seeded: {', '.join(s.name for s in SAMPLES)}" in up.stdout
        assert f"--settings {info['settings_file']} status" in up.stdout  # the next commands, for this folder
        assert f"local add NAME --days 10 --dir {stack_dir}" in up.stdout
        seen = outlooks(info)
        assert {name: o.renewed_by for name, o in seen.items()} == {s.name: s.renewed_by for s in SAMPLES}
        assert {o.renewed_by for o in seen.values()} == {"certlc", "keyvault", "opted_out", "nobody"}
    finally:
        certlc_in(elsewhere, "local", "down", "--dir", str(stack_dir))
    assert list(elsewhere.iterdir()) == []

    # Started again on the same folder, the vault keeps its certificates and none is seeded twice.
    again = certlc_in(elsewhere, "local", "up", "--dir", str(stack_dir), "--json")
    try:
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["seeded"] == []
        assert set(outlooks(json.loads(again.stdout))) == {s.name for s in SAMPLES}
    finally:
        certlc_in(elsewhere, "local", "down", "--dir", str(stack_dir))


def test_local_up_empty_seeds_nothing(stack_dir, elsewhere):
    with empty_stack(stack_dir, elsewhere) as info:
        assert info["seeded"] == [] and info["already_running"] is False
        assert outlooks(info) == {}


def test_local_add_puts_a_certificate_certlc_sees_and_refuses_in_one_line(stack_dir, elsewhere):
    with empty_stack(stack_dir, elsewhere) as info:
        added = certlc_in(
            elsewhere, "local", "add", "old-web", "--days", "-3", "--tag", "owner=web", "--dir", str(stack_dir)
        )
        assert added.returncode == 0, added.stderr
        assert added.stdout.startswith("added old-web to vault kv1, expiring ") and "due now" in added.stdout
        selfie = certlc_in(
            elsewhere, "local", "add", "self-one", "--days", "40", "--issuer", "Self", "--dir", str(stack_dir)
        )
        assert selfie.returncode == 0, selfie.stderr
        assert {n: (o.renewed_by, o.reason) for n, o in outlooks(info).items()}["self-one"] == (
            "keyvault",
            "keyvault_auto_renew",
        )

        def renewed() -> bool:  # due now: the stack's functions renew it within seconds of its expiry event
            seen = outlooks(info)["old-web"]
            return (seen.renewed_by, seen.reason) == ("certlc", "scheduled")

        poll_until(renewed, timeout=60, interval=0.5, what="old-web renewed by the stack")

        status = certlc_in(elsewhere, "--settings", info["settings_file"], "status", "old-web", "-o", "json")
        assert status.returncode == 0, status.stderr
        assert "old-web" in status.stdout

        for args, message in (
            (("old-web", "--days", "5"), "vault kv1 already has a certificate old-web: pick another name"),
            (("bad_name", "--days", "5"), "'bad_name' is not a Key Vault certificate name"),
            (("x", "--days", "5", "--vault", "kv9"), "vault 'kv9' is not one of the local stack's vaults: kv1"),
            (("x", "--days", "0", "--issuer", "Self"), "--issuer Self: Key Vault issues it now"),
            (("x", "--days", "5", "--tag", "owner"), "--tag 'owner' is not NAME=VALUE"),
        ):
            refused = certlc_in(elsewhere, "local", "add", *args, "--dir", str(stack_dir))
            assert refused.returncode == 2, (args, refused.stdout, refused.stderr)
            assert refused.stderr.startswith(f"certlc: {message}") and refused.stderr.count("\n") == 1, refused.stderr
    stopped = certlc_in(elsewhere, "local", "add", "late", "--days", "5", "--dir", str(stack_dir))
    assert (stopped.returncode, stopped.stderr.strip()) == (1, NOT_RUNNING)


def test_a_relative_folder_is_the_callers_and_nothing_lands_in_the_repository(azurite, elsewhere):
    """Started from outside the repository with a relative --dir, the stack lives there (it used to start in the
    repository while the caller waited for it in its own folder until the deadline)."""
    before = set(REPO.iterdir())
    up = certlc_in(elsewhere, "local", "up", "--empty", "--dir", "here", "--json", timeout=60)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert Path(json.loads(up.stdout)["settings_file"]) == elsewhere / "here" / "local.settings.json"
    finally:
        down = certlc_in(elsewhere, "local", "down", "--dir", "here")
    assert down.returncode == 0 and "stopped" in down.stdout, down.stderr
    assert not (REPO / "here").exists() and not (REPO / "stack.log").exists()
    assert set(REPO.iterdir()) - before <= {REPO / ".local"}  # other runs may create the default state folder


def test_commands_from_any_folder_find_the_default_stack_and_say_when_it_is_down(tmp_path, azurite, elsewhere):
    """No --settings and no ./local.settings.json: the stack's own settings, found from its fixed folder."""
    default = {"CERTLC_STACK_DIR": str(tmp_path / "default-stack")}
    up = certlc_in(elsewhere, "local", "up", env=default)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "--settings" not in up.stdout and "--dir" not in up.stdout  # the plain commands work
        status = certlc_in(elsewhere, "status", "-o", "json", env=default)
        assert status.returncode == 0, status.stderr
        assert {r["CertName"] for r in json.loads(status.stdout)["certificates"]} == {s.name for s in SAMPLES}
        added = certlc_in(elsewhere, "local", "add", "more", "--days", "9", env=default)
        assert added.returncode == 0, added.stderr
    finally:
        down = certlc_in(elsewhere, "local", "down", env=default)
    assert down.returncode == 0, down.stderr
    for args in (["status"], ["sweep"], ["failed", "list"], ["local", "add", "late", "--days", "5"]):
        after = certlc_in(elsewhere, *args, env=default, timeout=30)
        assert (after.returncode, after.stderr.strip()) == (1, NOT_RUNNING), args
    assert list(elsewhere.iterdir()) == []


def stack_ports(info: dict[str, Any]) -> set[int]:
    """Every loopback port the stack's endpoints name."""
    return {int(port) for port in re.findall(r"//127\.0\.0\.1:(\d+)", json.dumps(info))}


def serve_pids(stack_dir: Path) -> set[int]:
    """The `certlc local serve` processes running a stack from ``stack_dir``."""
    pids = set()
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in argv and os.fsencode(stack_dir) in argv:
            pids.add(int(proc.name))
    return pids


def test_two_local_ups_at_once_on_one_folder_start_one_stack(stack_dir, elsewhere):
    """The second says, in one line, that a stack is starting there (exit 2: a clash to fix, not a failed service)."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "certlc", "local", "up", "--empty", "--dir", str(stack_dir)]
    ups = [subprocess.Popen(command, cwd=elsewhere, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    ups.append(subprocess.Popen(command, cwd=elsewhere, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        answers = sorted((up.wait(timeout=120), *up.communicate()) for up in ups)
        running = serve_pids(stack_dir)
    finally:
        certlc_in(elsewhere, "local", "down", "--dir", str(stack_dir))
        for pid in serve_pids(stack_dir):  # a second stack the old code started: stop it too
            os.kill(pid, 15)
    (first, out, _), (second, _, err) = answers
    assert first == 0 and "the local stack is running" in out, answers
    assert second == 2 and err.count("\n") == 1, answers
    assert err.startswith(f"certlc: a local stack is starting or running in {stack_dir}"), err
    assert len(running) == 1, running


def test_local_up_right_after_local_down_starts_a_new_stack(stack_dir, elsewhere):
    """`local down` returns once the stack's process is gone and its ports are closed, so nothing is left to say
    "already running" or to hold a port."""
    with empty_stack(stack_dir, elsewhere) as info:
        pid = info["pid"]
    assert not serve_pids(stack_dir)
    assert [port for port in stack_ports(info) if port_open(port)] == []
    again = certlc_in(elsewhere, "local", "up", "--empty", "--dir", str(stack_dir), "--json")
    try:
        assert again.returncode == 0, again.stdout + again.stderr
        restarted = json.loads(again.stdout)
        assert restarted["already_running"] is False and restarted["pid"] != pid
    finally:
        down = certlc_in(elsewhere, "local", "down", "--dir", str(stack_dir))
    assert down.returncode == 0, down.stderr
    assert not serve_pids(stack_dir)


def test_local_down_while_the_stack_is_starting_stops_it(stack_dir, elsewhere):
    """Before it has written stack.json, the stack is found by its lock file: `down` used to say none was running
    and return, leaving it to come up behind the user's back."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "certlc", "local", "up", "--empty", "--dir", str(stack_dir)]
    starting = subprocess.Popen(command, cwd=elsewhere, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        poll_until(lambda: serve_pids(stack_dir), timeout=60, what="the stack's process")
        assert not (stack_dir / "stack.json").exists()  # still starting
        down = certlc_in(elsewhere, "local", "down", "--dir", str(stack_dir))
        assert down.returncode == 0, down.stdout + down.stderr
        assert "local stack stopped" in down.stdout
        assert not serve_pids(stack_dir)
        starting.wait(timeout=60)
    finally:
        starting.kill()
        for pid in serve_pids(stack_dir):  # the stack the old code left running
            os.kill(pid, 15)


def test_a_mistyped_local_ca_folder_is_one_line_and_exit_2_and_no_ca_is_made(stack_dir, elsewhere, tmp_path):
    """It used to make a new CA there, and renewals chained to a CA nothing trusts."""
    with empty_stack(stack_dir, elsewhere) as info:
        body = json.loads(Path(info["settings_file"]).read_text())
        typo = stack_dir / "ca-typo"
        body["Values"]["CERTLC_LOCAL_CA_DIR"] = str(typo)
        settings = tmp_path / "typo.settings.json"
        settings.write_text(json.dumps(body))
        renew = certlc_in(elsewhere, "--settings", str(settings), "renew", "--all", "--dry-run")
    assert renew.returncode == 2, renew.stdout + renew.stderr
    assert renew.stderr.count("\n") == 1 and "point CERTLC_LOCAL_CA_DIR at the local CA's folder" in renew.stderr
    assert not typo.exists()
