"""`certlc local up/add/down` as a user runs them: separate processes, real servers, any folder."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from localazure.ports import poll_until
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
