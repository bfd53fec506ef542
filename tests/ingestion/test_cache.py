from ingestion.cache import DetailCache, cache_key
from ingestion.rows import CertificateDetails


def test_cache_round_trips_and_keeps_only_entries_in_use(tmp_path):
    path = tmp_path / "state" / "cache.json"
    a = CertificateDetails("v1", "CN=a", "CN=ca", "a.example", "Unknown")
    b = CertificateDetails("v2", "CN=b", "CN=ca", "", "Self")
    DetailCache(path).save({cache_key("KV1", "A", "ab"): a, cache_key("kv1", "b", "CD"): b})
    loaded = DetailCache.load(path)
    assert loaded.get("kv1/a/AB") == a
    loaded.save({"kv1/b/CD": b})
    assert DetailCache.load(path).entries == {"kv1/b/CD": b}


def test_a_corrupt_cache_is_ignored(tmp_path):
    path = tmp_path / "cache.json"
    path.write_text("{not json")
    assert DetailCache.load(path).entries == {}
    path.write_text('{"format": 99, "entries": {}}')
    assert DetailCache.load(path).entries == {}
