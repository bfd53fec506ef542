"""`certlc renew --all --force` (a CA migration) on a stack of its own: every certificate certlc manages renewed once,
whatever its dates, even by two processes at once; `--queue` hands them to the stack's functions instead."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from localazure.ports import poll_until

from tests.anywhere import CERTLC, certlc_in
from tests.environment import without_certlc_settings
from tests.localazure.test_stack_cli import empty_stack

pytestmark = pytest.mark.timeout(300)
MANAGED = ("mig-a", "mig-b", "mig-c")


def versions(info: dict, name: str) -> int:
    from localazure.stack import certificate_client

    client = certificate_client(info["keyvault_vaults"]["kv1"], info["keyvault_token"], info["ca_bundle"])
    return sum(1 for v in client.list_properties_of_certificate_versions(name) if v.x509_thumbprint)


def test_renew_all_force_renews_each_managed_certificate_once_even_from_two_processes(tmp_path, azurite) -> None:
    stack_dir, elsewhere = tmp_path / "stack", tmp_path / "elsewhere"
    elsewhere.mkdir()
    with empty_stack(stack_dir, elsewhere) as info:
        settings = ["--settings", info["settings_file"]]
        for name in MANAGED:  # healthy: nothing but the operator's word renews them
            assert certlc_in(elsewhere, "local", "add", name, "--days", "300", "--dir", str(stack_dir)).returncode == 0
        add = ("local", "add", "mig-optout", "--days", "300", "--tag", "certlc-renew=false", "--dir", str(stack_dir))
        assert certlc_in(elsewhere, *add).returncode == 0
        assert (
            certlc_in(
                elsewhere, "local", "add", "mig-self", "--days", "40", "--issuer", "Self", "--dir", str(stack_dir)
            ).returncode
            == 0
        )

        dry = certlc_in(elsewhere, *settings, "renew", "--all", "--force", "--dry-run", "-o", "json")
        assert dry.returncode == 0, dry.stderr
        planned = {c["name"]: c["reason"] for c in json.loads(dry.stdout)["certificates"]}
        assert {n: planned[n] for n in MANAGED} == dict.fromkeys(MANAGED, "dry_run")
        assert planned["mig-optout"] == "opted_out" and planned["mig-self"] != "dry_run"
        assert all(versions(info, n) == 1 for n in MANAGED), "a dry run changes nothing"

        command = [str(CERTLC), *settings, "renew", "--all", "--force", "-o", "json"]
        runs = [
            subprocess.Popen(command, cwd=elsewhere, env=without_certlc_settings(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
            for _ in range(2)
        ]  # fmt: skip
        outputs = [run.communicate(timeout=240) for run in runs]
        assert [run.returncode for run in runs] == [0, 0], outputs
        assert {n: versions(info, n) for n in (*MANAGED, "mig-optout")} == {
            **dict.fromkeys(MANAGED, 2),
            "mig-optout": 1,
        }, "each managed certificate renewed once, the opted-out one left"
        said = [{c["name"]: c["status"] for c in json.loads(out)["certificates"]} for out, _ in outputs]
        for name in MANAGED:  # one process renewed it; the other found the version it saw replaced, or in flight
            assert sorted(s[name] for s in said).count("renewed") == 1, said

        queued = [certlc_in(elsewhere, *settings, "renew", "--all", "--force", "--queue") for _ in range(2)]
        assert [q.returncode for q in queued] == [0, 0], [q.stderr for q in queued]
        assert all(f"kv1/{n}: queued" in q.stdout for q in queued for n in MANAGED), queued[0].stdout

        audit_file = Path(json.loads(Path(info["settings_file"]).read_text())["Values"]["CERTLC_AUDIT_FILE"])

        def all_renewed_again() -> bool:
            return all(versions(info, n) == 3 for n in MANAGED)

        def seen() -> str:  # on a time-out: what the stack did with each queued request
            records = [json.loads(line) for line in audit_file.read_text().splitlines() if line.strip()]
            steps = [(r["name"], r["event"], r.get("reason"), r.get("delay_seconds")) for r in records]
            return f"the stack's functions renewing the queue: {[s for s in steps if s[0] in MANAGED][-24:]}"

        poll_until(all_renewed_again, timeout=180, interval=0.5, what=seen)

        def superseded() -> dict[str, int]:  # the duplicate of each queued request, once the stack has taken it
            records = [json.loads(line) for line in audit_file.read_text().splitlines() if line.strip()]
            ended = [r for r in records if r["event"] == "skipped" and r.get("reason") == "superseded"]
            return {n: sum(r["name"] == n for r in ended) for n in MANAGED}

        poll_until(lambda: all(superseded().values()), timeout=120, interval=0.5, what="the duplicates taken")
        assert {n: versions(info, n) for n in MANAGED} == dict.fromkeys(MANAGED, 3), "two queued runs, one renewal"
    assert not list(Path(elsewhere).iterdir())
