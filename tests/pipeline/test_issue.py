"""`certlc issue` on the local stack, run as a user runs it (a child process): a new certificate created in Key Vault
with issuer Unknown and certlc's tags, signed by the local CA and merged once, through the renewal pipeline's parts
(the lock, one CA request, the audit trail with trigger `issue`); also under two processes at once, after an
interrupted issuance, and when the CA leaves it waiting for approval (the functions finish it from the queue)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from cryptography import x509

from renewal import tags as cert_tags
from renewal.ca.local import LocalCA
from tests.environment import without_certlc_settings
from tests.pipeline.helpers import audit, client, drain_until, unique, versions
from tests.pipeline.test_operator_audit import REPO, certlc

pytestmark = pytest.mark.timeout(180)


def issued(stack: Any, name: str) -> tuple[Any, x509.Certificate]:
    got = client(stack).get_certificate(name)
    return got, x509.load_der_x509_certificate(bytes(got.cer))


def local_ca(stack: Any) -> LocalCA:
    return LocalCA(Path(stack.settings["CERTLC_LOCAL_CA_DIR"]))


def dns_names(certificate: x509.Certificate) -> list[str]:
    return certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )


def submitted(stack: Any, name: str) -> int:
    return sum(r["event"] == "submitted" for r in audit(stack, name))


def test_issue_creates_signs_and_merges_a_new_certificate_that_certlc_then_renews(stack):
    name = unique("issue")
    looked = certlc(
        stack, "issue", name, "--dns", f"{name}.example.com", "--vault", "kv1", "--ca", "local", "--dry-run"
    )
    assert looked.returncode == 0 and "would_issue" in looked.stdout, looked.stdout + looked.stderr
    with pytest.raises(ResourceNotFoundError):
        client(stack).get_certificate(name)  # a dry run creates nothing

    done = certlc(
        stack, "issue", name, "--dns", f"{name}.example.com,www.{name}.example.com", "--vault", "kv1", "--ca", "local",
        "--profile", "server", "--key", "EC-P256", "-o", "json",
    )  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    body = json.loads(done.stdout)
    assert body["status"] == "issued"
    cert, leaf = issued(stack, name)
    assert cert.properties.version == body["version"] and len(versions(stack, name)) == 1
    assert leaf.issuer == local_ca(stack).certificate.subject
    assert dns_names(leaf) == [f"{name}.example.com", f"www.{name}.example.com"]
    assert leaf.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    tags = cert.properties.tags or {}
    assert (cert_tags.tag(tags, cert_tags.CA), cert_tags.tag(tags, cert_tags.PROFILE)) == ("local", "server")
    assert client(stack).get_certificate_policy(name).issuer_name == "Unknown"
    events = [r["event"] for r in audit(stack, name)]
    assert events[:2] == ["operator_action", "renewal_initiated"] and "merged" in events
    assert {r["trigger"] for r in audit(stack, name) if r["event"] != "operator_action"} == {"issue"}
    assert submitted(stack, name) == 1
    status = json.loads(certlc(stack, "status", name, "--vault", "kv1", "-o", "json").stdout)
    assert (status["renewed_by"], status["ca"], status["profile"]) == ("certlc", "local", "server")

    again = certlc(
        stack, "issue", name, "--dns", f"{name}.example.com", "--vault", "kv1", "--ca", "local", "--profile", "server"
    )
    assert again.returncode == 1 and "exists" in again.stdout  # another certificate under that name: never replaced
    assert len(versions(stack, name)) == 1


def test_two_issues_at_once_make_one_certificate_and_one_ca_request(stack):
    name = unique("issue-twice")
    command = [
        sys.executable, "-m", "certlc", "--settings", str(stack.settings_path), "issue", name,
        "--dns", f"{name}.example.com", "--vault", "kv1", "--ca", "local", "--profile", "server",
    ]  # fmt: skip
    runs = [
        subprocess.Popen(
            command, cwd=REPO, env=without_certlc_settings(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=120) for run in runs]

    codes = sorted(run.returncode for run in runs)
    assert codes in ([0, 0], [0, 1]), outputs  # the second finds it issued (by the first, identical) or exists
    assert len(versions(stack, name)) == 1
    assert submitted(stack, name) == 1


def test_an_interrupted_issuance_is_finished_with_its_own_csr(stack):
    """The create ran and the process died before it asked the CA: the pending operation's CSR is taken over."""
    from azure.keyvault.certificates import CertificatePolicy

    name = unique("issue-resumed")
    policy = CertificatePolicy(
        issuer_name="Unknown", subject=f"CN={name}.example.com", san_dns_names=[f"{name}.example.com"]
    )
    operation = client(stack).begin_create_certificate(name, policy, _polling_interval=0.05)
    operation.wait(1)  # the create's answer is in: its pending operation waits for a merge

    done = certlc(
        stack, "issue", name, "--dns", f"{name}.example.com", "--vault", "kv1", "--ca", "local", "--profile", "server"
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert len(versions(stack, name)) == 1
    events = [r["event"] for r in audit(stack, name)]
    assert "csr_reused" in events and "csr_created" not in events


def test_an_issuance_the_ca_leaves_for_approval_is_finished_by_the_functions(stack):
    name = unique("issue-approval")
    waiting = certlc(
        stack, "issue", name, "--dns", f"{name}.example.com", "--vault", "kv1", "--ca", "local", "--profile", "approval"
    )
    assert waiting.returncode == 1 and "pending" in waiting.stdout, waiting.stdout + waiting.stderr
    (pending,) = [r for r in audit(stack, name) if r["event"] == "pending"]

    local_ca(stack).approve(pending["ca_request_id"])  # the CA manager approves it
    drain_until(stack, lambda: any(r["event"] == "merged" for r in audit(stack, name)), names=(name,))

    cert, leaf = issued(stack, name)
    assert leaf.issuer == local_ca(stack).certificate.subject
    assert cert_tags.tag(cert.properties.tags or {}, cert_tags.PROFILE) == "approval"
    assert len(versions(stack, name)) == 1 and submitted(stack, name) == 1
