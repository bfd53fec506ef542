"""Each trust bundle that is set (``CERTLC_*_CA_BUNDLE``) can be used: one line per setting.

gather: the setting read as the app reads it (``renewal.trust``: PEM text, a file's path, or a Key Vault reference
left unresolved), then the certificates in the file that gives. decide: ``judge_bundle`` fails a setting the app
would refuse, a file without a certificate, and a bundle with an expired certificate (a chain through it no longer
verifies); otherwise it shows how many certificates there are and which expires first.

The probes of the services behind these settings take their ``verify=`` from ``verify_for``, so a bundle that
cannot be used fails their line too, with the same problem and fix.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from certlc.doctor.result import Answer, CheckResult, failed, passed
from certlc.doctor.run import Check
from renewal.trust import BUNDLE_SETTINGS, PEM_MARKER, Unusable, trust_file

PEM_TEXT = "PEM text"


@dataclass(frozen=True)
class BundleObservation:
    setting: str
    source: str  # PEM_TEXT, the file's path as the setting gives it, or "" for a value the app refuses
    unusable: Unusable | None = None  # the app would refuse the setting
    certificates: tuple[Any, ...] = ()  # cryptography's x509.Certificate, as the file holds them
    error: str = ""  # why the file gives no certificate


def bundle_checks(env: Mapping[str, str]) -> list[Check]:
    """A check for every trust bundle setting that is set, in ``BUNDLE_SETTINGS``' order."""
    return [
        Check(f"trust bundle {name}", lambda name=name: judge_bundle(read_bundle(env, name), dt.datetime.now(dt.UTC)))
        for name in BUNDLE_SETTINGS
        if (env.get(name) or "").strip()
    ]


def verify_for(env: Mapping[str, str], setting: str) -> bool | str | Answer:
    """requests' ``verify=`` for a probe: the bundle's file, True for the system's trust store, or the ``Answer``
    saying why the setting cannot be used."""
    found = trust_file(env, setting)
    if isinstance(found, Unusable):
        return Answer(code="Config", message=found.problem, fix=found.fix)
    return found or True


def read_bundle(env: Mapping[str, str], setting: str) -> BundleObservation:
    from cryptography import x509

    found = trust_file(env, setting)
    if isinstance(found, Unusable):  # its value is not shown: it may be a secret
        return BundleObservation(setting, "", unusable=found)
    if found is None:
        return BundleObservation(setting, "", error=f"{setting} is not set")
    source = PEM_TEXT if PEM_MARKER in (env.get(setting) or "") else found
    try:
        with open(found, "rb") as file:
            certificates = tuple(x509.load_pem_x509_certificates(file.read()))
    except OSError as exc:
        return BundleObservation(setting, source, error=f"cannot read {found}: {exc.strerror or exc}")
    except ValueError:
        return BundleObservation(setting, source, error=f"{found} holds no certificate that parses")
    return BundleObservation(setting, source, certificates=certificates)


def judge_bundle(seen: BundleObservation, now: dt.datetime) -> CheckResult:
    name = f"trust bundle {seen.setting}"
    target = seen.setting if seen.source in ("", PEM_TEXT) else seen.source
    if seen.unusable is not None:
        return failed(name, seen.unusable.problem, seen.unusable.fix, target)
    if seen.error:
        fix = f"put the CA certificates in it as PEM, or set {seen.setting} to their PEM text"
        return failed(name, seen.error, fix, target)
    expired = sorted((c for c in seen.certificates if c.not_valid_after_utc < now), key=_expiry)
    if expired:
        return failed(
            name,
            f"{_describe(expired[0])} in it expired on {_expiry(expired[0]):%Y-%m-%d}",
            f"replace it in {seen.setting} with the CA's current certificate",
            target,
        )
    earliest = min(seen.certificates, key=_expiry)
    count = len(seen.certificates)
    kind = PEM_TEXT if seen.source == PEM_TEXT else "file"
    return passed(
        name,
        f"{kind}, {count} certificate{'s' if count > 1 else ''}, earliest expiry "
        f"{_expiry(earliest):%Y-%m-%d} ({_describe(earliest)})",
        target,
    )


def _expiry(certificate: Any) -> dt.datetime:
    return certificate.not_valid_after_utc


def _describe(certificate: Any) -> str:
    return certificate.subject.rfc4514_string() or "a certificate with an empty subject"
