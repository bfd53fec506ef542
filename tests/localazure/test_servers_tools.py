"""The installer's command line: ``which`` reports without installing, failures are one clear line."""

from __future__ import annotations

import stat

import pytest

from localazure import tools


def _fake_binary(folder, name: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_which_prints_the_path_of_an_installed_tool(tmp_path, monkeypatch, capsys) -> None:
    for name in ("cfssl", "cfssljson"):
        _fake_binary(tmp_path, name)
    monkeypatch.setenv("PATH", str(tmp_path))

    assert tools.main(["which", "cfssl"]) == 0
    assert capsys.readouterr().out == f"cfssl: {tmp_path / 'cfssl'}\n"


def test_which_fails_when_part_of_a_package_is_missing(tmp_path, monkeypatch, capsys) -> None:
    _fake_binary(tmp_path, "cfssl")  # cfssljson missing
    monkeypatch.setenv("PATH", str(tmp_path))

    assert tools.main(["which", "cfssl"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "cfssl is not installed; run: python -m localazure.tools install cfssl" in err


def test_which_does_not_install_azurite(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("CERTLC_TOOLS_DIR", str(tmp_path / "tools"))

    assert tools.main(["which", "azurite"]) == 1
    assert not (tmp_path / "tools").exists()
    assert "azurite is not installed" in capsys.readouterr().err


def test_unknown_tool_and_bad_usage_exit_2(capsys) -> None:
    assert tools.main(["which", "apache2"]) == 2
    assert "unknown tool 'apache2'; known: azurite, pebble, cfssl, chromium" in capsys.readouterr().err
    assert tools.main(["frobnicate", "pebble"]) == 2
    assert tools.main([]) == 2


def test_install_without_apt_says_what_to_install(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no pebble, no apt-get

    assert tools.main(["install", "pebble"]) == 1
    err = capsys.readouterr().err
    assert "apt-get is not available" in err
    assert "apt-get install -y pebble" in err


def test_install_as_non_root_asks_for_root(tmp_path, monkeypatch) -> None:
    _fake_binary(tmp_path, "apt-get")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(tools.os, "geteuid", lambda: 1000)  # tests run as root here and in CI

    with pytest.raises(tools.ToolMissing, match="needs root; sudo install it with: apt-get install -y golang-cfssl"):
        tools.ensure_cfssl()


def test_installed_azurite_is_found_at_the_pinned_version(azurite) -> None:
    path = tools.AZURITE.locate()
    assert path is not None and path.name == "azurite-queue"
    assert tools.AZURITE.installed_version() == tools.AZURITE_VERSION
