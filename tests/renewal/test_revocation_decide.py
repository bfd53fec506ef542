"""The revocation decisions, pure: every way an OCSP response or a CRL can be good, revoked or untrustworthy.

Also home of the test PKI that tests/renewal/test_revocation.py serves over http: real keys and signatures from
cryptography, a root, delegated OCSP responders, impostors with the root's name, and leaves pointing anywhere.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from renewal.revocation.crl import status_from_crl
from renewal.revocation.issuer import certificates_in, pick_issuer
from renewal.revocation.ocsp import ocsp_request, status_from_ocsp
from renewal.revocation.status import Problem, RevocationStatus, Source, nothing_to_ask, where_to_ask

NOW = dt.datetime(2030, 6, 1, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
REVOKED_AT = dt.datetime(2030, 5, 20, 8, 30, tzinfo=dt.UTC)
OCSP_URL = "http://ocsp.test/ocsp"
CRL_URL = "http://crl.test/ca.crl"
Revocation = tuple[dt.datetime, x509.ReasonFlags | None]


def name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@dataclass
class Pki:
    """A CA: its key and self-signed certificate; issues leaves and responders, signs OCSP responses and CRLs."""

    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    cert: x509.Certificate

    @classmethod
    def root(cls, common_name: str = "certlc test root", rsa_key: bool = False) -> Pki:
        key = rsa.generate_private_key(65537, 2048) if rsa_key else ec.generate_private_key(ec.SECP256R1())
        builder = _builder(name(common_name), name(common_name), key.public_key(), NOW - 365 * 24 * HOUR)
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        return cls(key, builder.sign(key, hashes.SHA256()))

    def leaf(
        self,
        ocsp_urls: Sequence[str] = (),
        crl_urls: Sequence[str] = (),
        ca_issuers: Sequence[str] = (),
        serial: int | None = None,
    ) -> x509.Certificate:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = _builder(name("www.certlc.test"), self.cert.subject, key.public_key(), NOW - 24 * HOUR, serial)
        access = [_access(AuthorityInformationAccessOID.OCSP, url) for url in ocsp_urls]
        access += [_access(AuthorityInformationAccessOID.CA_ISSUERS, url) for url in ca_issuers]
        if access:
            builder = builder.add_extension(x509.AuthorityInformationAccess(access), critical=False)
        if crl_urls:
            points = [
                x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None) for url in crl_urls
            ]
            builder = builder.add_extension(x509.CRLDistributionPoints(points), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def responder(self, ocsp_signing: bool = True, days: float = 30) -> Pki:
        """A delegated OCSP responder this CA certified (with id-kp-OCSPSigning unless told otherwise)."""
        key = ec.generate_private_key(ec.SECP256R1())
        not_after = NOW + dt.timedelta(days=days)
        builder = _builder(
            name("certlc test OCSP responder"), self.cert.subject, key.public_key(), NOW - 24 * HOUR, None, not_after
        )
        usage = ExtendedKeyUsageOID.OCSP_SIGNING if ocsp_signing else ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        return Pki(key, builder.sign(self.key, hashes.SHA256()))

    def ocsp_response(
        self,
        cert: x509.Certificate,
        status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
        revoked: Revocation | None = None,
        this_update: dt.datetime = NOW,
        next_update: dt.datetime | None = NOW + HOUR,
        signer: Pki | None = None,
        by_name: bool = False,
        include: Sequence[x509.Certificate] = (),
        algorithm: hashes.HashAlgorithm | None = None,
    ) -> bytes:
        """This CA's answer about ``cert`` (by its id in ``algorithm``), signed by ``signer`` (the CA itself)."""
        request = ocsp.load_der_ocsp_request(ocsp_request(cert, self.cert))
        if algorithm is not None:
            request = ocsp.OCSPRequestBuilder().add_certificate(cert, self.cert, algorithm).build()
        return self.answer(request, status, revoked, this_update, next_update, signer, by_name, include)

    def answer(
        self,
        request: ocsp.OCSPRequest,
        status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
        revoked: Revocation | None = None,
        this_update: dt.datetime = NOW,
        next_update: dt.datetime | None = NOW + HOUR,
        signer: Pki | None = None,
        by_name: bool = False,
        include: Sequence[x509.Certificate] = (),
    ) -> bytes:
        """The response to an OCSP request, as a responder builds it from the request's certificate id."""
        if revoked is not None:
            status = ocsp.OCSPCertStatus.REVOKED
        signer = signer or self
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            request.issuer_name_hash,
            request.issuer_key_hash,
            request.serial_number,
            request.hash_algorithm,
            status,
            this_update,
            next_update,
            revoked[0] if revoked else None,
            revoked[1] if revoked else None,
        )
        encoding = ocsp.OCSPResponderEncoding.NAME if by_name else ocsp.OCSPResponderEncoding.HASH
        builder = builder.responder_id(encoding, signer.cert)
        if include:
            builder = builder.certificates(list(include))
        return builder.sign(signer.key, hashes.SHA256()).public_bytes(Encoding.DER)

    def crl(
        self,
        revoked: dict[int, Revocation] | None = None,
        last_update: dt.datetime = NOW,
        next_update: dt.datetime = NOW + 24 * HOUR,
        signer: Pki | None = None,
        extensions: Sequence[x509.ExtensionType] = (),
        encoding: Encoding = Encoding.DER,
    ) -> bytes:
        """This CA's CRL listing ``revoked`` (serial → date, reason), signed by ``signer`` (the CA itself)."""
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(last_update)
            .next_update(next_update)
        )
        for serial, (when, reason) in (revoked or {}).items():
            entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
            if reason is not None:
                entry = entry.add_extension(x509.CRLReason(reason), critical=False)
            builder = builder.add_revoked_certificate(entry.build())
        for extension in extensions:
            builder = builder.add_extension(extension, critical=True)
        return builder.sign((signer or self).key, hashes.SHA256()).public_bytes(encoding)

    def impostor(self) -> Pki:
        """A CA with this one's name and another key: what a forger would sign with."""
        return Pki.root(self.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: object,
    not_before: dt.datetime,
    serial: int | None = None,
    not_after: dt.datetime = NOW + 5 * 365 * 24 * HOUR,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )


def _access(method: x509.ObjectIdentifier, url: str) -> x509.AccessDescription:
    return x509.AccessDescription(method, x509.UniformResourceIdentifier(url))


ROOT = Pki.root()
RSA_ROOT = Pki.root("certlc RSA root", rsa_key=True)
OTHER = Pki.root("another CA")
IMPOSTOR = ROOT.impostor()
LEAF = ROOT.leaf([OCSP_URL], [CRL_URL])
RSA_LEAF = RSA_ROOT.leaf([OCSP_URL], [CRL_URL])
NEIGHBOUR = ROOT.leaf([OCSP_URL], [CRL_URL])  # same CA, another serial
RESPONDER = ROOT.responder()
KEY_COMPROMISE = (REVOKED_AT, x509.ReasonFlags.key_compromise)


def by_ocsp(response: bytes, cert: x509.Certificate = LEAF, issuer: Pki = ROOT, now: dt.datetime = NOW):
    return lambda: status_from_ocsp(response, cert, issuer.cert, now, OCSP_URL)


def by_crl(crl: bytes, cert: x509.Certificate = LEAF, issuer: Pki = ROOT, now: dt.datetime = NOW):
    return lambda: status_from_crl(crl, cert, issuer.cert, now, CRL_URL)


# (what it is, the decision, state, reason or problem)
TABLE: list[tuple[str, Callable[[], RevocationStatus], str, str | None]] = [
    ("ocsp: good, signed by the issuer", by_ocsp(ROOT.ocsp_response(LEAF)), "good", None),
    ("ocsp: good, responder named by name", by_ocsp(ROOT.ocsp_response(LEAF, by_name=True)), "good", None),
    ("ocsp: RSA issuer", by_ocsp(RSA_ROOT.ocsp_response(RSA_LEAF), RSA_LEAF, RSA_ROOT), "good", None),
    ("ocsp: certificate id in SHA-256", by_ocsp(ROOT.ocsp_response(LEAF, algorithm=hashes.SHA256())), "good", None),
    ("ocsp: revoked", by_ocsp(ROOT.ocsp_response(LEAF, revoked=KEY_COMPROMISE)), "revoked", "keyCompromise"),
    ("ocsp: revoked, no reason", by_ocsp(ROOT.ocsp_response(LEAF, revoked=(REVOKED_AT, None))), "revoked", None),
    (
        "ocsp: delegated responder",
        by_ocsp(ROOT.ocsp_response(LEAF, signer=RESPONDER, include=[RESPONDER.cert])),
        "good",
        None,
    ),
    (
        "ocsp: delegated responder without id-kp-OCSPSigning",
        by_ocsp(ROOT.ocsp_response(LEAF, signer=(r := ROOT.responder(ocsp_signing=False)), include=[r.cert])),
        "unknown",
        Problem.UNAUTHORIZED,
    ),
    (
        "ocsp: delegated responder expired",
        by_ocsp(ROOT.ocsp_response(LEAF, signer=(r := ROOT.responder(days=-0.5)), include=[r.cert])),
        "unknown",
        Problem.UNAUTHORIZED,
    ),
    (
        "ocsp: responder another CA certified",
        by_ocsp(ROOT.ocsp_response(LEAF, signer=(r := OTHER.responder()), include=[r.cert])),
        "unknown",
        Problem.UNAUTHORIZED,
    ),
    (
        "ocsp: delegated responder not included",
        by_ocsp(ROOT.ocsp_response(LEAF, signer=RESPONDER)),
        "unknown",
        Problem.UNAUTHORIZED,
    ),
    (
        "ocsp: an impostor with the issuer's name includes itself",
        by_ocsp(ROOT.ocsp_response(LEAF, signer=IMPOSTOR, by_name=True, include=[IMPOSTOR.cert])),
        "unknown",
        Problem.BAD_SIGNATURE,
    ),
    (
        "ocsp: an impostor with the issuer's name",
        by_ocsp(ROOT.ocsp_response(LEAF, signer=IMPOSTOR, by_name=True)),
        "unknown",
        Problem.BAD_SIGNATURE,
    ),
    ("ocsp: about another certificate", by_ocsp(ROOT.ocsp_response(NEIGHBOUR)), "unknown", Problem.WRONG_CERTIFICATE),
    (
        "ocsp: the responder does not know it",
        by_ocsp(ROOT.ocsp_response(LEAF, ocsp.OCSPCertStatus.UNKNOWN)),
        "unknown",
        Problem.NOT_KNOWN,
    ),
    (
        "ocsp: unauthorized",
        by_ocsp(
            ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(Encoding.DER)
        ),
        "unknown",
        Problem.REFUSED,
    ),
    ("ocsp: not a response", by_ocsp(b"<html>captive portal</html>"), "unknown", Problem.MALFORMED),
    ("ocsp: past nextUpdate", by_ocsp(ROOT.ocsp_response(LEAF, next_update=NOW)), "unknown", Problem.STALE),
    (
        "ocsp: thisUpdate ahead beyond the skew",
        by_ocsp(ROOT.ocsp_response(LEAF, this_update=NOW + dt.timedelta(minutes=6), next_update=NOW + 2 * HOUR)),
        "unknown",
        Problem.STALE,
    ),
    (
        "ocsp: thisUpdate ahead within the skew",
        by_ocsp(ROOT.ocsp_response(LEAF, this_update=NOW + dt.timedelta(minutes=4))),
        "good",
        None,
    ),
    ("ocsp: no nextUpdate", by_ocsp(ROOT.ocsp_response(LEAF, next_update=None)), "good", None),
    ("crl: not listed", by_crl(ROOT.crl({NEIGHBOUR.serial_number: KEY_COMPROMISE})), "good", None),
    ("crl: listed", by_crl(ROOT.crl({LEAF.serial_number: KEY_COMPROMISE})), "revoked", "keyCompromise"),
    (
        "crl: listed on hold",
        by_crl(ROOT.crl({LEAF.serial_number: (REVOKED_AT, x509.ReasonFlags.certificate_hold)})),
        "revoked",
        "certificateHold",
    ),
    ("crl: listed, no reason", by_crl(ROOT.crl({LEAF.serial_number: (REVOKED_AT, None)})), "revoked", None),
    (
        "crl: PEM",
        by_crl(ROOT.crl({LEAF.serial_number: KEY_COMPROMISE}, encoding=Encoding.PEM)),
        "revoked",
        "keyCompromise",
    ),
    ("crl: RSA issuer", by_crl(RSA_ROOT.crl(), RSA_LEAF, RSA_ROOT), "good", None),
    ("crl: another CA's", by_crl(OTHER.crl()), "unknown", Problem.WRONG_ISSUER),
    ("crl: forged with the issuer's name", by_crl(IMPOSTOR.crl()), "unknown", Problem.BAD_SIGNATURE),
    ("crl: signed by the responder, not the CA", by_crl(ROOT.crl(signer=RESPONDER)), "unknown", Problem.BAD_SIGNATURE),
    (
        "crl: past nextUpdate",
        by_crl(ROOT.crl(last_update=NOW - 48 * HOUR, next_update=NOW - HOUR)),
        "unknown",
        Problem.STALE,
    ),
    (
        "crl: from the future",
        by_crl(ROOT.crl(last_update=NOW + HOUR, next_update=NOW + 48 * HOUR)),
        "unknown",
        Problem.STALE,
    ),
    ("crl: delta", by_crl(ROOT.crl(extensions=[x509.DeltaCRLIndicator(1)])), "unknown", Problem.PARTIAL),
    (
        "crl: CA certificates only",
        by_crl(ROOT.crl(extensions=[x509.IssuingDistributionPoint(None, None, False, True, None, False, False)])),
        "unknown",
        Problem.PARTIAL,
    ),
    ("crl: not a CRL", by_crl(b"\x30\x03\x02\x01\x00"), "unknown", Problem.MALFORMED),
]


@pytest.mark.parametrize(("what", "decision", "state", "expected"), TABLE, ids=[row[0] for row in TABLE])
def test_decisions(what, decision, state, expected):
    status = decision()
    assert status.state == state, status.detail
    assert status.detail
    if state == "unknown":
        assert (status.problem, status.reason, status.next_update) == (expected, None, None), status.detail
    else:
        assert (status.reason, status.problem) == (expected, None)
    assert status.checked_at == NOW
    assert status.source == (f"OCSP {OCSP_URL}" if what.startswith("ocsp") else f"CRL {CRL_URL}")


def test_the_table_reaches_every_problem_it_can():
    """A problem no row reaches is a check nobody tested; the rest need the network (test_revocation.py)."""
    reached = {row[3] for row in TABLE}
    network = {Problem.NO_SOURCE, Problem.NO_ISSUER, Problem.UNREACHABLE, Problem.LIMIT}
    assert set(Problem) - reached - network == set()


def test_a_revocation_carries_its_date_and_when_to_ask_again():
    ocsp_answer = by_ocsp(ROOT.ocsp_response(LEAF, revoked=KEY_COMPROMISE))()
    crl_answer = by_crl(ROOT.crl({LEAF.serial_number: KEY_COMPROMISE}))()
    assert (ocsp_answer.revoked_at, ocsp_answer.next_update) == (REVOKED_AT, NOW + HOUR)
    assert (crl_answer.revoked_at, crl_answer.next_update) == (REVOKED_AT, NOW + 24 * HOUR)
    assert ocsp_answer.detail == crl_answer.detail == "revoked on 2030-05-20 08:30 UTC (keyCompromise)"


def test_a_forged_answer_says_whose_key_failed():
    status = by_ocsp(ROOT.ocsp_response(LEAF, signer=IMPOSTOR, by_name=True))()
    assert "does not verify with the key of CN=certlc test root" in status.detail
    delegated = by_ocsp(ROOT.ocsp_response(LEAF, signer=(r := ROOT.responder(ocsp_signing=False)), include=[r.cert]))()
    assert "id-kp-OCSPSigning" in delegated.detail


@pytest.mark.parametrize(
    ("ocsp_urls", "crl_urls", "expected"),
    [
        ([OCSP_URL], [CRL_URL], [Source("ocsp", OCSP_URL), Source("crl", CRL_URL)]),
        ([], [CRL_URL, "http://crl2.test/b.crl"], [Source("crl", CRL_URL), Source("crl", "http://crl2.test/b.crl")]),
        (["https://ocsp.test/"], ["ldap:///CN=ca,CN=CDP?certificateRevocationList", CRL_URL], [Source("crl", CRL_URL)]),
        (["HTTP://OCSP.TEST/"], [], [Source("ocsp", "HTTP://OCSP.TEST/")]),
        ([], [], []),
    ],
)
def test_where_to_ask_is_http_ocsp_then_http_crls(ocsp_urls, crl_urls, expected):
    assert where_to_ask(ROOT.leaf(ocsp_urls, crl_urls, ca_issuers=["http://ca.test/ca.crt"])) == expected


def test_with_nothing_to_ask_the_answer_says_what_the_certificate_names():
    bare = nothing_to_ask(ROOT.leaf(), NOW)
    assert (bare.state, bare.problem) == ("unknown", Problem.NO_SOURCE)
    assert bare.source == "none: the certificate names no OCSP responder and no CRL"
    https_only = nothing_to_ask(ROOT.leaf(["https://ocsp.test/"], ["ldap:///CN=cdp"]), NOW)
    assert "OCSP https://ocsp.test/, CRL ldap:///CN=cdp" in https_only.detail and "http only" in https_only.detail
    assert str(Source("ocsp", OCSP_URL)) == f"OCSP {OCSP_URL}"


def test_the_issuer_is_the_candidate_whose_key_signed_the_leaf():
    assert pick_issuer(LEAF, [OTHER.cert, IMPOSTOR.cert, ROOT.cert]) == ROOT.cert
    assert pick_issuer(LEAF, [IMPOSTOR.cert, OTHER.cert]) is None  # same name is not enough
    assert pick_issuer(LEAF, []) is None


@pytest.mark.parametrize(
    "body",
    [
        ROOT.cert.public_bytes(Encoding.DER),
        ROOT.cert.public_bytes(Encoding.PEM),
        OTHER.cert.public_bytes(Encoding.PEM) + ROOT.cert.public_bytes(Encoding.PEM),
        pkcs7.serialize_certificates([OTHER.cert, ROOT.cert], Encoding.DER),
        pkcs7.serialize_certificates([OTHER.cert, ROOT.cert], Encoding.PEM),
    ],
    ids=["der", "pem", "pem-bundle", "p7c-der", "p7c-pem"],
)
def test_ca_issuers_bodies_in_every_format_cas_publish(body):
    assert pick_issuer(LEAF, certificates_in(body)) == ROOT.cert


def test_a_ca_issuers_body_that_is_no_certificate_is_an_error():
    with pytest.raises(ValueError):
        certificates_in(b"<html>not found</html>")
