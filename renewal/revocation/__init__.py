"""Whether a certificate is revoked, by its CA's own OCSP responder or CRL: ``RevocationChecker.check``."""

from renewal.revocation.check import RevocationChecker
from renewal.revocation.fetch import Fetcher, FetchError, HttpFetcher
from renewal.revocation.status import Problem, RevocationStatus, Source, where_to_ask

__all__ = [
    "FetchError",
    "Fetcher",
    "HttpFetcher",
    "Problem",
    "RevocationChecker",
    "RevocationStatus",
    "Source",
    "where_to_ask",
]
