"""``certlc sync`` reports its deployments into the app's audit trail, against real nginx serving the synced files."""

from __future__ import annotations

import json
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from renewal.clock import utc_now
from renewal.targets.probe import probe
from tests.fixtures.nginx import Nginx


@pytest.fixture
def audit_file(sync_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "audit.jsonl"
    monkeypatch.setenv("CERTLC_AUDIT_FILE", str(path))
    return path


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def rounds(path: Path) -> list[list[dict[str, Any]]]:
    """The records grouped by round (correlation id), in order."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in records(path):
        grouped.setdefault(record["correlation_id"], []).append(record)
    return list(grouped.values())


def served_by_nginx(nginx: Nginx, server_name: str) -> str | None:
    return probe(server_name, nginx.port, connect="127.0.0.1", timeout=5, now=utc_now).thumbprint


def deployed(site, nginx: Nginx) -> str:
    """A first sync (files only), then nginx serving them under a name of the site's own."""
    code, out, err = site.sync()
    assert code == 0, out + err
    server_name = f"{site.name}.sync.test"
    nginx.serve(server_name, site.fullchain, site.key)
    return server_name


def test_a_renewal_deployed_to_nginx_is_written_reloaded_and_verified_in_the_audit(site, nginx, audit_file):
    server_name = deployed(site, nginx)
    new = site.renew().properties
    expected = new.x509_thumbprint.hex().upper()

    code, out, err = site.sync(
        "--reload", nginx.reload_command(), "--verify", f"127.0.0.1:{nginx.port}", "--verify-sni", server_name
    )

    assert code == 0, out + err
    assert served_by_nginx(nginx, server_name) == expected
    first, second = rounds(audit_file)
    assert [r["event"] for r in first] == ["written"]  # the first sync named no reload and no endpoint
    assert [r["event"] for r in second] == ["written", "reloaded", "verified"]
    for record in second:
        assert (record["vault"], record["name"], record["new_version"]) == ("kv1", site.name, new.version)
        assert (record["host"], record["trigger"], record["thumbprint"]) == (socket.gethostname(), "sync", expected)
    written, reloaded, verified = second
    assert written["old_thumbprint"] == first[0]["thumbprint"] != expected
    assert str(site.cert) in written["files"] and str(site.key) in written["files"]
    assert reloaded["command"] == str(nginx.binary)
    assert (verified["endpoint"], verified["server_name"]) == (f"127.0.0.1:{nginx.port}", server_name)
    assert verified["not_after"].startswith(new.expires_on.strftime("%Y-%m-%dT%H:%M"))
    assert "PRIVATE KEY" not in audit_file.read_text()


def test_nginx_not_taking_the_new_files_is_rolled_back_and_audited(site, nginx, audit_file):
    server_name = deployed(site, nginx)
    old = served_by_nginx(nginx, server_name)
    site.renew()

    code, out, _ = site.sync(
        "--reload", f"{sys.executable} -c pass",  # exits 0 but nginx never re-reads its files
        "--verify", f"127.0.0.1:{nginx.port}", "--verify-sni", server_name, "--verify-timeout", "1",
    )  # fmt: skip

    assert code == 1 and "rolled back" in out
    assert served_by_nginx(nginx, server_name) == old
    events = [r["event"] for r in rounds(audit_file)[-1]]
    assert events == ["written", "reloaded", "rolled_back"]
    rolled_back = rounds(audit_file)[-1][-1]
    assert (rolled_back["reason"], rolled_back["restored"], rolled_back["old_thumbprint"]) == ("not_served", True, old)
    assert "did not serve certificate" in rolled_back["detail"]


def test_a_reload_nginx_refuses_is_rolled_back_and_audited(site, nginx, audit_file, tmp_path):
    """A reload command that fails once (a config test rejecting the new files) leaves no ``reloaded`` record; the
    rollback's reload succeeds and nginx serves the previous certificate."""
    server_name = deployed(site, nginx)
    old = served_by_nginx(nginx, server_name)
    site.renew()
    marker = tmp_path / "fail-next"
    marker.touch()
    failing = tmp_path / f"reload-{uuid.uuid4().hex[:6]}.py"
    failing.write_text(
        "import pathlib, sys\n"
        f"marker = pathlib.Path({str(marker)!r})\n"
        "if marker.exists():\n"
        "    marker.unlink()\n"
        "    sys.exit('nginx: configuration test failed')\n"
    )

    code, out, _ = site.sync(
        "--reload", f"{sys.executable} {failing}", "--verify", f"127.0.0.1:{nginx.port}", "--verify-sni", server_name
    )

    assert code == 1 and "rolled back" in out
    record = rounds(audit_file)[-1]
    assert [r["event"] for r in record] == ["written", "rolled_back"]
    assert (record[-1]["reason"], record[-1]["restored"]) == ("reload_failed", True)
    assert "configuration test failed" in record[-1]["detail"]
    assert served_by_nginx(nginx, server_name) == old
