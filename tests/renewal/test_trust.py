"""Trust bundle settings (``renewal/trust.py``): a file's path or the PEM text itself, and nothing reads them around it.

In Azure Functions there is no file of the operator's to point at, so the PEM text (or a Key Vault reference the
platform resolves to it) must work wherever a path does."""

from __future__ import annotations

import ast
import os
import re
import ssl
import stat
from pathlib import Path

import pytest
import trustme

from renewal.ca.base import CaConfigError
from renewal.errors import ConfigError
from renewal.trust import BUNDLE_SETTINGS, ca_bundle

ROOT = Path(__file__).resolve().parents[2]
NAME = "CERTLC_CFSSL_CA_BUNDLE"


@pytest.fixture
def private_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temp folder the bundles' private folders are made in, so a test can see them."""
    folder = tmp_path / "temp"
    folder.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(folder))
    return folder


def ca_pem() -> str:
    return trustme.CA().cert_pem.bytes().decode()


@pytest.mark.parametrize("value", [None, "", "  \n"])
def test_unset_or_empty_is_the_system_trust_store(value) -> None:
    env = {} if value is None else {NAME: value}
    assert ca_bundle(env, NAME) is None


def test_pem_text_becomes_a_private_file_ssl_loads(private_temp: Path) -> None:
    pem = ca_pem()

    path = Path(ca_bundle({NAME: pem}, NAME) or "")

    assert path.read_text() == pem
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.parent.parent == private_temp
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.parent.stat().st_uid == os.getuid()
    assert len(ssl.create_default_context(cafile=str(path)).get_ca_certs()) == 1


def test_the_same_text_twice_is_one_file_written_once(private_temp: Path) -> None:
    pem = ca_pem()
    first = Path(ca_bundle({NAME: pem}, NAME) or "")
    written = first.stat()

    again = ca_bundle({"CERTLC_SMTP_CA_BUNDLE": "\n" + pem + "\n"}, "CERTLC_SMTP_CA_BUNDLE")
    escaped = ca_bundle({NAME: pem.replace("\n", "\\n")}, NAME)  # a value kept on one line, \n escaped
    flattened = ca_bundle({NAME: pem.replace("\n", " ")}, NAME)  # line breaks lost to a one-line input field
    windows = ca_bundle({NAME: pem.replace("\n", "\r\n")}, NAME)

    assert again == escaped == flattened == windows == str(first)
    assert (first.stat().st_ino, first.stat().st_mtime_ns) == (written.st_ino, written.st_mtime_ns)
    assert len(list(private_temp.iterdir())) == 1
    assert ca_bundle({NAME: ca_pem()}, NAME) != str(first)  # other certificates, another file


def test_only_the_certificates_are_written_whatever_else_the_text_holds(private_temp: Path) -> None:
    ca = trustme.CA()
    key = ca.private_key_pem.bytes().decode()
    text = f"the issuing CA:\n{ca.cert_pem.bytes().decode()}\n{key}"

    path = Path(ca_bundle({NAME: text}, NAME) or "")

    assert path.read_text() == ca.cert_pem.bytes().decode()
    assert "PRIVATE KEY" not in path.read_text()


def test_a_file_a_temp_cleaner_removed_is_written_again(private_temp: Path) -> None:
    pem = ca_pem()
    first = Path(ca_bundle({NAME: pem}, NAME) or "")
    first.unlink()
    first.parent.rmdir()

    again = Path(ca_bundle({NAME: pem}, NAME) or "")

    assert again.read_text() == pem
    assert stat.S_IMODE(again.parent.stat().st_mode) == 0o700


def test_a_path_is_used_as_it_is(tmp_path: Path) -> None:
    bundle = tmp_path / "roots.pem"
    bundle.write_text(ca_pem())

    assert ca_bundle({NAME: f" {bundle} "}, NAME) == str(bundle)


GARBLED = "-----BEGIN CERTIFICATE-----\nc2VjcmV0LWlzaCBidXQgbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
CUT_SHORT = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2VydGxj"
KEY_ONLY = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (GARBLED, "holds PEM text that does not parse as certificates"),
        (CUT_SHORT, "holds PEM text that does not parse as certificates"),
        (KEY_ONLY, "holds PEM text but no certificate"),
    ],
)
def test_pem_text_without_a_usable_certificate_is_refused_without_repeating_it(value, problem, private_temp) -> None:
    with pytest.raises(CaConfigError) as refused:
        ca_bundle({NAME: value}, NAME, CaConfigError)

    message = str(refused.value)
    assert message.startswith(f"{NAME} {problem}: give the CA certificates as PEM"), message
    assert "\n" not in message
    assert all(line not in message for line in value.splitlines() if not line.startswith("-----")), message
    assert list(private_temp.iterdir()) == []


def test_an_unresolved_key_vault_reference_says_what_to_grant() -> None:
    reference = "@Microsoft.KeyVault(SecretUri=https://kv-ops.vault.azure.net/secrets/internal-ca/)"

    with pytest.raises(ConfigError) as refused:
        ca_bundle({"CERTLC_ADCS_CA_BUNDLE": reference}, "CERTLC_ADCS_CA_BUNDLE")

    message = str(refused.value)
    assert message.startswith("CERTLC_ADCS_CA_BUNDLE is a Key Vault reference the platform did not resolve: ")
    assert "give the app's identity Key Vault Secrets User on that secret" in message


def test_a_path_that_cannot_be_read_names_the_setting_and_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "ca.pem"

    with pytest.raises(ConfigError, match=rf"^{NAME}: cannot read the file {missing} \(No such file or directory\)"):
        ca_bundle({NAME: str(missing)}, NAME)
    with pytest.raises(ConfigError, match=rf"^{NAME}: cannot read the file {tmp_path} \(Is a directory\)"):
        ca_bundle({NAME: str(tmp_path)}, NAME)


@pytest.mark.parametrize(
    "value",
    [
        "MIIKPAIBAzCCCfYGCSqGSIb3DQEHAaCCCecEggnjMIIJ3zCCBggGCSqGSIb3DQEHAaCCBfkEggX1MIIF8TCCBe0GCyqGSIb3" * 20,
        "Enroll-pa55word",
    ],
)
def test_a_value_that_is_neither_pem_nor_a_path_is_not_shown(value) -> None:
    """A Key Vault reference to the wrong secret resolves to that secret: a PFX with its key, or a password."""
    with pytest.raises(ConfigError) as refused:
        ca_bundle({NAME: value}, NAME)

    message = str(refused.value)
    assert message.startswith(f"{NAME} is neither PEM text nor a file's path (its {len(value)} characters are not")
    assert value[:8] not in message


def test_the_error_is_the_callers_kind() -> None:
    from renewal.clients import ConnectionConfigError
    from renewal.notify import NotifyConfigError

    for error in (CaConfigError, NotifyConfigError, ConnectionConfigError):
        with pytest.raises(error):
            ca_bundle({NAME: "/no/such/ca.pem"}, NAME, error)


BUNDLE_SETTING = re.compile(r"CERTLC_[A-Z0-9_]+_CA_BUNDLE")


def _key_read(node: ast.AST) -> ast.AST | None:
    """The key of ``x.get(key, ...)`` or ``x[key]`` (a read), else None."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" and node.args:
        return node.args[0]
    if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
        return node.slice
    return None


def test_every_bundle_setting_is_read_through_ca_bundle_and_known_to_the_doctor() -> None:
    """A reader of its own (``env.get("..._CA_BUNDLE")``) would take PEM text for a path again; a bundle setting
    missing from ``BUNDLE_SETTINGS`` would get no doctor line, and one the code no longer names a useless one."""
    code = [
        ROOT / "function_app.py",
        *(p for part in ("renewal", "ingestion", "certlc") for p in (ROOT / part).rglob("*.py")),
    ]
    named, read_around = set(), []
    for path in code:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            constant = isinstance(node, ast.Constant) and isinstance(node.value, str)
            if constant and BUNDLE_SETTING.fullmatch(node.value) and path.name != "trust.py":
                named.add(node.value)
            key = _key_read(node)
            if isinstance(key, ast.Constant) and BUNDLE_SETTING.fullmatch(str(key.value)):
                read_around.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert read_around == []
    assert named == set(BUNDLE_SETTINGS)
