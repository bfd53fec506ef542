"""The sweep's revocation check: each managed certificate's current version against its CA's own answer, bounded.

Key Vault's listing carries no certificate (only its thumbprint), so a version's certificate is read once (the GET the
sweep makes anyway inside the renewal window, or one of at most ``reads_per_sweep`` extra reads per sweep, so a vault
of 10,000 certificates is covered over a few sweeps without a burst of reads) and kept per certificate in the process.
Later sweeps check the kept version without a Key Vault call; the checker keeps each CRL or OCSP answer until its
nextUpdate and bounds the fetches per sweep. The issuer a CRL or OCSP answer is verified with comes from the CA adapter
(``issuer_certificates``, where it has one) or the certificate's AIA caIssuers URL.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from cryptography import x509

from renewal import tags as cert_tags
from renewal.keyvault import CertificateSnapshot, CertificateSummary
from renewal.revocation.check import RevocationChecker
from renewal.revocation.status import RevocationStatus, where_to_ask
from renewal.x509info import load_certificate, thumbprint

log = logging.getLogger("certlc.revocation")

READS_PER_SWEEP_DEFAULT = 500
FETCHES_PER_SWEEP_DEFAULT = 200
IssuersFor = Callable[[str], Sequence[x509.Certificate]]


class RevocationWatch:
    """Thread-safe: the sweep may check from several threads."""

    def __init__(self, checker: RevocationChecker, issuers_for: IssuersFor, reads_per_sweep: int) -> None:
        self._checker = checker
        self._issuers_for = issuers_for
        self._reads_per_sweep = reads_per_sweep
        self._reads_left = reads_per_sweep
        self._lock = threading.Lock()
        self._kept: dict[tuple[str, str], tuple[str, bytes]] = {}  # (vault, name) -> (thumbprint, certificate)
        self._issuers_of: dict[str, tuple[x509.Certificate, ...]] = {}  # CA adapter -> its certificates

    def start_sweep(self) -> None:
        self._checker.start_run()
        with self._lock:
            self._reads_left = self._reads_per_sweep
            self._issuers_of.clear()  # asked again each sweep: a CA's chain can change

    def to_read(self, vault: str, summaries: Iterable[CertificateSummary], ca_of: Callable[[Any], str]) -> list[str]:
        """Names among ``summaries`` (those the sweep does not read anyway) to read now: a kept version its CA now
        says is revoked, and versions never checked, up to this sweep's reads."""
        chosen: list[str] = []
        for summary in summaries:
            if not summary.enabled or summary.thumbprint is None:
                continue
            if cert_tags.is_false(cert_tags.tag(summary.tags, cert_tags.RENEW)):
                continue  # certlc renews nothing it opted out of: nothing to act on
            with self._lock:
                kept = self._kept.get((vault.lower(), summary.name.lower()))
                fresh = kept is None or kept[0] != summary.thumbprint
                if fresh and self._reads_left > 0:
                    self._reads_left -= 1
                    chosen.append(summary.name)
            if not fresh and kept is not None and self.check(kept[1], ca_of(summary.tags)).state == "revoked":
                chosen.append(summary.name)
        return chosen

    def status(self, cert: CertificateSnapshot, ca: str) -> RevocationStatus | None:
        """What the CA says of a version certlc manages (kept for later sweeps); None for one it does not."""
        if cert.cer is None or not cert.enabled or not cert_tags.is_managed(cert.issuer_name, cert.tags):
            return None
        with self._lock:
            self._kept[(cert.vault.lower(), cert.name.lower())] = (thumbprint(cert.cer), cert.cer)
        return self.check(cert.cer, ca)

    def check(self, cer: bytes, ca: str) -> RevocationStatus:
        """What CA ``ca`` says of one certificate now (cached as the checker keeps answers). The CA's own
        certificates are asked of its adapter only for a certificate that names somewhere to ask."""
        issuers = self._issuers(ca) if where_to_ask(load_certificate(cer)) else ()
        return self._checker.check(cer, issuers)

    def _issuers(self, ca: str) -> Sequence[x509.Certificate]:
        with self._lock:
            known = self._issuers_of.get(ca)
        if known is None:
            try:
                known = tuple(self._issuers_for(ca))
            except Exception as exc:  # an adapter that cannot be built: the AIA may still name the issuer
                log.warning("no issuer certificates from CA %s: %s", ca, exc)
                known = ()
            with self._lock:
                self._issuers_of[ca] = known
        return known


def adapter_issuers(ca_for: Callable[[str], Any]) -> IssuersFor:
    """The CA certificates an adapter names (``issuer_certificates``: the local CA's own, AD CS's chain)."""

    def issuers(name: str) -> Sequence[x509.Certificate]:
        named = getattr(ca_for(name), "issuer_certificates", None)
        if named is None:
            return ()
        return [x509.load_pem_x509_certificate(pem.encode()) for pem in named()]

    return issuers


def watch_from_env(
    env: Mapping[str, str], ca_for: Callable[[str], Any], clock: Callable[[], Any]
) -> RevocationWatch | None:
    """``CERTLC_REVOCATION_CHECK`` (``on``, the default, or ``off``), ``CERTLC_REVOCATION_READS_PER_SWEEP`` (extra
    certificate reads a sweep may make, 500), ``CERTLC_REVOCATION_FETCHES_PER_SWEEP`` (CRL and OCSP requests, 200)."""
    from renewal.errors import ConfigError
    from renewal.revocation.fetch import HttpFetcher
    from renewal.setting_values import whole_number_setting

    mode = (env.get("CERTLC_REVOCATION_CHECK") or "on").strip().lower()
    if mode not in ("on", "off"):
        raise ConfigError(f"CERTLC_REVOCATION_CHECK={mode!r} must be on or off")
    if mode == "off":
        return None
    reads = whole_number_setting(env, "CERTLC_REVOCATION_READS_PER_SWEEP", READS_PER_SWEEP_DEFAULT, low=0)
    fetches = whole_number_setting(env, "CERTLC_REVOCATION_FETCHES_PER_SWEEP", FETCHES_PER_SWEEP_DEFAULT, low=0)
    checker = RevocationChecker(HttpFetcher(), clock, max_fetches_per_run=fetches)
    return RevocationWatch(checker, adapter_issuers(ca_for), reads)
