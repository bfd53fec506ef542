"""`certlc renew NAME --policy FILE` on the local stack, run as a user runs it (a child process): a change of SANs and
key size renews with them and stays in the policy; a change the local CA's profile cannot issue, a bad file and a dry
run leave the policy and the versions as they were."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from renewal.x509info import alt_names, key_spec, load_certificate
from tests.pipeline.helpers import audit, client, seed, unique, versions
from tests.pipeline.test_operator_audit import certlc

pytestmark = pytest.mark.timeout(180)


def change_file(tmp_path: Path, body: object) -> str:
    path = tmp_path / "change.json"
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    return str(path)


def as_it_is(stack: Any, name: str) -> tuple[Any, ...]:
    """The policy's fields a change renewal may touch, and the versions that hold a certificate."""
    policy = client(stack).get_certificate_policy(name)
    fields = (policy.subject, policy.san_dns_names, policy.key_type, policy.key_size, policy.validity_in_months)
    return fields, sorted(v.version for v in versions(stack, name))


def test_a_change_of_sans_and_key_size_renews_with_them(stack, tmp_path):
    name = unique("pc-sans")
    seed(stack, name, days_left=400, lifetime_days=500)  # not due: the change renews it now
    before = client(stack).get_certificate(name)
    wanted = [f"{name}.example.com", f"www.{name}.example.com"]
    done = certlc(
        stack, "renew", name, "--vault", "kv1", "--policy", change_file(tmp_path, {"dns": wanted, "key": "RSA-3072"})
    )
    assert done.returncode == 0 and f"kv1/{name}: renewed" in done.stdout, (done.stdout, done.stderr)
    assert "key RSA-2048 -> RSA-3072" in done.stdout

    after = client(stack).get_certificate(name)
    assert after.properties.version != before.properties.version
    issued = load_certificate(bytes(after.cer))
    assert alt_names(issued.extensions).dns == set(wanted)
    assert key_spec(issued.public_key()).size == 3072
    policy = client(stack).get_certificate_policy(name)
    assert (sorted(policy.san_dns_names), policy.key_size, policy.issuer_name) == (sorted(wanted), 3072, "Unknown")

    (record,) = [r for r in audit(stack, name) if r["event"] == "operator_action"]
    assert record["action"] == "renew_policy"
    assert record["old"] == {"dns": [f"{name}.example.com"], "key_type": "RSA-2048"}
    assert record["changed"] == {"dns": wanted, "key_type": "RSA-3072"}


def test_json_output_says_what_changed(stack, tmp_path):
    name = unique("pc-json")
    seed(stack, name, days_left=400, lifetime_days=500)
    done = certlc(
        stack, "-o", "json", "renew", name, "--vault", "kv1", "--policy", change_file(tmp_path, {"validity_months": 3})
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    body = json.loads(done.stdout)
    assert (body["status"], body["policy_updated"]) == ("renewed", True)
    assert body["policy_change"] == {"validity_months": {"old": 12, "new": 3}}
    assert client(stack).get_certificate_policy(name).validity_in_months == 3


def test_a_validity_beyond_the_local_cas_profile_changes_nothing(stack, tmp_path):
    name = unique("pc-refused")
    seed(stack, name, days_left=400, lifetime_days=500)
    was = as_it_is(stack, name)
    change = change_file(tmp_path, {"validity_months": 24, "key": "RSA-4096"})
    done = certlc(stack, "renew", name, "--vault", "kv1", "--policy", change)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "failed (policy_refused)" in done.stdout and "issues 90 days" in done.stdout
    assert "its policy was not changed" in done.stdout
    assert as_it_is(stack, name) == was
    assert [r for r in audit(stack, name) if r["event"] == "operator_action"] == []


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"dns": []}, '"dns" is empty'),
        ({"dns": ["not a name"]}, "'not a name', which is not a DNS name"),
        ({"key": "RSA-1024"}, "RSA-2048, RSA-3072, RSA-4096, EC-P256, EC-P384"),
        ({"sans": ["a.example.com"]}, "unknown field 'sans'"),
        ({"x509_props": {}, "key_props": {}}, "Key Vault's policy JSON"),
        ("{not json", "not JSON"),
    ],
)
def test_a_bad_file_exits_2_with_one_line(stack, tmp_path, body, says):
    name = unique("pc-bad")
    seed(stack, name, days_left=400, lifetime_days=500)
    was = as_it_is(stack, name)
    done = certlc(stack, "renew", name, "--vault", "kv1", "--policy", change_file(tmp_path, body))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1 and says in done.stderr and "Traceback" not in done.stderr
    assert as_it_is(stack, name) == was


def test_policy_is_refused_with_all_or_compromise(stack, tmp_path):
    change = change_file(tmp_path, {"key": "RSA-3072"})
    assert certlc(stack, "renew", "--all", "--policy", change).returncode == 2
    assert certlc(stack, "renew", "x", "--compromise", "--policy", change).returncode == 2


def test_a_dry_run_says_what_would_change_and_changes_nothing(stack, tmp_path):
    name = unique("pc-dry")
    seed(stack, name, days_left=400, lifetime_days=500)
    was = as_it_is(stack, name)
    change = change_file(tmp_path, {"dns": [f"new-{name}.example.com"], "key": "EC-P256"})
    done = certlc(stack, "renew", name, "--vault", "kv1", "--policy", change, "--dry-run")
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "would change its policy" in done.stdout and "key RSA-2048 -> EC-P256" in done.stdout
    assert as_it_is(stack, name) == was
    assert audit(stack, name) == []
