"""The built-in CA: a real signing CA kept in a folder, for labs, tests and the local stack.

Profiles map to validity, EKUs and key usage. A profile can require approval, which
makes requests ``Pending`` until ``approve`` is called, the way an AD CS template with
manager approval behaves. Keys are written 0600 in a 0700 folder.

A new CA is made only where asked (``create``: the local stack, the emulators, tests): a mistyped
``CERTLC_LOCAL_CA_DIR`` would otherwise start a CA nothing trusts, and renewals would chain to it.

Revocation works as a real CA's: each certificate signed is kept in ``issued/<serial>.pem``, each revocation in
``revoked/<serial>.json``, and every revocation signs a new CRL (``crl.der``, numbered) that ``crl_der`` renews once
its nextUpdate has passed. With ``crl_url`` every certificate signed names where that CRL is published.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from renewal.atomic import write_atomically
from renewal.ca.base import (
    CaConfigError,
    CaError,
    CaResult,
    Denied,
    Issued,
    Pending,
    Revoked,
)
from renewal.ca.revocation import reason_code, revocation_target, serial_hex

SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH.dotted_string
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string
CRL_PERIOD = dt.timedelta(days=1)  # how long each CRL is current (its nextUpdate)


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
        crl_url: str | None = None,
        crl_period: dt.timedelta = CRL_PERIOD,
    ) -> None:
        """``create``: make a new CA when ``directory`` holds none; without it such a folder is a CaConfigError.
        ``crl_url`` (``CERTLC_LOCAL_CA_CRL_URL``): where ``crl_der`` is published, named in every certificate
        signed (CRL Distribution Points); ``crl_period``: how long each CRL is current."""
        self.directory = Path(directory)
        self.crl_url = crl_url
        self.crl_period = crl_period
        self.profiles = profiles if profiles is not None else _profiles_from_file(self.directory) or DEFAULT_PROFILES
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._key, self.certificate = self._load_or_create(create)

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def use_clock(self, clock: Callable[[], dt.datetime]) -> None:
        """Sign (certificates and the CRL) on ``clock`` from now on: a stand-in CA started before the emulated clock
        it must follow existed."""
        self._clock = clock

    def issuer_certificates(self) -> tuple[str, ...]:
        """The CA's certificate, against which its CRL's signature is checked (``renewal.revocation``)."""
        return (self.certificate_pem,)

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

    def revoke(self, certificate_pem: str, reason: str) -> Revoked:
        """Revokes a certificate this CA signed (its signature proves it, records or not) and signs a new CRL."""
        target = revocation_target(certificate_pem, reason)
        try:
            target.certificate.verify_directly_issued_by(self.certificate)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise CaError(
                f"certificate {target.serial} (issuer {target.certificate.issuer.rfc4514_string()}) was not issued "
                f"by the local CA in {self.directory}: revoke it at the CA that issued it"
            ) from exc
        return self._revoke(target.serial, reason)

    def revoke_serial(self, serial: str, reason: str) -> Revoked:
        """What the CA's operator does knowing only the serial (hex, as ``certutil -revoke`` takes it): only for a
        serial this CA recorded when it signed."""
        reason_code(reason)  # a reason outside REVOCATION_REASONS is refused before anything is written
        try:
            number = int(serial.replace(" ", "").replace(":", ""), 16)
        except ValueError:
            raise CaError(f"{serial!r} is not a certificate serial number in hex") from None
        if not (self._issued / f"{serial_hex(number)}.pem").exists():
            raise CaError(f"the local CA in {self.directory} has no record of issuing certificate {serial_hex(number)}")
        return self._revoke(serial_hex(number), reason)

    def crl_der(self) -> bytes:
        """The CA's current CRL (DER), signed anew once its nextUpdate has passed: relying parties treat a CRL past
        its nextUpdate as unknown status, so a CA with no recent revocation must still renew it."""
        path = self.directory / "crl.der"
        with self._revocation_lock():
            if path.exists():
                current = path.read_bytes()
                next_update = x509.load_der_x509_crl(current).next_update_utc
                if next_update is not None and next_update > self._clock():
                    return current
            return self._write_crl()

    def _revoke(self, serial: str, reason: str) -> Revoked:
        with self._revocation_lock():
            record = self._revoked / f"{serial}.json"
            if record.exists():
                return Revoked(serial, json.loads(record.read_text())["reason"], "already revoked")
            self._write(record, json.dumps({"reason": reason, "revoked_at": self._clock().isoformat()}).encode())
            self._write_crl()
        return Revoked(serial, reason)

    def _write_crl(self) -> bytes:
        """Signs the CRL of every revocation recorded, numbered one past the last (call under the lock)."""
        now = self._clock()
        path = self.directory / "crl.der"
        number = 1
        if path.exists():
            previous = x509.load_der_x509_crl(path.read_bytes())
            number = previous.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(now)
            .next_update(now + self.crl_period)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
            .add_extension(x509.CRLNumber(number), critical=False)
        )
        for entry in sorted(self._revoked.glob("*.json")) if self._revoked.exists() else ():
            record = json.loads(entry.read_text())
            revoked = (
                x509.RevokedCertificateBuilder()
                .serial_number(int(entry.stem, 16))
                .revocation_date(dt.datetime.fromisoformat(record["revoked_at"]))
            )
            if record["reason"] != "unspecified":  # RFC 5280 5.3.1: absent rather than unspecified
                revoked = revoked.add_extension(x509.CRLReason(x509.ReasonFlags(record["reason"])), critical=False)
            builder = builder.add_revoked_certificate(revoked.build())
        der = builder.sign(self._key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
        self._write(path, der)
        return der

    @contextlib.contextmanager
    def _revocation_lock(self) -> Iterator[None]:
        """One revocation or CRL at a time, across threads and processes: CRL numbers never repeat."""
        with open(self.directory / ".revocation.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    @property
    def _issued(self) -> Path:
        return self.directory / "issued"

    @property
    def _revoked(self) -> Path:
        return self.directory / "revoked"

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
        if self.crl_url:
            where = x509.DistributionPoint([x509.UniformResourceIdentifier(self.crl_url)], None, None, None)
            builder = builder.add_extension(x509.CRLDistributionPoints([where]), critical=False)
        for ext in csr.extensions:
            if isinstance(ext.value, x509.SubjectAlternativeName | x509.KeyUsage):
                builder = builder.add_extension(ext.value, critical=ext.critical)
        certificate = builder.sign(self._key, hashes.SHA256())
        self._write(
            self._issued / f"{serial_hex(certificate.serial_number)}.pem",
            certificate.public_bytes(serialization.Encoding.PEM),
        )
        return certificate.public_bytes(serialization.Encoding.PEM).decode()

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
