"""Trust bundles: every ``CERTLC_*_CA_BUNDLE`` setting is read here, as a file's path or as the PEM text itself.

An Azure Functions instance has no file of the operator's (the package is read-only and holds none), so there a
private CA's certificates come as the setting's value, or as a Key Vault reference the platform resolves to it.
requests, ssl and ldap3 want a file, so PEM text is written once per process to its own file: 0600, in a private
0700 temp folder, named by its content, so the same text always gives the same path. Only certificates are
written, whatever else the text holds, and an error never repeats the text.
"""

from __future__ import annotations

import atexit
import hashlib
import re
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from renewal.atomic import write_atomically
from renewal.errors import ConfigError
from renewal.hosting import KEY_VAULT_REFERENCE

PEM_MARKER = "-----BEGIN"
CERTIFICATE_MARKER = "-----BEGIN CERTIFICATE-----"
MAX_PATH_SHOWN = 260  # longer values are not shown in errors: no one types such a path
# Every setting read through ``ca_bundle``, in the order ``certlc doctor`` shows them.
BUNDLE_SETTINGS = (
    "CERTLC_KEYVAULT_CA_BUNDLE",
    "CERTLC_LOGS_CA_BUNDLE",
    "CERTLC_CFSSL_CA_BUNDLE",
    "CERTLC_ACME_CA_BUNDLE",
    "CERTLC_ACME_DNS_CA_BUNDLE",
    "CERTLC_ADCS_CA_BUNDLE",
    "CERTLC_ADCS_LDAP_CA_BUNDLE",
    "CERTLC_SMTP_CA_BUNDLE",
    "CERTLC_WEBHOOK_CA_BUNDLE",
    "CERTLC_ARM_CA_BUNDLE",  # certlc doctor's own, for Azure Resource Manager (certlc/doctor/deployment.py)
    "CERTLC_TARGET_ARM_CA_BUNDLE",  # target discovery and rollout (renewal/targets/azure)
)

_lock = threading.Lock()  # the host's threads build their clients side by side
_written: dict[str, Path] = {}  # SHA-256 of the certificates written → their file


@dataclass(frozen=True)
class Unusable:
    """Why a bundle setting cannot be used, and what to do about it."""

    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.problem}: {self.fix}"


def ca_bundle(env: Mapping[str, str], name: str, error: type[ConfigError] = ConfigError) -> str | None:
    """The file to trust for what setting ``name`` is about (requests' ``verify=``, ``ssl``'s ``cafile=``), or None
    for the system's trust store. A value that cannot be used raises ``error``, the caller's kind of setting error,
    so the setting is refused where that layer refuses its other settings."""
    found = trust_file(env, name)
    if isinstance(found, Unusable):
        raise error(str(found))
    return found


def trust_file(env: Mapping[str, str], name: str) -> str | Unusable | None:
    """``ca_bundle``'s answer without raising (``certlc doctor`` shows the problem and its fix apart)."""
    value = (env.get(name) or "").strip()
    if not value:
        return None
    if value.startswith(KEY_VAULT_REFERENCE):
        return Unusable(
            f"{name} is a Key Vault reference the platform did not resolve",
            "give the app's identity Key Vault Secrets User on that secret and check the reference (its status "
            "in the app's environment variables in the portal); outside Azure set the PEM text or a file's path",
        )
    if PEM_MARKER in value:
        return _pem_text(name, value)
    try:
        with open(value, "rb"):
            pass
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the value
        fix = "set the path of a PEM file this process can read, or the CA certificates' PEM text itself"
        if not _path_like(value):
            shown = f"its {len(value)} characters are not shown: they may be a secret"
            return Unusable(f"{name} is neither PEM text nor a file's path ({shown})", fix)
        return Unusable(f"{name}: cannot read the file {value} ({getattr(exc, 'strerror', None) or exc})", fix)
    return value


def _path_like(value: str) -> bool:
    """Whether an error may show the value: a path, but nothing else, since a Key Vault reference to the wrong secret
    resolves to that secret's value (a password, or a PFX with its key)."""
    prefixed = value.startswith(("/", "./", "../", "~/")) or re.match(r"[A-Za-z]:[\\/]", value) is not None
    return len(value) <= MAX_PATH_SHOWN and (prefixed or value.lower().endswith((".pem", ".crt", ".cer")))


def _pem_text(name: str, value: str) -> str | Unusable:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    text = value.replace("\\n", "\n")  # a PEM kept on one line with escaped line breaks too
    fix = "give the CA certificates as PEM, each whole from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----"
    if CERTIFICATE_MARKER not in text:
        return Unusable(f"{name} holds PEM text but no certificate", fix)
    try:
        certificates = x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        return Unusable(f"{name} holds PEM text that does not parse as certificates", fix)
    return _write_once(b"".join(c.public_bytes(Encoding.PEM) for c in certificates))


def _write_once(pem: bytes) -> str:
    """The file holding ``pem``: written on first use, in a new private folder removed when the process ends, and
    again (in another new folder) if a temp cleaner has removed it since."""
    digest = hashlib.sha256(pem).hexdigest()
    with _lock:
        path = _written.get(digest)
        if path is None or not path.is_file():
            folder = Path(tempfile.mkdtemp(prefix="certlc-trust-"))  # 0700, a name nobody else holds
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            path = folder / f"{digest[:32]}.pem"
            write_atomically(path, pem)
            _written[digest] = path
        return str(path)
