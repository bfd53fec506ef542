"""``certlc sync`` against the Key Vault emulator, real files and a real TLS server that reloads on SIGHUP."""

from __future__ import annotations

import json
import os
import queue
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certlc.sync.bundle import thumbprint
from certlc.sync.verify import Endpoint, served
from tests.environment import without_certlc_settings

REPO = Path(__file__).resolve().parents[2]


def leaf_thumbprint(path: Path) -> str:
    return thumbprint(x509.load_pem_x509_certificate(path.read_bytes()))


def served_by(site) -> str | None:
    return served(Endpoint("127.0.0.1", site.port)).thumbprint


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def installed(site) -> dict[Path, int]:
    """Every file in the folder with its mtime, to prove a round touched nothing."""
    return {p: p.stat().st_mtime_ns for p in site.folder.iterdir()}


def first_sync(site) -> x509.Certificate:
    code, out, _ = site.sync()
    assert code == 0, out
    site.start_server()
    return x509.load_pem_x509_certificate(site.cert.read_bytes())


def test_first_sync_writes_the_files_with_their_modes_and_the_server_serves_them(site, chain_ca, kv_client):
    code, out, err = site.sync("--json")

    assert code == 0, err
    report = json.loads(out)
    assert report["action"] == "updated" and report["name"] == site.name and report["vault"] == "kv1"
    leaf = x509.load_pem_x509_certificate(site.cert.read_bytes())
    in_vault = kv_client().get_certificate(site.name).properties
    assert (report["version"], report["thumbprint"]) == (in_vault.version, in_vault.x509_thumbprint.hex().upper())
    assert len(x509.load_pem_x509_certificates(site.cert.read_bytes())) == 1
    assert leaf.subject.rfc4514_string() == f"CN={site.name}.example.com"
    key = serialization.load_pem_private_key(site.key.read_bytes(), password=None)
    assert key.public_key() == leaf.public_key()
    assert site.key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert x509.load_pem_x509_certificates(site.chain.read_bytes()) == [chain_ca.issuer]  # no root
    assert x509.load_pem_x509_certificates(site.fullchain.read_bytes()) == [leaf, chain_ca.issuer]
    assert (mode(site.cert), mode(site.chain), mode(site.fullchain), mode(site.key)) == (0o644,) * 3 + (0o600,)
    assert sorted(p.name for p in site.folder.iterdir()) == ["cert.pem", "chain.pem", "fullchain.pem", "key.pem"]
    assert "PRIVATE KEY" not in out + err

    site.start_server()
    assert served_by(site) == leaf_thumbprint(site.cert)


def test_second_sync_is_up_to_date_and_touches_nothing(site):
    first_sync(site)
    before = installed(site)

    code, out, _ = site.sync("--reload", site.reload_command(), "--verify", f"127.0.0.1:{site.port}")

    assert code == 0
    assert "up to date" in out
    assert installed(site) == before
    assert site.reloads() == 0


def test_a_renewal_in_key_vault_is_written_reloaded_and_served(site):
    old = first_sync(site)
    new_version = site.renew()

    code, out, err = site.sync("--reload", site.reload_command(), "--verify", f"127.0.0.1:{site.port}", "--json")

    assert code == 0, err
    report = json.loads(out)
    assert (report["action"], report["version"]) == ("updated", new_version.properties.version)
    assert served_by(site) == leaf_thumbprint(site.cert) != thumbprint(old)
    assert x509.load_pem_x509_certificate(site.cert.with_name("cert.pem.previous").read_bytes()) == old
    assert mode(site.key.with_name("key.pem.previous")) == 0o600
    assert site.reloads() == 1


def test_a_failing_reload_rolls_back_and_the_old_certificate_is_served_again(site):
    old = first_sync(site)
    old_files = {p: p.read_bytes() for p in site.folder.iterdir()}
    site.renew()
    site.fail_marker.touch()

    code, out, _ = site.sync("--reload", site.reload_command(), "--verify", f"127.0.0.1:{site.port}", "--json")

    assert code == 1
    report = json.loads(out)
    assert report["action"] == "rolled_back"
    assert "exited with 1: config test failed" in report["reason"]
    assert {p: p.read_bytes() for p in old_files} == old_files
    assert (mode(site.cert), mode(site.key)) == (0o644, 0o600)
    assert served_by(site) == thumbprint(old)
    assert site.reloads() == 2  # the failed one and the one after the rollback


def test_a_server_that_never_serves_the_new_certificate_is_rolled_back(site):
    old = first_sync(site)
    old_cert = site.cert.read_bytes()
    site.renew()

    code, out, _ = site.sync(
        "--reload", f"{sys.executable} -c pass", "--verify", f"127.0.0.1:{site.port}", "--verify-timeout", "1"
    )

    assert code == 1
    assert "rolled back" in out and "did not serve certificate" in out
    assert site.cert.read_bytes() == old_cert
    assert served_by(site) == thumbprint(old)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--vault": "kv2"}, "vault 'kv2' is not in CERTLC_VAULTS"),
        ({"--name": "no-such-certificate"}, "certificate 'no-such-certificate' was not found in vault kv1"),
        ({"--cert": "missing-folder/cert.pem"}, "missing-folder does not exist"),
        ({"--cert": f"{__file__}/cert.pem"}, "test_sync.py is not a folder (needed for cert.pem)"),
        ({"--verify": "localhost"}, "is not host:port"),
        ({"--reload": "/nonexistent/reload-nginx"}, "--reload: '/nonexistent/reload-nginx' was not found"),
        ({"--reload": f"{__file__} --now"}, "test_sync.py' is not executable"),
    ],
)
def test_mistakes_exit_2_with_one_line(site, change, message):
    args = site.args()
    for option, value in change.items():
        if option in args:
            args[args.index(option) + 1] = value
        else:
            args += [option, value]
    site.capsys.readouterr()

    from certlc.cli import main

    code = main(args)

    err = site.capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and message in err, err
    assert not site.cert.exists()


def test_daemon_runs_rounds_until_sigterm(site, sync_env):
    env = without_certlc_settings()
    args = site.args("--daemon", "--interval", "0.2", "--jitter", "0.1", "--json")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "certlc", *args],
        env={**env, **sync_env, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in daemon.stdout], daemon=True).start()
    try:
        rounds = [json.loads(lines.get(timeout=60)) for _ in range(2)]
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        daemon.kill()
    assert [r["action"] for r in rounds] == ["updated", "unchanged"]
    assert {r["version"] for r in rounds} == {rounds[0]["version"]} and rounds[0]["version"]
    assert "PRIVATE KEY" not in daemon.stderr.read()


def test_a_failed_first_sync_leaves_no_files_behind(site):
    code, out, _ = site.sync("--verify", "127.0.0.1:1", "--verify-timeout", "0.5")

    assert code == 1
    assert "failed" in out and "no previous files" in out
    assert list(site.folder.iterdir()) == []


def test_a_certificate_whose_key_is_not_exportable_exits_2(sync_env, kv_client, capsys, tmp_path):
    from azure.keyvault.certificates import CertificatePolicy, KeyType

    from certlc.cli import main

    kv_client().begin_create_certificate(
        "sync-locked", CertificatePolicy(issuer_name="Self", subject="CN=locked", key_type=KeyType.ec, exportable=False)
    ).result()

    code = main(["sync", "--vault", "kv1", "--name", "sync-locked", "--cert", "c.pem", "--key", "k.pem"])

    assert code == 2
    assert "exportable: true" in capsys.readouterr().err
    assert not (tmp_path / "c.pem").exists()


def test_a_renewal_in_progress_keeps_the_current_files(site):
    """Placeholder mode: the secret answers 403 SecretDisabled while the new version waits for its CA; the
    server keeps what it serves, and the round is not an error. Previous mode: the secret is still the old one."""
    from azure.keyvault.certificates import CertificatePolicy

    from tests.fixtures.keyvault import pending_mode

    first_sync(site)
    before = installed(site)
    policy = CertificatePolicy(issuer_name="Unknown", subject=f"CN={site.name}.example.com", validity_in_months=12)
    site.client.begin_create_certificate(site.name, policy)  # a renewal's new version, not merged yet

    code, out, err = site.sync("--reload", site.reload_command(), "--verify", f"127.0.0.1:{site.port}")

    assert code == 0, err
    expected = "a renewal is in progress" if pending_mode() == "placeholder" else "up to date"
    assert expected in out + err
    assert installed(site) == before
    assert site.reloads() == 0


def unprivileged(argv: list[str]) -> list[str]:
    """Root writes anywhere: as root the command runs with no capabilities, so file modes bind it as they bind the
    service account a server's files belong to."""
    return ["setpriv", "--inh-caps=-all", "--bounding-set=-all", *argv] if os.geteuid() == 0 else argv


def test_a_folder_it_may_not_write_exits_2_and_leaves_every_file_as_it_was(site, sync_env, tmp_path):
    code, _, err = site.sync()
    assert code == 0, err
    site.renew()  # a new version waits in Key Vault: only the folder's mode stands in the way
    before = {path: path.read_bytes() for path in site.folder.iterdir()}
    env = without_certlc_settings()
    site.folder.chmod(0o555)
    try:
        with (tmp_path / "sync.out").open("w") as stdout, (tmp_path / "sync.err").open("w") as stderr:
            result = subprocess.run(
                unprivileged([sys.executable, "-m", "certlc", *site.args()]),
                env={**env, **sync_env, "PYTHONPATH": str(REPO)},
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                timeout=60,
            )
    finally:
        site.folder.chmod(0o755)

    err = (tmp_path / "sync.err").read_text()
    assert result.returncode == 2, err
    assert err.count("\n") == 1 and f"no permission to write in {site.folder} (needed for cert.pem)" in err, err
    assert {path: path.read_bytes() for path in site.folder.iterdir()} == before  # no new, temporary or .previous file


def test_a_leaf_issued_by_a_root_writes_no_chain_file_and_removes_a_stale_one(sync_env, kv_client, capsys, tmp_path):
    """No intermediates: an empty chain.pem would read as a chain of nothing, so there is none; one left by an
    earlier version goes (kept as chain.pem.previous), and the next round finds the files up to date."""
    from azure.keyvault.certificates import CertificatePolicy

    from certlc.cli import main

    kv_client().begin_create_certificate("sync-root-only", CertificatePolicy.get_default()).result()
    folder = tmp_path / "tls"
    folder.mkdir()
    (folder / "chain.pem").write_text("an intermediate of the previous version\n")
    files = [f"--{name}={folder / name}.pem" for name in ("cert", "key", "chain", "fullchain")]
    args = ["sync", "--vault", "kv1", "--name", "sync-root-only", *files, "--json"]

    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["action"] == "updated"
    assert not (folder / "chain.pem").exists()
    assert (folder / "chain.pem.previous").read_text() == "an intermediate of the previous version\n"
    assert len(x509.load_pem_x509_certificates((folder / "fullchain.pem").read_bytes())) == 1

    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["action"] == "unchanged"
