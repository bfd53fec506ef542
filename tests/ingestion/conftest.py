"""Ingestion tests run against emulators of their own; each test starts with the SDKs' challenge caches empty."""

import pytest

from tests.fixtures.keyvault import clear_challenge_caches


@pytest.fixture(autouse=True)
def _fresh_challenge_caches() -> None:
    clear_challenge_caches()
