"""The one private SDK name the tests rely on: the Key Vault SDKs' challenge cache, reset between tests."""

from __future__ import annotations

import importlib

import pytest

from tests.fixtures.keyvault import CHALLENGE_CACHE_PACKAGES, clear_challenge_caches


@pytest.mark.parametrize("distribution", CHALLENGE_CACHE_PACKAGES)
def test_clearing_forgets_a_cached_challenge(distribution: str) -> None:
    cache = importlib.import_module(distribution.replace("-", ".") + "._shared.http_challenge_cache")
    challenge = importlib.import_module(distribution.replace("-", ".") + "._shared.http_challenge").HttpChallenge
    url = "https://kv-cache.vault.azure.net/certificates"
    header = 'Bearer authorization="https://login.microsoftonline.com/tenant", resource="https://vault.azure.net"'
    cache.set_challenge_for_url(url, challenge(url, header))
    assert cache.get_challenge_for_url(url) is not None

    clear_challenge_caches()

    assert cache.get_challenge_for_url(url) is None


def test_a_release_that_moves_the_cache_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.keyvault.secrets._shared import http_challenge_cache

    monkeypatch.delattr(http_challenge_cache, "clear")
    moved = r"azure-keyvault-secrets 4\.\d+\.\d+ has no .*http_challenge_cache\.clear\(\)"
    with pytest.raises(RuntimeError, match=moved):
        clear_challenge_caches()
