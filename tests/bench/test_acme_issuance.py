"""The ACME issuance benchmark's harness: a small real run (2 certificates per client) on pebble with real http-01.

The figures are not judged here (that is the benchmark's job); the shape of its JSON is, and every chain
each client got must verify against pebble's root with openssl, a checker independent of the harness.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from localazure.pki import csr_public_key, make_csr

from bench import acme_issuance
from localazure import tools
from tests.fixtures.servers import unavailable

pytestmark = pytest.mark.pebble
COUNT = 2
RUN_DEADLINE = 180  # the first test pays for the run: about 3 s per certbot issuance, 6 s per lego one


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    for tool in (tools.PEBBLE, tools.CERTBOT, tools.LEGO):
        try:
            tool.ensure()
        except tools.ToolMissing as exc:
            unavailable(tool.name, str(exc))
    workdir = tmp_path_factory.mktemp("acme-issuance")
    return acme_issuance.measure(COUNT, workdir), workdir


def openssl_verify(root: Path, chain: Path, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "verify", "-CAfile", str(root), "-untrusted", str(chain), "-verify_hostname", name, str(chain)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


@pytest.mark.timeout(RUN_DEADLINE)
def test_the_result_has_each_clients_figures_and_the_bars_judged_from_them(run) -> None:
    result, _ = run
    assert json.loads(json.dumps(result)) == result
    assert result["count"] == COUNT
    assert result["machine"]["cores"] == os.cpu_count()
    assert set(result["clients"]) == {"certlc", "certbot", "lego"}
    for name, client in result["clients"].items():
        assert client["count"] == COUNT and len(client["runs_seconds"]) == COUNT, name
        assert 0 < client["min_seconds"] <= client["median_seconds"] <= client["p90_seconds"] <= client["max_seconds"]
        assert client["first_issuance_with_registration_seconds"] > 0
        assert client["version"].startswith(name), client["version"]
    for name in ("certbot", "lego"):  # one process per certificate: start-up reported apart
        peer = result["clients"][name]
        assert 0 < peer["startup_median_seconds"] < peer["median_seconds"]
        assert peer["without_startup"]["median_seconds"] < peer["median_seconds"]
    assert "without_startup" not in result["clients"]["certlc"]  # in-process: nothing to leave out

    certlc = result["clients"]["certlc"]["median_seconds"]
    lego = result["clients"]["lego"]["median_seconds"]
    assert result["bars"] == acme_issuance.bars(certlc, lego)
    assert result["bars"]["certlc_median"]["met"] is (certlc <= 0.1)
    assert result["bars"]["certlc_vs_lego"]["met"] is (certlc * 5 <= lego)


@pytest.mark.timeout(RUN_DEADLINE)
def test_every_clients_chains_verify_against_pebbles_root_for_their_names(run) -> None:
    _, workdir = run
    chains = workdir / "chains"
    root = chains / "pebble-root.pem"
    for client in ("certlc", "certbot", "lego"):
        files = sorted((chains / client).glob("*.pem"))
        assert [f.name for f in files] == [f"{client}-{n}.certlc.test.pem" for n in range(COUNT + 1)]
        for chain in files:
            name = chain.name.removesuffix(".pem")
            done = openssl_verify(root, chain, name)
            assert done.returncode == 0, f"{chain}: {done.stdout}{done.stderr}"
    # openssl really judges: another client's name, or a CA that is not pebble's root, is refused
    first = chains / "certlc" / "certlc-0.certlc.test.pem"
    assert openssl_verify(root, first, "lego-0.certlc.test").returncode != 0
    assert openssl_verify(workdir / "pebble" / "tls" / "ca.pem", first, "certlc-0.certlc.test").returncode != 0


@pytest.mark.timeout(RUN_DEADLINE)
def test_the_harness_refuses_a_chain_for_another_key_name_or_root(run) -> None:
    _, workdir = run
    chains = workdir / "chains"
    root = (chains / "pebble-root.pem").read_text()
    chain = (chains / "certbot" / "certbot-1.certlc.test.pem").read_text()
    other_key = csr_public_key(make_csr("certbot-1.certlc.test"))
    leaf_key = _leaf_key(chain)

    assert acme_issuance.chain_problem(chain, root, "certbot-1.certlc.test", leaf_key) is None
    assert "CSR's key" in acme_issuance.chain_problem(chain, root, "certbot-1.certlc.test", other_key)
    assert "not lego-1.certlc.test" in acme_issuance.chain_problem(chain, root, "lego-1.certlc.test", leaf_key)
    not_pebbles_root = (workdir / "pebble" / "tls" / "ca.pem").read_text()  # the CA of pebble's own TLS certificate
    assert "pebble's root" in acme_issuance.chain_problem(chain, not_pebbles_root, "certbot-1.certlc.test", leaf_key)


def test_bars_are_judged_on_the_medians() -> None:
    assert {name: bar["met"] for name, bar in acme_issuance.bars(0.1, 0.5).items()} == {
        "certlc_median": True,
        "certlc_vs_lego": True,
    }
    assert {name: bar["met"] for name, bar in acme_issuance.bars(0.101, 0.6).items()} == {
        "certlc_median": False,
        "certlc_vs_lego": True,
    }
    assert {name: bar["met"] for name, bar in acme_issuance.bars(0.05, 0.249).items()} == {
        "certlc_median": True,
        "certlc_vs_lego": False,
    }
    assert acme_issuance.bars(0.05, 0.6)["certlc_vs_lego"]["lego_over_certlc"] == 12.0


def _leaf_key(chain_pem: str) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    leaf = x509.load_pem_x509_certificates(chain_pem.encode())[0]
    return leaf.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
