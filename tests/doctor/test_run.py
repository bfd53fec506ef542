"""The parts of ``certlc doctor`` that decide, without a server: the exit code, the deadline guard, the lines."""

from __future__ import annotations

import threading
import time

from certlc.doctor.report import exit_code, table
from certlc.doctor.result import failed, passed
from certlc.doctor.run import Check, run_checks


def test_exit_code_is_0_only_when_every_check_passed():
    assert exit_code([passed("a", "fine"), passed("b", "fine")]) == 0
    assert exit_code([passed("a", "fine"), failed("b", "broken", "mend it")]) == 1
    assert exit_code([]) == 1  # nothing checked is not a pass


def test_a_failing_line_carries_its_fix_and_a_passing_one_none():
    lines = table([passed("vault kv1", "fine"), failed("queue q", "gone", "make it")]).splitlines()

    assert lines == ["ok    vault kv1  fine", "FAIL  queue q    gone  fix: make it", "1 ok, 1 failed"]


def test_a_check_that_overruns_the_deadline_is_reported_not_waited_for():
    release = threading.Event()

    def stuck():
        release.wait(30)
        return passed("stuck", "late")

    started = time.monotonic()
    results = run_checks([Check("stuck", stuck), Check("quick", lambda: passed("quick", "fine"))], 0.5)
    release.set()

    assert time.monotonic() - started < 5
    assert [(r.name, r.ok, r.detail) for r in results] == [
        ("stuck", False, "no answer within 0.5 s"),
        ("quick", True, "fine"),
    ]


def test_a_check_that_raises_becomes_a_failing_line():
    def broken():
        raise KeyError("surprise")

    [result] = run_checks([Check("ca local", broken)], 5)

    assert not result.ok
    assert result.detail == "the check itself failed: KeyError: 'surprise'"
    assert result.fix == "report this bug"


def test_vault_answers_the_emulator_cannot_give_still_get_their_own_fix():
    """Access policies and the vault firewall answer 403 too, with their own inner codes."""
    from certlc.doctor.result import Answer
    from certlc.doctor.vaults import VaultObservation, judge_vault
    from renewal.vaults import Vault

    vault = Vault("kv1", "https://kv1.vault.azure.net")

    def fix(code):
        return judge_vault(VaultObservation(vault, Answer(status=403, code=code, message="no"))).fix

    assert fix("Forbidden/AccessDenied").startswith("the vault uses access policies")
    assert fix("Forbidden/ForbiddenByFirewall").startswith("allow the app's network")
    assert fix("Forbidden/ForbiddenByRbac").startswith("assign the app's identity the 'Key Vault Certificates Officer'")


def test_the_lock_container_check_follows_the_setting_and_defaults_to_the_runtime_default():
    from certlc.doctor.run import plan

    def lock_checks(env):
        return [c.name for c in plan({"CERTLC_VAULTS": "kv1", **env}, 1) if c.name.startswith("lock container")]

    assert lock_checks({}) == ["lock container certlc-locks"]
    assert lock_checks({"CERTLC_LOCK_CONTAINER": "renewal-locks"}) == ["lock container renewal-locks"]


def test_lock_container_answers_the_emulator_cannot_give_still_get_their_own_fix():
    """Azurite checks no roles: the 403 of a missing role assignment is judged here."""
    from certlc.doctor.locks import judge_lock_container
    from certlc.doctor.result import Answer

    url = "https://certlcx.blob.core.windows.net/certlc-locks"
    refused = judge_lock_container(
        "certlc-locks", Answer(status=403, code="AuthorizationPermissionMismatch", message="no"), url
    )
    missing = judge_lock_container("certlc-locks", Answer(status=404, code="ContainerNotFound", message="gone"), url)

    assert not refused.ok and refused.detail == "HTTP 403 AuthorizationPermissionMismatch: no"
    assert refused.fix.startswith(
        "assign the app's identity 'Storage Blob Data Contributor' on container certlc-locks (infra/main.json does)"
    )
    assert missing.detail == "does not exist (HTTP 404 ContainerNotFound: gone)"
    assert missing.fix.startswith("deploy infra/main.json (it creates certlc-locks), or: az storage container create")
    assert judge_lock_container("certlc-locks", Answer(status=200), url).ok


def test_no_blob_connection_at_all_is_a_configuration_line():
    from certlc.doctor.locks import check_lock_container

    result = check_lock_container({"CERTLC_QUEUE_CONNECTION": "Locks"}, "certlc-locks", 1)

    assert not result.ok
    assert "set Locks (connection string) or Locks__blobServiceUri (identity-based)" in result.detail
    assert result.fix.startswith("set Locks (a connection string with a BlobEndpoint) or Locks__blobServiceUri")
