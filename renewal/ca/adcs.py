"""AD CS web enrollment (``/certsrv``) through the ``certsrv`` client: NTLM, Kerberos, Basic or a client certificate.

The template is sent by *name* (``CertificateTemplate:<name>``), which is what web enrollment
takes. A certificate's v2 template extension only carries the template OID: with a template directory
(``renewal.ca.adcs_templates``, LDAP) the OID is looked up to its name, without one an OID profile is
refused with an explanation instead of being sent to the CA. A template with CA manager approval
answers "Certificate Pending" with a request id that ``poll`` asks about later.

What the CA says reaches the operator in its own words: a pending or denied result carries the CA's
request id and disposition message (and, for a pending one, who the CA says must approve it). A logon the
web server refuses (HTTP 401) is permanent, with what the refusal most likely means for the auth method.

Web enrollment offers no revocation: ``revoke`` answers ``AwaitingPerson`` with the ``certutil -revoke`` command a
CA officer runs, the CA named the way AD CS names it, by its certificate's CN (the leaf's issuer).
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from renewal.ca.adcs_templates import TemplateDirectory
from renewal.ca.base import (
    CA_TIMEOUT_DEFAULT,
    AwaitingPerson,
    CaConfigError,
    CaError,
    CannotWithdraw,
    CaResult,
    CaUnavailable,
    Denied,
    Issued,
    Pending,
)
from renewal.ca.per_thread import PerThread
from renewal.ca.revocation import revocation_target

AUTH_METHODS = ("ntlm", "kerberos", "basic", "cert")
_OID = re.compile(r"^\d+(\.\d+)+$")
_UNDER_SUBMISSION = re.compile(r"under submission", re.IGNORECASE)  # "Taken Under Submission"
_REQUEST_ID = re.compile(r"Your Request Id is (\d+)")
_ISSUED_LINK = re.compile(r"certnew\.cer\?ReqID=(\d+)&")  # the issued page's download link, as certsrv reads it
# The pending page: "Your certificate request has been received. However, you must wait for an administrator
# to issue the certificate you requested."
_PENDING_WORDS = re.compile(r"(Your certificate request (?:has been received|is still pending)\..*?requested\.)")
_APPROVER = re.compile(r"wait for (.+?) to issue")
_T = TypeVar("_T")


class _NoCredentialsInLogs(logging.Filter):
    """certsrv logs each request's headers at DEBUG, Authorization (Basic = the password) included."""

    _HEADER = re.compile(r"(?im)^(authorization|proxy-authorization):.*$")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_redact(self._HEADER, a) for a in record.args)
        return True


def _redact(header: re.Pattern[str], value: object) -> object:
    return header.sub(r"\1: [redacted]", value) if isinstance(value, str) else value


class AdcsAuthority(CannotWithdraw):
    name = "adcs"

    def __init__(
        self,
        server: str,
        *,
        auth_method: str = "ntlm",
        username: str | None = None,
        password: str | None = None,
        ca_bundle: str | None = None,
        timeout: float = CA_TIMEOUT_DEFAULT,
        poll_seconds: int = 3600,
        templates: TemplateDirectory | None = None,
    ) -> None:
        """``server`` is the host[:port] serving ``/certsrv`` over HTTPS. With ``auth_method="cert"``,
        ``username`` is the client certificate file and ``password`` its unencrypted key file (certsrv's
        convention). With ``kerberos`` there is no password: the process's Kerberos identity is used, ``username``
        (optional) picks its principal. ``templates`` looks up the name of a template known only by its OID;
        without it such a profile is refused."""
        problem = credentials_problem(auth_method, username, password)
        if problem:
            raise CaConfigError(problem)
        self.server = server.strip().removeprefix("https://").split("/", 1)[0]
        self._username = username or "of this process's Kerberos identity"
        self._auth = auth_method
        self._poll_seconds = poll_seconds
        self._clients = PerThread(lambda: _client(self.server, username, password, auth_method, ca_bundle, timeout))
        self._clients.get()  # a missing package or a bad setting fails at start-up, not mid-renewal
        self._chain: tuple[str, ...] | None = None
        self._templates = templates

    def submit(self, csr_pem: bytes, profile: str, replaces: str | None = None) -> CaResult:
        resolved = self._template(profile)
        if isinstance(resolved, Denied):
            return resolved
        profile = resolved  # the template name web enrollment takes
        import certsrv

        client = self._clients.get()
        client.last_page = ""
        try:
            leaf = self._call("submitting the request", client.get_cert, csr_pem.decode("ascii"), profile)
        except certsrv.CertificatePendingException as exc:
            return self._pending(str(exc.req_id), *_pending_words(client.last_page))
        except (CaError, certsrv.CouldNotRetrieveCertificateException) as exc:
            raise _naming_the_issued_request(exc, client.last_page) from None
        except certsrv.RequestDeniedException as exc:
            found = _REQUEST_ID.search(_page_text(exc.response or ""))
            request_id = found.group(1) if found else ""
            what = f"request {request_id}" if request_id else "the request"
            return Denied(f"AD CS denied {what} for template {profile!r}: {exc}", request_id, str(exc))
        return self._issued(leaf)

    def poll(self, request_id: str, csr_pem: bytes = b"") -> CaResult:
        """AD CS keeps the request under its id: ``csr_pem`` is not needed."""
        import certsrv

        if not request_id.isdigit():
            raise CaConfigError(f"{request_id!r} is not an AD CS request id (a number)")
        try:
            leaf = self._call(f"fetching request {request_id}", self._clients.get().get_existing_cert, request_id)
        except certsrv.CouldNotRetrieveCertificateException as exc:
            message = str(exc).strip()
            if _UNDER_SUBMISSION.search(message):
                return self._pending(request_id, message)
            return Denied(f"AD CS did not issue request {request_id}: {message}", request_id, message)
        return self._issued(leaf)

    def revoke(self, certificate_pem: str, reason: str) -> AwaitingPerson:
        """Only a CA officer can revoke at AD CS: the exact ``certutil`` command for this CA (checked against the CA's
        chain, so the command never names a CA that did not issue the certificate), the serial as AD CS shows it."""
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        target = revocation_target(certificate_pem, reason)
        issuers = x509.load_pem_x509_certificates("".join(self._ca_chain()).encode())
        if not any(_issued_by(target.certificate, ca) for ca in issuers):
            raise CaError(
                f"certificate {target.serial} (issuer {target.certificate.issuer.rfc4514_string()}) was not issued "
                f"by the AD CS CA at {self.server}: revoke it at the CA that issued it"
            )
        names = target.certificate.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
        ca_name = str(names[0].value) if names else "<CA name>"
        host = urlsplit(f"//{self.server}").hostname or self.server
        serial = target.serial.zfill(len(target.serial) + len(target.serial) % 2)  # whole bytes, as AD CS lists it
        return AwaitingPerson(
            target.serial, reason, f'certutil -config "{host}\\{ca_name}" -revoke {serial} {target.code}'
        )

    def _template(self, profile: str) -> str | Denied:
        """The template name to request: the profile itself, or the directory's name for a template OID."""
        problem = _template_problem(profile, resolvable=self._templates is not None)
        if problem:
            return Denied(problem)
        if self._templates is not None and _OID.match(profile.strip()):
            return self._templates.resolve(profile.strip())
        return profile

    def _pending(self, request_id: str, ca_message: str, approver: str = "") -> Pending:
        return Pending(
            request_id,
            retry_after_seconds=self._poll_seconds,
            detail=f"AD CS request {request_id} at {self.server} waits for {approver or 'a CA manager'} to approve it",
            ca_message=ca_message,
            approver=approver,
        )

    def _issued(self, leaf: bytes) -> Issued:
        return Issued((_pem(leaf), *self._ca_chain()))

    def issuer_certificates(self) -> tuple[str, ...]:
        """The CA's chain (PEM), against which its CRL's signature is checked (``renewal.revocation``)."""
        return self._ca_chain()

    def _ca_chain(self) -> tuple[str, ...]:
        """The CA chain, fetched once: the PKCS#7 from ``certnew.p7b``, root last."""
        if self._chain is None:
            import certsrv
            from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

            try:
                blob = self._call("fetching the CA chain", self._clients.get().get_chain, "bin")
                certs = pkcs7.load_der_pkcs7_certificates(blob)
            except (certsrv.CouldNotRetrieveCertificateException, ValueError) as exc:
                raise CaConfigError(f"the CA chain from {self.server} is not a PKCS#7 bundle: {exc}") from exc
            self._chain = tuple(c.public_bytes(Encoding.PEM).decode() for c in _leaf_side_first(certs))
        return self._chain

    def _call(self, what: str, method: Callable[..., _T], *args: Any) -> _T:
        """Calls certsrv, turning transport and HTTP failures into the CA errors the workflow handles."""
        import requests

        where = f"AD CS web enrollment at {self.server}"
        try:
            return method(*args)
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status in (401, 403):
                cause = _logon_refused(self._auth, exc.response) if status == 401 else _NO_PERMISSION
                raise CaConfigError(
                    f"{where} refused the account {self._username} (HTTP {status}) while {what}: {cause}"
                ) from None
            if status == 429 or status >= 500:
                raise CaUnavailable(
                    f"{where} answered HTTP {status} while {what}", _retry_after(exc.response)
                ) from None
            raise CaConfigError(
                f"{where} answered HTTP {status} while {what}: check that CERTLC_ADCS_SERVER names the host "
                "serving /certsrv"
            ) from None
        except requests.exceptions.SSLError as exc:
            raise CaConfigError(
                f"TLS to {where} failed while {what} ({exc.__class__.__name__}): set CERTLC_ADCS_CA_BUNDLE to the "
                "PEM of the CA that issued the web server's certificate"
            ) from None
        except requests.RequestException as exc:
            raise CaUnavailable(f"{where} is unreachable while {what}: {exc.__class__.__name__}") from None
        except AttributeError:  # certsrv found none of the AD CS markers it looks for in the page
            raise CaConfigError(
                f"{where} did not answer like AD CS web enrollment while {what}; check CERTLC_ADCS_SERVER"
            ) from None


def _issued_by(certificate: Any, ca: Any) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _naming_the_issued_request(exc: Exception, page: str) -> Exception:
    """certsrv submits, then downloads what the CA issued: when only the download failed, whatever the failure, the
    CA has the request, and the retry fetches it by its id rather than asking the CA for a second certificate."""
    issued = _ISSUED_LINK.search(page)
    if issued is None or (isinstance(exc, CaUnavailable) and exc.request_id):
        return exc
    request_id = issued.group(1)
    retry_after = exc.retry_after_seconds if isinstance(exc, CaUnavailable) else None
    return CaUnavailable(f"{exc}; the CA issued request {request_id}, which the retry fetches", retry_after, request_id)


def _client(server: str, username: str, password: str, auth: str, ca_bundle: str | None, timeout: float) -> Any:
    import certsrv

    logging.getLogger("certsrv").addFilter(_REDACT)
    if auth == "kerberos":
        try:
            from renewal.ca.adcs_kerberos import KerberosAuth
        except ImportError as exc:
            raise CaConfigError(
                f"Kerberos needs the kerberos extra ({exc.name} is missing): on the worker, install "
                "requirements-kerberos.txt (gssapi builds against libkrb5-dev with gcc), or use CERTLC_ADCS_AUTH=ntlm"
            ) from exc
    if auth == "ntlm":
        try:
            import requests_ntlm  # noqa: F401 - certsrv imports it lazily; fail at start-up, not mid-renewal
        except ImportError as exc:
            raise CaConfigError(
                "NTLM needs the requests-ntlm package; install it or use CERTLC_ADCS_AUTH=basic"
            ) from exc
    client = certsrv.Certsrv(server, username, password, auth_method=auth, cafile=ca_bundle, timeout=timeout)
    if auth == "kerberos":
        client.session.auth = KerberosAuth(username)  # certsrv has no Kerberos method of its own
    if ca_bundle:
        _pin_verify(client.session)
    _keep_last_page(client)
    return client


def _keep_last_page(client: Any) -> None:
    """Keeps the last page the client received (each thread has its own client): certsrv's pending exception
    carries only the request id, and the CA's own words about the request are on the page."""
    client.last_page = ""
    post = client._post

    def remembered(url: str, **kwargs: Any) -> Any:
        response = post(url, **kwargs)
        client.last_page = response.text
        return response

    client._post = remembered


def _pin_verify(session: Any) -> None:
    """Makes ``session.verify`` win: requests otherwise prefers REQUESTS_CA_BUNDLE from the environment
    over it, and would check the CA's TLS certificate against the wrong bundle. Proxies still come from
    the environment."""
    merge = session.merge_environment_settings

    def merged(url: str, proxies: Any, stream: Any, verify: Any, cert: Any) -> dict[str, Any]:
        return {**merge(url, proxies, stream, verify, cert), "verify": session.verify}

    session.merge_environment_settings = merged


def credentials_problem(auth: str, username: str | None, password: str | None) -> str | None:
    """What is wrong with the settings for this auth method: Kerberos takes no password, the others need one."""
    if auth not in AUTH_METHODS:
        return f"AD CS auth method {auth!r} is not supported: use {', '.join(AUTH_METHODS)}"
    if auth == "kerberos":
        return (
            "CERTLC_ADCS_PASSWORD is not used with Kerberos (the ticket comes from the credential cache or the "
            "client keytab, KRB5_CLIENT_KTNAME): remove it"
            if password
            else None
        )
    if not username or not password:
        return (
            "AD CS needs a username and password (for cert auth: certificate and key files); set "
            "CERTLC_ADCS_USERNAME and CERTLC_ADCS_PASSWORD"
        )
    return None


def _template_problem(profile: str, *, resolvable: bool) -> str | None:
    if not profile.strip():
        return "no AD CS template name to request: set the certificate's certlc-profile tag to the template name"
    if _OID.match(profile.strip()) and not resolvable:
        return (
            f"the certificate's template is only known by its OID {profile} (AD CS v2 template extension), and web "
            "enrollment takes the template name: set CERTLC_ADCS_LDAP_URL so certlc looks the name up in the "
            "domain's directory, or set the certificate's certlc-profile tag to the template's name (its "
            "'Template name' in the Certificate Templates console, not the display name)"
        )
    return None


_NO_PERMISSION = "check the service account, its password and its Enroll permission on the template"
_KERBEROS_REFUSED = (
    "the web server refused the Kerberos ticket after a complete handshake: its keytab does not hold the current "
    "key of HTTP/<server> (the account holding the SPN changed its password, or the SPN is registered on another "
    "account than IIS runs as: setspn -Q), or IIS's Extended Protection refused the channel binding (a "
    "TLS-terminating proxy or load balancer in between: let certlc reach IIS's own HTTPS endpoint), or the account "
    "may not use /certsrv"
)


def _logon_refused(auth: str, response: Any) -> str:
    """What a 401 most likely means, from the auth method and what the web server offers."""
    offered = response.headers.get("WWW-Authenticate", "") if response is not None else ""
    if auth not in ("ntlm", "kerberos"):
        return _NO_PERMISSION
    schemes = ("negotiate",) if auth == "kerberos" else ("ntlm", "negotiate")
    if not any(scheme in offered.lower() for scheme in schemes):
        return (
            f"the web server does not offer {'Negotiate (Kerberos)' if auth == 'kerberos' else 'NTLM'} (it offers "
            f"{offered or 'no authentication'}): enable Windows Authentication for /certsrv in IIS, or set "
            "CERTLC_ADCS_AUTH to the method it offers"
        )
    if auth == "kerberos":
        return _KERBEROS_REFUSED
    return (
        "the NTLM logon was refused: the password is wrong, or the account is locked out, disabled or expired; "
        "if the password is right, IIS's Extended Protection refused the channel binding, which is what happens "
        "when a TLS-terminating proxy or load balancer sits between certlc and the web-enrollment server (the "
        "binding covers the TLS certificate certlc sees): let certlc reach IIS's own HTTPS endpoint"
    )


def _page_text(page: str) -> str:
    """A page's words without its markup, on one line."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _pending_words(page: str) -> tuple[str, str]:
    """The CA's sentence about a request left pending, and who it says must approve it (both "" if absent)."""
    said = _PENDING_WORDS.search(_page_text(page))
    message = said.group(1) if said else ""
    approver = _APPROVER.search(message)
    return message, approver.group(1) if approver else ""


def _pem(blob: bytes) -> str:
    text = blob.decode("ascii").replace("\r\n", "\n").strip()
    return text + "\n"


def _leaf_side_first(certs: list[Any]) -> list[Any]:
    """Orders a chain from the leaf's issuer up to the root: a PKCS#7 set has no order."""
    by_subject = {c.subject: c for c in certs}
    issuers = {c.issuer for c in certs if c.issuer != c.subject}
    ordered = [next((c for c in certs if c.subject not in issuers), certs[0])]
    while (parent := by_subject.get(ordered[-1].issuer)) is not None and parent not in ordered:
        ordered.append(parent)
    return ordered + [c for c in certs if c not in ordered]


def _retry_after(response: Any) -> int | None:
    value = response.headers.get("Retry-After", "") if response is not None else ""
    return int(value) if value.isdigit() else None


_REDACT = _NoCredentialsInLogs()
