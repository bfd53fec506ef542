"""AD CS template OID → template name, read from the domain's directory over LDAP (MS-CRTD).

A certificate issued from a version-2+ template carries only the template's OID (extension
1.3.6.1.4.1.311.21.7), but web enrollment's ``CertificateTemplate:`` attribute takes the template's
name, its ``cn``. In a domain that mapping is public data: each template is a ``pKICertificateTemplate``
object under ``CN=Certificate Templates,CN=Public Key Services,CN=Services`` in the configuration naming
context, with the OID in ``msPKI-Cert-Template-OID``. Gather (one LDAP lookup, or the cache) → decide
(``template_verdict``) → act (the name, a denial, or the CA error the workflow retries or fails on).

Transport: ``ldaps://`` is LDAPS; ``ldap://`` is upgraded with StartTLS, except on a loopback host with
no CA bundle configured (a tunnel or a local directory), the only place the password may travel
without TLS. Binds: simple, NTLM (``DOMAIN\\user``) or Kerberos (SASL GSSAPI with the process's ticket, for the
SPN ``ldap/<host of the URL>``).
"""

from __future__ import annotations

import logging
import math
import re
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from renewal.ca.base import CaConfigError, CaUnavailable, Denied
from renewal.ca.kerberos_errors import explain_kerberos_failure
from renewal.clients import is_loopback_host
from renewal.trust import ca_bundle

log = logging.getLogger(__name__)

TEMPLATES_CONTAINER = "CN=Certificate Templates,CN=Public Key Services,CN=Services"
TEMPLATE_CLASS = "pKICertificateTemplate"
OID_ATTRIBUTE = "msPKI-Cert-Template-OID"
CACHE_SECONDS = 3600.0  # a template's OID never changes, but a new template can appear
BIND_METHODS = ("simple", "ntlm", "kerberos")
_SSL_ERROR = re.compile(r"\[SSL: [A-Z_]+\][^'\"()]*")
Transport = Literal["ldaps", "starttls", "plain"]


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    transport: Transport


@dataclass(frozen=True)
class DirectorySettings:
    """Where and how to read the Certificate Templates container; ``base`` is the configuration naming
    context (discovered from the RootDSE when ``None``)."""

    url: str
    bind: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    base: str | None = None
    ca_bundle: str | None = None
    timeout: float = 30.0


# --- gather: what one lookup found ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    name: str  # cn: the "Template name" web enrollment takes
    display_name: str


@dataclass(frozen=True)
class NotFound:
    searched: str  # the container, and the directory it is in


@dataclass(frozen=True)
class Unreachable:
    detail: str


@dataclass(frozen=True)
class Refused:
    detail: str  # bad credentials, TLS, or a directory that does not look like AD's


Lookup = Found | NotFound | Unreachable | Refused


# --- decide ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateVerdict:
    outcome: Literal["submit", "denied", "unavailable", "misconfigured"]
    reason: str
    message: str
    name: str | None = None


def template_verdict(oid: str, lookup: Lookup) -> TemplateVerdict:
    """What the lookup of ``oid`` means for the renewal."""
    if isinstance(lookup, Found):
        return TemplateVerdict(
            "submit",
            "template_found",
            f"template OID {oid} is {lookup.name!r} ({lookup.display_name or 'no display name'})",
            lookup.name,
        )
    if isinstance(lookup, NotFound):
        return TemplateVerdict(
            "denied",
            "template_unknown",
            f"no AD CS certificate template has the OID {oid} in {lookup.searched}: the template may have been "
            "deleted, or the certificate came from another forest; set the certificate's certlc-profile tag to "
            "the template name to request (it overrides the template recorded in the certificate)",
        )
    if isinstance(lookup, Unreachable):
        return TemplateVerdict(
            "unavailable",
            "directory_unreachable",
            f"cannot look up the name of AD CS template OID {oid}: {lookup.detail}",
        )
    return TemplateVerdict(
        "misconfigured", "directory_refused", f"cannot look up the name of AD CS template OID {oid}: {lookup.detail}"
    )


def kerberos_bind_failure(where: str, host: str, error: str) -> Unreachable | Refused:
    """A GSSAPI failure before the directory saw the bind: a KDC out of reach is transient, anything else is this
    worker's Kerberos setup and does not mend by retrying."""
    failure = explain_kerberos_failure(error, spn=f"ldap/{host}", setting="CERTLC_ADCS_LDAP_URL")
    if failure.transient:
        return Unreachable(f"the KDC is unreachable for the Kerberos bind to {where} ({failure.cause})")
    explained = f": {failure.hint}" if failure.hint else ""
    return Refused(
        f"the Kerberos (SASL GSSAPI) bind to {where} failed before the directory was asked: {failure.cause}{explained}"
    )


def endpoint(url: str, *, has_ca_bundle: bool) -> Endpoint:
    """``CERTLC_ADCS_LDAP_URL`` → host, port and transport; plain LDAP only on loopback without a CA bundle."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("ldaps", "ldap") or not parts.hostname or parts.path.strip("/"):
        raise CaConfigError(
            f"CERTLC_ADCS_LDAP_URL={url!r} is not an LDAP server URL: use ldaps://dc.corp.example:636 or "
            "ldap://dc.corp.example:389 (StartTLS)"
        )
    try:
        port = parts.port or (636 if scheme == "ldaps" else 389)
    except ValueError:
        raise CaConfigError(f"CERTLC_ADCS_LDAP_URL={url!r} has an invalid port") from None
    if scheme == "ldaps":
        return Endpoint(parts.hostname, port, "ldaps")
    plain = is_loopback_host(parts.hostname) and not has_ca_bundle
    return Endpoint(parts.hostname, port, "plain" if plain else "starttls")


def bind_method(forced: str, username: str | None) -> str:
    """``CERTLC_ADCS_LDAP_AUTH`` when set, else from the account's form: ``DOMAIN\\user`` → NTLM,
    ``user@domain`` or a DN → simple, no account → Kerberos."""
    forced = forced.strip().lower()
    if forced:
        if forced not in BIND_METHODS:
            raise CaConfigError(f"CERTLC_ADCS_LDAP_AUTH={forced!r} is not one of {', '.join(BIND_METHODS)}")
        return forced
    if not username:
        return "kerberos"
    if "\\" in username:
        return "ntlm"
    if "@" in username or "=" in username:
        return "simple"
    raise CaConfigError(
        f"cannot tell how to bind to the directory as {username!r}: use DOMAIN\\user (NTLM), user@domain or a DN "
        "(simple bind) in CERTLC_ADCS_USERNAME, or set CERTLC_ADCS_LDAP_AUTH"
    )


def template_directory_from_env(env: Mapping[str, str], timeout: float) -> TemplateDirectory | None:
    """The template directory from app settings, or ``None`` without ``CERTLC_ADCS_LDAP_URL`` (OIDs are then
    refused). ``timeout`` (``CERTLC_CA_TIMEOUT``) bounds the connect and each LDAP operation."""
    url = env.get("CERTLC_ADCS_LDAP_URL", "").strip()
    if not url:
        return None
    username = env.get("CERTLC_ADCS_USERNAME", "").strip() or None
    bind = bind_method(env.get("CERTLC_ADCS_LDAP_AUTH", ""), username)
    bundle = ca_bundle(env, "CERTLC_ADCS_LDAP_CA_BUNDLE", CaConfigError) or ca_bundle(
        env, "CERTLC_ADCS_CA_BUNDLE", CaConfigError
    )
    settings = DirectorySettings(
        url,
        bind,
        username=username if bind != "kerberos" else None,
        password=(env.get("CERTLC_ADCS_PASSWORD") or None) if bind != "kerberos" else None,
        base=env.get("CERTLC_ADCS_LDAP_BASE", "").strip() or None,
        ca_bundle=bundle,
        timeout=timeout,
    )
    if bind != "kerberos" and not (settings.username and settings.password):
        raise CaConfigError(
            f"a {bind} bind to {url} needs CERTLC_ADCS_USERNAME and CERTLC_ADCS_PASSWORD "
            "(or CERTLC_ADCS_LDAP_AUTH=kerberos to bind with the worker's Kerberos ticket)"
        )
    return TemplateDirectory(settings)  # checks the URL: a bad one fails at start-up, not mid-renewal


# --- act ---------------------------------------------------------------------------------------------------------


class TemplateDirectory:
    """Resolves template OIDs to names, caching each name found for ``CACHE_SECONDS`` in this process."""

    def __init__(self, settings: DirectorySettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._endpoint = endpoint(settings.url, has_ca_bundle=settings.ca_bundle is not None)
        if settings.bind == "kerberos":
            _require_gssapi()
        self._clock = clock
        self._names: dict[str, tuple[float, Found]] = {}
        self._lock = threading.Lock()

    def resolve(self, oid: str) -> str | Denied:
        """The template name for ``oid``, a ``Denied`` for an OID the directory does not know; raises
        ``CaUnavailable`` (retried) when the directory cannot be reached, ``CaConfigError`` when it refuses."""
        verdict = template_verdict(oid, self.lookup(oid))
        if verdict.outcome == "submit":
            assert verdict.name is not None
            log.info("%s", verdict.message)
            return verdict.name
        if verdict.outcome == "denied":
            return Denied(verdict.message)
        if verdict.outcome == "unavailable":
            raise CaUnavailable(verdict.message)
        raise CaConfigError(verdict.message)

    def lookup(self, oid: str) -> Lookup:
        """The cached name while it is fresh, else one search of the directory."""
        now = self._clock()
        with self._lock:
            cached = self._names.get(oid)
        if cached and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        found = self._search(oid)
        if isinstance(found, Found):
            with self._lock:
                self._names[oid] = (now, found)
        return found

    def _search(self, oid: str) -> Lookup:
        import ldap3
        from ldap3.core import exceptions as errors
        from ldap3.utils.conv import escape_filter_chars

        where = f"the directory at {self.settings.url}"
        try:
            connection = self._connect()
        except ssl.SSLError as exc:
            return Refused(_tls_problem(where, exc))
        except (errors.LDAPSocketOpenError, errors.LDAPSocketReceiveError, errors.LDAPResponseTimeoutError) as exc:
            if isinstance(exc, ssl.SSLError) or isinstance(exc.__context__, ssl.SSLError):
                return Refused(_tls_problem(where, exc))
            return Unreachable(f"{where} is unreachable ({_first_line(exc)})")
        except errors.LDAPStartTLSError as exc:
            return Refused(f"StartTLS with {where} failed ({_first_line(exc)}); use ldaps:// or enable StartTLS")
        except errors.LDAPException as exc:
            return Refused(f"{where} refused the connection ({_first_line(exc)})")
        try:
            if not connection.bind():
                return Refused(self._bind_problem(where, connection.result))
            base = self.settings.base or _configuration_nc(connection)
            if not base:
                return Refused(
                    f"{where} has no configurationNamingContext in its RootDSE; set CERTLC_ADCS_LDAP_BASE to the "
                    "forest's configuration naming context (CN=Configuration,DC=...)"
                )
            container = f"{TEMPLATES_CONTAINER},{base}"
            query = f"(&(objectClass={TEMPLATE_CLASS})({OID_ATTRIBUTE}={escape_filter_chars(oid)}))"
            connection.search(container, query, ldap3.SUBTREE, attributes=["cn", "displayName"], size_limit=2)
            entries = [e for e in connection.response or () if e.get("type") == "searchResEntry"]
            if connection.result.get("description") == "noSuchObject" or not entries:
                return NotFound(f"{container} at {self.settings.url}")
            attributes = entries[0]["attributes"]
            return Found(_single(attributes.get("cn")), _single(attributes.get("displayName")))
        except (errors.LDAPSocketReceiveError, errors.LDAPResponseTimeoutError, errors.LDAPSocketSendError) as exc:
            return Unreachable(f"{where} stopped answering ({_first_line(exc)})")
        except errors.LDAPException as exc:
            return Refused(f"{where} refused the lookup ({_first_line(exc)})")
        except _kerberos_errors(self.settings.bind) as exc:
            return kerberos_bind_failure(where, self._endpoint.host, str(exc))
        finally:
            connection.unbind()

    def _connect(self) -> Any:
        """An open connection, upgraded with StartTLS when the endpoint asks for it; not bound yet."""
        import ldap3

        s, e = self.settings, self._endpoint
        seconds = max(1, math.ceil(s.timeout))  # ldap3 packs the receive timeout into a socket option: whole seconds
        tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=s.ca_bundle)
        server = ldap3.Server(
            e.host, port=e.port, use_ssl=e.transport == "ldaps", tls=tls, connect_timeout=seconds, get_info=ldap3.NONE
        )
        options: dict[str, Any] = {"user": s.username, "password": s.password}
        if s.bind == "ntlm":
            options["authentication"] = ldap3.NTLM
        elif s.bind == "kerberos":
            options = {"authentication": ldap3.SASL, "sasl_mechanism": ldap3.KERBEROS}
        connection = ldap3.Connection(
            server, receive_timeout=seconds, read_only=True, raise_exceptions=False, **options
        )
        connection.open()
        if e.transport == "starttls" and not connection.start_tls():
            connection.unbind()
            from ldap3.core.exceptions import LDAPStartTLSError

            raise LDAPStartTLSError(connection.result.get("description") or connection.last_error or "refused")
        return connection

    def _bind_problem(self, where: str, result: Mapping[str, Any]) -> str:
        description = result.get("description") or "refused"
        if self.settings.bind == "kerberos":
            return (
                f"{where} refused the kerberos bind as the process's Kerberos identity ({description}): the "
                "directory must know the ticket's principal (klist) as an account"
            )
        return (
            f"{where} refused the {self.settings.bind} bind as {self.settings.username} ({description}): check "
            "CERTLC_ADCS_USERNAME and CERTLC_ADCS_PASSWORD (or CERTLC_ADCS_LDAP_AUTH)"
        )


def _configuration_nc(connection: Any) -> str | None:
    import ldap3

    connection.search("", "(objectClass=*)", ldap3.BASE, attributes=["configurationNamingContext"])
    entries = [e for e in connection.response or () if e.get("type") == "searchResEntry"]
    if not entries:
        return None
    return _single(entries[0]["attributes"].get("configurationNamingContext")) or None


def _require_gssapi() -> None:
    try:
        import gssapi  # noqa: F401 - ldap3 imports it lazily, in the middle of the bind
    except ImportError as exc:
        raise CaConfigError(
            "a Kerberos bind to the directory needs the gssapi package (pip install gssapi, which builds against "
            "MIT Kerberos); or bind with an account: CERTLC_ADCS_USERNAME and CERTLC_ADCS_PASSWORD"
        ) from exc


def _kerberos_errors(bind: str) -> tuple[type[Exception], ...]:
    """GSSAPI's errors, which ldap3 lets out of a Kerberos bind; none for other binds (they need no gssapi)."""
    if bind != "kerberos":
        return ()
    from gssapi.exceptions import GSSError

    return (GSSError,)


def _tls_problem(where: str, exc: BaseException) -> str:
    return (
        f"TLS with {where} failed ({_first_line(exc)}): set CERTLC_ADCS_LDAP_CA_BUNDLE to the PEM of the CA that "
        "issued the domain controller's certificate, and name the host as that certificate does"
    )


def _first_line(exc: BaseException) -> str:
    """The error without ldap3's nesting of tuples and reprs around it."""
    text = str(exc)
    tls = _SSL_ERROR.search(text)
    core = tls.group(0).strip() if tls else text.strip("()[]'\", ").splitlines()[0] if text.strip() else ""
    return f"{type(exc).__name__}: {core}" if core else type(exc).__name__


def _single(value: Any) -> str:
    if isinstance(value, list | tuple):
        return str(value[0]) if value else ""
    return "" if value is None else str(value)
