"""Servers started with a relative folder: each runs in that folder, so every path it is given must be absolute."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from localazure.servers import start_cfssl, start_pebble


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
