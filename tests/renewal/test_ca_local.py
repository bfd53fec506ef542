"""The built-in CA makes a new CA only where asked: a mistyped folder is refused, never a second CA."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from renewal.ca.base import CaConfigError
from renewal.ca.local import LocalCA
from renewal.runtime import ca_factory


def test_a_folder_without_a_ca_is_refused_naming_the_setting_and_nothing_is_made(tmp_path):
    typo = tmp_path / "ca-typo"

    with pytest.raises(CaConfigError, match="CERTLC_LOCAL_CA_DIR") as refused:
        ca_factory({"CERTLC_LOCAL_CA_DIR": str(typo)}, clock=lambda: datetime.now(UTC))("local")

    assert f"no ca.pem and no ca-key.pem in {typo}" in str(refused.value)
    assert not typo.exists()


def test_created_where_asked_then_the_same_ca_is_loaded(tmp_path):
    made = LocalCA(tmp_path / "ca", create=True)

    assert sorted(p.name for p in (tmp_path / "ca").iterdir()) == ["ca-key.pem", "ca.pem"]
    assert LocalCA(tmp_path / "ca").certificate == made.certificate
    assert LocalCA(tmp_path / "ca", create=True).certificate == made.certificate  # asked again: kept, not replaced


def test_half_a_ca_is_refused_even_when_asked_to_create_one(tmp_path):
    LocalCA(tmp_path, create=True)
    key = (tmp_path / "ca-key.pem").read_bytes()
    (tmp_path / "ca.pem").unlink()

    with pytest.raises(CaConfigError, match=r"no ca\.pem in"):
        LocalCA(tmp_path, create=True)
    assert (tmp_path / "ca-key.pem").read_bytes() == key  # the key is never replaced
