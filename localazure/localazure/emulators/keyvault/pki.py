"""Keys, CSRs, certificates and PFX/PEM packaging, following a Key Vault certificate policy."""

from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import ipaddress
import re
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID, ObjectIdentifier

from .errors import bad_parameter
from .schemas import KEY_USAGES  # the REST spec's KeyUsageType, declared once

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
CURVES: dict[str, type[ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
    "P-256K": ec.SECP256K1,  # JsonWebKeyCurveName; Key Vault makes certificate keys on it too
}
CURVE_NAMES = {cls.name: name for name, cls in CURVES.items()}
RSA_SIZES = (2048, 3072, 4096)
_KU_ATTRS = dict(
    zip(
        KEY_USAGES,
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        strict=True,
    )
)
_NAME_OVERRIDES_IN = {"S": NameOID.STATE_OR_PROVINCE_NAME, "E": NameOID.EMAIL_ADDRESS}
_NAME_OVERRIDES_OUT = {NameOID.STATE_OR_PROVINCE_NAME: "S", NameOID.EMAIL_ADDRESS: "E"}
_UPN_OID = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def x5t(cert: x509.Certificate) -> str:
    """Key Vault's thumbprint: base64url SHA-1 of the DER, no padding."""
    return b64url(hashlib.sha1(der(cert)).digest())  # noqa: S324 - x5t is SHA-1 by definition


def generate_key(key_props: dict[str, Any]) -> PrivateKey:
    kty = str(key_props.get("kty", "RSA")).upper().removesuffix("-HSM")
    if kty == "RSA":
        size = int(key_props.get("key_size") or 2048)
        if size not in RSA_SIZES:
            raise bad_parameter(f"Invalid key size {size}: RSA keys must be one of {list(RSA_SIZES)}")
        return rsa.generate_private_key(public_exponent=65537, key_size=size)
    if kty == "EC":
        curve = key_props.get("crv") or "P-256"
        if curve not in CURVES:
            raise bad_parameter(f"Invalid curve {curve}: EC keys must use one of {sorted(CURVES)}")
        return ec.generate_private_key(CURVES[curve]())
    raise bad_parameter(f"Invalid key type {kty}: certificates support RSA and EC keys")


def key_props_of(key: PrivateKey) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        return {"kty": "RSA", "key_size": key.key_size}
    return {"kty": "EC", "crv": CURVE_NAMES.get(key.curve.name, key.curve.name)}


def key_to_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def key_from_pem(data: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("stored key is neither RSA nor EC")
    return key


def same_public_key(cert: x509.Certificate, key: PrivateKey) -> bool:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return cert.public_key().public_bytes(serialization.Encoding.DER, spki) == key.public_key().public_bytes(
        serialization.Encoding.DER, spki
    )


def parse_subject(subject: str) -> x509.Name:
    """Key Vault subjects look like ``CN=a, O=b`` (RFC 4514 order, ``S`` for state)."""
    parts = [part.strip() for part in re.split(r"(?<!\\),", subject) if part.strip()]
    try:
        return x509.Name.from_rfc4514_string(",".join(parts), attr_name_overrides=_NAME_OVERRIDES_IN)
    except ValueError as exc:
        raise bad_parameter(f"Invalid subject name {subject!r}: {exc}") from exc


def format_subject(name: x509.Name) -> str:
    return ", ".join(rdn.rfc4514_string(attr_name_overrides=_NAME_OVERRIDES_OUT) for rdn in reversed(name.rdns))


def _san_extension(sans: dict[str, Any]) -> x509.SubjectAlternativeName | None:
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in sans.get("dns_names") or []]
    names += [x509.RFC822Name(e) for e in sans.get("emails") or []]
    names += [x509.OtherName(_UPN_OID, _der_utf8(u)) for u in sans.get("upns") or []]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in sans.get("ipAddresses") or []]
    names += [x509.UniformResourceIdentifier(u) for u in sans.get("uris") or []]
    return x509.SubjectAlternativeName(names) if names else None


def _der_utf8(value: str) -> bytes:
    raw = value.encode("utf-8")
    if len(raw) >= 128:
        raise bad_parameter(f"User principal name too long: {value!r}")
    return bytes([0x0C, len(raw)]) + raw


def _extensions(x509_props: dict[str, Any]) -> list[tuple[x509.ExtensionType, bool]]:
    extensions: list[tuple[x509.ExtensionType, bool]] = []
    san = _san_extension(x509_props.get("sans") or {})
    if san is not None:
        extensions.append((san, False))
    usages = x509_props.get("key_usage") or []
    if usages:
        unknown = [u for u in usages if u not in _KU_ATTRS]
        if unknown:
            raise bad_parameter(f"Invalid key usage {unknown}: use any of {list(KEY_USAGES)}")
        flags = {attr: name in usages for name, attr in _KU_ATTRS.items()}
        if not flags["key_agreement"]:
            # encipherOnly/decipherOnly without keyAgreement: RFC 5280 leaves them undefined (and X.509 parsers
            # such as cryptography's refuse such a certificate), but Key Vault accepts the policy (the SDK's
            # test_policy asks for decipherOnly alone). The policy keeps them; the certificate leaves them out.
            flags["encipher_only"] = flags["decipher_only"] = False
        if any(flags.values()):
            extensions.append((x509.KeyUsage(**flags), True))
    ekus = x509_props.get("ekus") or []
    if ekus:
        try:
            extensions.append((x509.ExtendedKeyUsage([ObjectIdentifier(o) for o in ekus]), False))
        except ValueError as exc:
            raise bad_parameter(f"Invalid enhanced key usage {ekus}: {exc}") from exc
    is_ca = bool((x509_props.get("basic_constraints") or {}).get("ca"))
    extensions.append((x509.BasicConstraints(ca=is_ca, path_length=None), True))
    return extensions


def _hash_for(key: PrivateKey) -> hashes.HashAlgorithm:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384() if key.curve.key_size == 384 else hashes.SHA512()
    return hashes.SHA256()


def build_csr(key: PrivateKey, x509_props: dict[str, Any]) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(parse_subject(x509_props.get("subject", "")))
    for extension, critical in _extensions(x509_props):
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(key, _hash_for(key)).public_bytes(serialization.Encoding.DER)


def self_sign(key: PrivateKey, x509_props: dict[str, Any], now: datetime) -> x509.Certificate:
    """Like Key Vault: ``nbf`` is ten minutes before now, ``exp`` is now plus ``validity_months``."""
    name = parse_subject(x509_props.get("subject", ""))
    months = int(x509_props.get("validity_months") or 12)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=10))
        .not_valid_after(add_months(now, months))
    )
    for extension, critical in _extensions(x509_props):
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(key, _hash_for(key))


def add_months(start: datetime, months: int) -> datetime:
    year, month = divmod(start.month - 1 + months, 12)
    year += start.year
    day = min(start.day, calendar.monthrange(year, month + 1)[1])
    return start.replace(year=year, month=month + 1, day=day)


def load_der_or_pem_chain(blob: bytes) -> list[x509.Certificate]:
    """One ``x5c`` element after base64: DER, PEM text (maybe several), or base64 text of a DER."""
    if blob[:1] == b"\x30":  # DER: never strip it, its last bytes may well be whitespace values
        return [x509.load_der_x509_certificate(blob)]
    stripped = blob.strip()
    if stripped.startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificates(stripped)
    return [x509.load_der_x509_certificate(base64.b64decode(stripped, validate=False))]


def parse_x5c(elements: list[Any]) -> list[x509.Certificate]:
    if not isinstance(elements, list) or not elements:
        raise bad_parameter("Property x5c is required and must be a non-empty array of certificates")
    chain: list[x509.Certificate] = []
    for element in elements:
        try:
            chain += load_der_or_pem_chain(base64.b64decode(str(element), validate=False))
        except (ValueError, binascii.Error) as exc:
            raise bad_parameter(f"The x5c element could not be parsed as an X.509 certificate: {exc}") from exc
    return chain


def load_import(value: str, password: str | None) -> tuple[PrivateKey, list[x509.Certificate]]:
    """Decode an import ``value``: base64 PKCS#12, or base64 of PEM text holding key + certificates."""
    try:
        blob = base64.b64decode(value, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise bad_parameter("Property value must be base64 of a PFX or of PEM text") from exc
    if blob.lstrip().startswith(b"-----BEGIN"):
        return _load_pem_bundle(blob, password)
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(blob, password.encode() if password else None)
    except ValueError as exc:
        raise bad_parameter(
            f"The specified PKCS#12 X509 certificate content can not be read. Please check if certificate is "
            f"in valid PKCS#12 format and the password is correct. ({exc})"
        ) from exc
    if key is None or cert is None:
        raise bad_parameter("The PKCS#12 content must contain a private key and its certificate")
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise bad_parameter("Only RSA and EC private keys can be imported")
    return key, [cert, *extra]


def _load_pem_bundle(blob: bytes, password: str | None) -> tuple[PrivateKey, list[x509.Certificate]]:
    match = re.search(rb"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----.+?-----END (?:[A-Z]+ )?PRIVATE KEY-----", blob, re.S)
    if match is None:
        raise bad_parameter("The PEM content must contain a private key and at least one certificate")
    try:
        key = serialization.load_pem_private_key(match.group(0), password.encode() if password else None)
        certs = x509.load_pem_x509_certificates(blob)
    except (ValueError, TypeError) as exc:
        raise bad_parameter(f"The PEM content could not be read: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise bad_parameter("Only RSA and EC private keys can be imported")
    leaf = next((c for c in certs if same_public_key(c, key)), None)
    if leaf is None:
        raise bad_parameter("No certificate in the PEM content matches its private key")
    return key, [leaf, *[c for c in certs if c is not leaf]]


def export_secret(key: PrivateKey | None, chain: list[x509.Certificate], *, pem: bool) -> str:
    """The certificate's secret value: unencrypted PFX (base64) or PEM text (key first)."""
    if pem:
        parts = [key_to_pem(key)] if key is not None else []
        parts += [c.public_bytes(serialization.Encoding.PEM) for c in chain]
        return b"".join(parts).decode("ascii")
    pfx = pkcs12.serialize_key_and_certificates(None, key, chain[0], chain[1:] or None, serialization.NoEncryption())
    return b64(pfx)


def describe(cert: x509.Certificate) -> dict[str, Any]:
    """The x509_props Key Vault derives from an imported certificate."""
    props: dict[str, Any] = {"subject": format_subject(cert.subject)}
    ext = cert.extensions
    try:
        props["ekus"] = [o.dotted_string for o in ext.get_extension_for_class(x509.ExtendedKeyUsage).value]
    except x509.ExtensionNotFound:
        props["ekus"] = []
    try:
        ku = ext.get_extension_for_class(x509.KeyUsage).value
        props["key_usage"] = [name for name, attr in _KU_ATTRS.items() if _ku_flag(ku, attr)]
    except x509.ExtensionNotFound:
        props["key_usage"] = []
    try:
        san = ext.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = {
            "dns_names": san.get_values_for_type(x509.DNSName),
            "emails": san.get_values_for_type(x509.RFC822Name),
            "ipAddresses": [str(ip) for ip in san.get_values_for_type(x509.IPAddress)],
            "uris": san.get_values_for_type(x509.UniformResourceIdentifier),
        }
        props["sans"] = {k: v for k, v in sans.items() if v}
    except x509.ExtensionNotFound:
        pass
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    props["validity_months"] = max(1, (end.year - start.year) * 12 + end.month - start.month)
    try:
        is_ca = ext.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    props["basic_constraints"] = {"ca": is_ca}
    return props


def _ku_flag(ku: x509.KeyUsage, attr: str) -> bool:
    try:
        return bool(getattr(ku, attr))
    except ValueError:  # encipher_only/decipher_only are undefined without keyAgreement
        return False
