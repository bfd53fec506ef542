"""Servers started with a relative folder: each runs in that folder, so every path it is given must be absolute."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from localazure.ports import port_open
from localazure.servers import start_cfssl, start_pebble

from localazure import tools
from tests.fixtures.nginx import DEFAULT_NAME, leaf_files, start_nginx
from tests.fixtures.servers import serve_or_skip


@pytest.mark.pebble
def test_pebble_starts_from_a_relative_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with start_pebble(Path(".local/demo/ca-server")) as pebble:
        with requests.Session() as session:
            session.trust_env = False
            assert session.get(pebble.directory_url, verify=str(pebble.ca_bundle), timeout=10).status_code == 200
        assert pebble.ca_bundle.is_absolute()


@pytest.mark.cfssl
def test_cfssl_serve_starts_from_a_relative_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with start_cfssl(Path(".local/demo/ca-server")) as cfssl:
        with requests.Session() as session:
            session.trust_env = False
            assert session.post(f"{cfssl.url}/api/v1/cfssl/info", json={}, timeout=10).status_code == 200
        assert "BEGIN CERTIFICATE" in cfssl.ca_pem


def test_nginx_starts_from_a_relative_folder(tmp_path, monkeypatch, nginx_ca) -> None:
    """The demo's default folder was relative, and nginx (``-p`` is its cwd) read ``.local/demo/nginx/.local/...``."""
    monkeypatch.chdir(tmp_path)
    folder = Path(".local/demo/nginx")
    cert, key = leaf_files(nginx_ca, folder / "tls", DEFAULT_NAME)
    server = serve_or_skip("nginx", tools.ensure_nginx, lambda: start_nginx(folder, cert, key))
    try:
        assert server.config.is_absolute() and server.folder == (tmp_path / folder)
        assert port_open(server.port)
    finally:
        server.stop()
