"""The built-in CA: a real signing CA kept in a folder, for labs, tests and the local stack.

Profiles map to validity, EKUs and key usage. A profile can require approval, which
makes requests ``Pending`` until ``approve`` is called, the way an AD CS template with
manager approval behaves. Keys are written 0600 in a 0700 folder.

A new CA is made only where asked (``create``: the local stack, the emulators, tests): a mistyped
``CERTLC_LOCAL_CA_DIR`` would otherwise start a CA nothing trusts, and renewals would chain to it.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from renewal.atomic import write_atomically
from renewal.ca.base import CaConfigError, CaResult, Denied, Issued, Pending

SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH.dotted_string
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string


@dataclass(frozen=True)
class Profile:
    validity_days: int = 90
    ekus: tuple[str, ...] = (SERVER_AUTH, CLIENT_AUTH)
    requires_approval: bool = False
    poll_seconds: int = 300  # how soon to ask again while approval is pending


DEFAULT_PROFILES = {
    "server": Profile(),
    "client": Profile(ekus=(CLIENT_AUTH,)),
    "approval": Profile(requires_approval=True),
}


class LocalCA:
    name = "local"

    def __init__(
        self,
        directory: Path,
        profiles: dict[str, Profile] | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        *,
        create: bool = False,
    ) -> None:
        """``create``: make a new CA when ``directory`` holds none; without it such a folder is a CaConfigError."""
        self.directory = Path(directory)
        self.profiles = profiles if profiles is not None else _profiles_from_file(self.directory) or DEFAULT_PROFILES
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._key, self.certificate = self._load_or_create(create)

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def submit(self, csr_pem: bytes, profile: str, replaces: str | None = None) -> CaResult:
        spec = self.profiles.get(profile)
        if spec is None:
            return Denied(
                f"profile {profile!r} is not offered by the local CA (offered: {', '.join(sorted(self.profiles))})"
            )
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as exc:
            return Denied(f"the CSR cannot be read: {exc}")
        if not csr.is_signature_valid:
            return Denied("the CSR signature does not verify")
        if spec.requires_approval:
            request_id = uuid.uuid4().hex
            self._write(
                self._requests / f"{request_id}.json",
                json.dumps({"csr": csr_pem.decode(), "profile": profile, "state": "pending"}).encode(),
            )
            return Pending(
                request_id, retry_after_seconds=spec.poll_seconds, detail="waiting for approval at the local CA"
            )
        return Issued((self._sign(csr, spec), self.certificate_pem))

    def poll(self, request_id: str, csr_pem: bytes = b"") -> CaResult:
        """The CA keeps each request it left pending, CSR included: ``csr_pem`` is not needed."""
        record = self._request(request_id)
        if record["state"] in ("denied", "withdrawn"):
            return Denied(record.get("reason", "denied by the CA operator"))
        profile = self.profiles[record["profile"]]
        if record["state"] != "approved":
            return Pending(
                request_id, retry_after_seconds=profile.poll_seconds, detail="waiting for approval at the local CA"
            )
        csr = x509.load_pem_x509_csr(record["csr"].encode())
        return Issued((self._sign(csr, profile), self.certificate_pem))

    def approve(self, request_id: str) -> None:
        self._set_state(request_id, "approved")

    def deny(self, request_id: str, reason: str) -> None:
        self._set_state(request_id, "denied", reason=reason)

    def withdraw(self, request_id: str, reason: str) -> bool:
        """certlc gave the renewal up: a request still waiting for approval is closed, not left for a manager."""
        if self._request(request_id)["state"] == "pending":
            self._set_state(request_id, "withdrawn", reason=reason)
        return True

    @property
    def _requests(self) -> Path:
        return self.directory / "requests"

    def _request(self, request_id: str) -> dict:
        if not request_id.isalnum():
            raise CaConfigError(f"malformed local CA request id {request_id!r}")
        path = self._requests / f"{request_id}.json"
        if not path.exists():
            raise CaConfigError(f"the local CA has no request {request_id!r}")
        return json.loads(path.read_text())

    def _set_state(self, request_id: str, state: str, **extra: str) -> None:
        record = self._request(request_id) | {"state": state, **extra}
        self._write(self._requests / f"{request_id}.json", json.dumps(record).encode())

    def _sign(self, csr: x509.CertificateSigningRequest, profile: Profile) -> str:
        now = self._clock()
        builder = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.certificate.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=profile.validity_days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.ObjectIdentifier(o) for o in profile.ekus]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(csr.public_key()), critical=False)
        )
        for ext in csr.extensions:
            if isinstance(ext.value, x509.SubjectAlternativeName | x509.KeyUsage):
                builder = builder.add_extension(ext.value, critical=ext.critical)
        return builder.sign(self._key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()

    def _load_or_create(self, create: bool) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key_path, cert_path = self.directory / "ca-key.pem", self.directory / "ca.pem"
        if key_path.exists() and cert_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            return key, x509.load_pem_x509_certificate(cert_path.read_bytes())  # type: ignore[return-value]
        missing = [path.name for path in (cert_path, key_path) if not path.exists()]
        if not create or len(missing) == 1:  # half a CA is never completed: its key or certificate would be replaced
            raise CaConfigError(
                f"no {' and no '.join(missing)} in {self.directory}: point CERTLC_LOCAL_CA_DIR at the local CA's "
                "folder (certlc local up makes one in .local/stack/ca)"
            )
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "certlc"),
                x509.NameAttribute(NameOID.COMMON_NAME, "certlc local CA"),
            ]
        )
        now = self._clock()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        self._write(
            key_path,
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
        self._write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return key, cert

    def _write(self, path: Path, data: bytes) -> None:
        """Atomic, owner-only write: a crash never leaves half a key or request behind."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomically(path, data)


def _profiles_from_file(directory: Path) -> dict[str, Profile] | None:
    """Optional ``profiles.json`` beside the CA:
    ``{"name": {"validity_days", "ekus", "requires_approval", "poll_seconds"}}``."""
    path = directory / "profiles.json"
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text())
        return {
            name: Profile(
                validity_days=int(p.get("validity_days", 90)),
                ekus=tuple(p.get("ekus", (SERVER_AUTH, CLIENT_AUTH))),
                requires_approval=bool(p.get("requires_approval", False)),
                poll_seconds=int(p.get("poll_seconds", 300)),
            )
            for name, p in raw.items()
        }
    except (ValueError, AttributeError, TypeError) as exc:
        raise CaConfigError(f"{path} is not a valid profiles file: {exc}") from exc
