"""The certificates API: create/pending/merge/import/get/update/list/delete and the secret download."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any, Protocol

from cryptography import x509

from . import DEFAULT_PENDING_VERSION, PENDING_VERSION_MODES, bundles, pki
from . import policy as policies
from .bundles import Vault
from .clock import Clock
from .errors import (
    KeyVaultError,
    Response,
    bad_parameter,
    certificate_not_found,
    deleted_not_found,
    pending_conflict,
    pending_not_found,
    secret_disabled,
    secret_not_found,
)
from .paging import page
from .store import Certificate, Pending, Store, Version, new_id

NAME_RE = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
RETRY_AFTER = "10"
PURGE_DAYS = 7
SUPPORTED_ISSUERS = ("self", "unknown")
# Key Vault's limits on tags (docs "About Azure Key Vault secrets", secret tags; the same 400 for certificates).
MAX_TAGS = 15
MAX_TAG_LENGTH = 256
# Path segments of Key Vault's own routes under /certificates (and the deleted-certificates collection):
# refused as certificate names where a certificate is created or imported.
RESERVED_NAMES = ("issuers", "contacts", "deletedcertificates")


class VersionListener(Protocol):
    def new_version(self, vault: Vault, cert: Certificate, version: Version) -> None: ...


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise bad_parameter(
            f"The request URI contains an invalid name: {name!r}. Names are 1-127 characters of 0-9, a-z, A-Z and -."
        )
    return name


def _json_object(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise bad_parameter("The request body must be a JSON object")
    return body


def check_new_name(name: str) -> str:
    """A name a certificate may be created or imported under: not one of Key Vault's own route segments."""
    check_name(name)
    if name.lower() in RESERVED_NAMES:
        raise bad_parameter(
            f"The request URI contains an invalid name: {name!r} is reserved by Key Vault's certificates API."
        )
    return name


def _tags(value: Any) -> dict[str, str] | None:
    """Tags as Key Vault takes them: at most 15, names 1-256 and values up to 256 characters (else 400)."""
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise bad_parameter("Property tags must be an object of string values")
    if len(value) > MAX_TAGS:
        raise bad_parameter(f"Property has invalid value: tags ({len(value)} given, at most {MAX_TAGS})")
    for tag, text in value.items():
        if not 1 <= len(tag) <= MAX_TAG_LENGTH or len(text) > MAX_TAG_LENGTH:
            raise bad_parameter(
                f"Property has invalid value: tags (names 1-{MAX_TAG_LENGTH} and values up to {MAX_TAG_LENGTH} "
                "characters)"
            )
    return dict(value)


def _check_request_id(name: str, pending: Pending, query: Mapping[str, str] | None) -> None:
    """``request_id`` in the query filters: another operation's id answers 404 (Key Vault's documented rule)."""
    wanted = (query or {}).get("request_id")
    if wanted is not None and wanted.lower() != pending.request_id.lower():
        raise pending_not_found(name)


class Certificates:
    """``pending_version``: what a pending manual create shows as the certificate's newest version.

    ``placeholder``: a new disabled version without a certificate (GET and the versions list return it, its
    secret answers 403 SecretDisabled), filled and enabled by the merge, removed with the pending operation.
    ``previous``: no new version until the merge; GET keeps returning the previous version.
    """

    def __init__(
        self,
        store: Store,
        clock: Clock,
        listener: VersionListener,
        pending_version: str = DEFAULT_PENDING_VERSION,
    ) -> None:
        if pending_version not in PENDING_VERSION_MODES:
            raise ValueError(f"pending_version must be one of {', '.join(PENDING_VERSION_MODES)}: {pending_version!r}")
        self._store = store
        self._clock = clock
        self._listener = listener
        self.pending_version = pending_version

    # -- lookups -----------------------------------------------------------------------------------
    def _live(self, vault: Vault, name: str) -> Certificate:
        cert = self._store.get(vault.name, check_name(name))
        if cert is None or cert.deleted is not None:
            raise certificate_not_found(name)
        return cert

    def _version(self, cert: Certificate, version: str | None) -> Version:
        found = cert.find(version) if version else cert.latest()
        if found is None:
            raise certificate_not_found(cert.name, version)
        return found

    def _pending(self, vault: Vault, name: str) -> tuple[Certificate, Pending]:
        cert = self._store.get(vault.name, check_name(name))
        if cert is None or cert.deleted is not None or cert.pending is None:
            raise pending_not_found(name)
        return cert, cert.pending

    def _not_deleted(self, vault: Vault, name: str) -> Certificate | None:
        cert = self._purge_due(vault, self._store.get(vault.name, check_name(name)))
        if cert is not None and cert.deleted is not None:
            raise KeyVaultError(
                409,
                "Conflict",
                f"Certificate {name} is currently in a deleted but recoverable state, and its name cannot be "
                "reused; in this state, the certificate can only be recovered or purged.",
            )
        return cert

    # -- create / pending / merge ------------------------------------------------------------------
    def create(self, vault: Vault, name: str, body: Any) -> Response:
        body = _json_object(body)
        check_new_name(name)
        now = self._clock.epoch()
        with self._store.lock:
            cert = self._not_deleted(vault, name)
            self._no_operation_in_progress(cert)
            if "policy" in body or cert is None:
                created = cert.policy["attributes"]["created"] if cert else None
                policy = policies.normalize(body.get("policy"), now, created=created)
            else:
                policy = cert.policy
            issuer = policy["issuer"]["name"]
            if issuer.lower() not in SUPPORTED_ISSUERS:
                raise bad_parameter(f"Issuer {issuer!r} is not configured in this emulator: use 'Self' or 'Unknown'")
            tags = _tags(body.get("tags"))
            previous = cert.latest_issued() if cert else None
            if policy["key_props"].get("reuse_key") and previous is not None:
                key_id = previous.key_id
                key = pki.key_from_pem(self._store.load_key(key_id))
            else:
                key = pki.generate_key(policy["key_props"])
                key_id = self._store.save_key(pki.key_to_pem(key))
            csr = pki.b64(pki.build_csr(key, policy["x509_props"]))
            cert = cert or Certificate(name=name, policy=policy)
            cert.policy = policy
            attributes = _json_object(body.get("attributes"))
            pending = Pending(
                request_id=new_id(),
                csr=csr,
                key_id=key_id,
                issuer=policies.issuer_view(policy),
                status_details=bundles.PENDING_DETAILS_SELF
                if issuer.lower() == "self"
                else bundles.PENDING_DETAILS_UNKNOWN,
                attributes={"enabled": bool(attributes.get("enabled", True))},
                tags=tags,
            )
            self._drop_placeholder(cert)  # a finished (cancelled) operation's placeholder is replaced
            cert.pending = pending
            headers = {
                "Location": f"{vault.base_url}/certificates/{cert.name}/pending"
                f"?api-version={vault.api_version}&request_id={pending.request_id}"
            }
            headers["Retry-After"] = RETRY_AFTER
            answer = bundles.operation(vault, cert, pending)
            if issuer.lower() == "self":
                # Signed at once; the answer still says inProgress as Key Vault's does, so the SDK's
                # poller (which only fetches the certificate after a poll) sees "completed" next.
                leaf = pki.self_sign(key, policy["x509_props"], self._clock.now())
                self._complete(vault, cert, pending, [leaf])
            else:
                if self.pending_version == "placeholder":
                    self._add_placeholder(cert, now)
                self._store.save(vault.name, cert)
            return Response(202, answer, headers)

    @staticmethod
    def _no_operation_in_progress(cert: Certificate | None) -> None:
        if cert is not None and cert.pending is not None and cert.pending.status == "inProgress":
            raise pending_conflict()

    def _add_placeholder(self, cert: Certificate, now: int) -> None:
        version = Version(
            version=new_id(),
            cer="",
            chain=[],
            key_id="",
            attributes=bundles.placeholder_attributes(cert.policy, now),
            tags={},
            content_type=cert.policy["secret_props"]["contentType"],
            placeholder=True,
        )
        cert.versions.append(version)

    @staticmethod
    def _drop_placeholder(cert: Certificate) -> None:
        cert.versions = [v for v in cert.versions if not v.placeholder]

    def _new_version(
        self, cert: Certificate, chain: list[x509.Certificate], key_id: str, enabled: bool, tags: dict[str, str]
    ) -> Version:
        now = self._clock.epoch()
        leaf = chain[0]
        placeholder = cert.placeholder()
        if placeholder is not None:  # the merge fills the pending create's placeholder version and enables it
            cert.versions.remove(placeholder)
        version = Version(
            version=placeholder.version if placeholder is not None else new_id(),
            cer=pki.b64(pki.der(leaf)),
            chain=[pki.b64(pki.der(c)) for c in chain[1:]],
            key_id=key_id,
            attributes={
                "enabled": enabled,
                "nbf": int(leaf.not_valid_before_utc.timestamp()),
                "exp": int(leaf.not_valid_after_utc.timestamp()),
                "created": placeholder.attributes["created"] if placeholder is not None else now,
                "updated": now,
            },
            tags=tags,
            content_type=cert.policy["secret_props"]["contentType"],
        )
        cert.versions.append(version)
        return version

    def _commit(self, vault: Vault, cert: Certificate, version: Version) -> None:
        self._store.save(vault.name, cert)
        self._listener.new_version(vault, cert, version)

    def _complete(self, vault: Vault, cert: Certificate, pending: Pending, chain: list[x509.Certificate]) -> Version:
        enabled = bool((pending.attributes or {}).get("enabled", True))
        version = self._new_version(cert, chain, pending.key_id, enabled, pending.tags or {})
        pending.status = "completed"
        pending.status_details = None
        pending.target = f"{vault.base_url}/certificates/{cert.name}"
        self._commit(vault, cert, version)
        return version

    def get_pending(self, vault: Vault, name: str, query: Mapping[str, str] | None = None) -> Response:
        cert, pending = self._pending(vault, name)
        _check_request_id(name, pending, query)
        headers = {"Retry-After": RETRY_AFTER} if pending.status == "inProgress" else {}
        return Response(200, bundles.operation(vault, cert, pending), headers)

    def cancel_pending(self, vault: Vault, name: str, body: Any, query: Mapping[str, str] | None = None) -> Response:
        body = _json_object(body)
        if body.get("cancellation_requested") is not True:
            raise bad_parameter("Property cancellation_requested must be true")
        with self._store.lock:
            cert, pending = self._pending(vault, name)
            _check_request_id(name, pending, query)
            if pending.status != "inProgress":
                raise bad_parameter(
                    f"Cancellation can only be requested while the operation is inProgress; it is {pending.status}."
                )
            pending.cancellation_requested = True
            answer = bundles.operation(vault, cert, pending)  # Key Vault answers before it cancels
            pending.status = "cancelled"
            self._store.save(vault.name, cert)
            return Response(200, answer)

    def delete_pending(self, vault: Vault, name: str, query: Mapping[str, str] | None = None) -> Response:
        with self._store.lock:
            cert, pending = self._pending(vault, name)
            _check_request_id(name, pending, query)
            answer = bundles.operation(vault, cert, pending)
            cert.pending = None
            self._drop_placeholder(cert)
            self._store.save(vault.name, cert)
            return Response(200, answer)

    def merge(self, vault: Vault, name: str, body: Any) -> Response:
        body = _json_object(body)
        with self._store.lock:
            cert, pending = self._pending(vault, name)
            if pending.status != "inProgress":
                raise pending_not_found(name)
            chain = pki.parse_x5c(body.get("x5c"))
            key = pki.key_from_pem(self._store.load_key(pending.key_id))
            leaf = next((c for c in chain if pki.same_public_key(c, key)), None)
            if leaf is None:
                raise bad_parameter("Public key from x509 certificate and key of this instance doesn't match")
            attributes = _json_object(body.get("attributes"))
            tags = _tags(body.get("tags"))
            if "enabled" in attributes:
                pending.attributes = {"enabled": bool(attributes["enabled"])}
            if tags is not None:
                pending.tags = tags
            version = self._complete(vault, cert, pending, [leaf, *[c for c in chain if c is not leaf]])
            location = f"{vault.base_url}/certificates/{cert.name}?api-version={vault.api_version}"
            return Response(201, bundles.certificate(vault, cert, version), {"Location": location})

    # -- import ------------------------------------------------------------------------------------
    def import_(self, vault: Vault, name: str, body: Any) -> Response:
        body = _json_object(body)
        check_new_name(name)
        tags = _tags(body.get("tags"))
        if not isinstance(body.get("value"), str):
            raise bad_parameter("Property value is required: base64 of a PFX, or of PEM text with key and certificate")
        password = body.get("pwd")
        key, chain = pki.load_import(body["value"], password if isinstance(password, str) else None)
        now = self._clock.epoch()
        with self._store.lock:
            cert = self._not_deleted(vault, name)
            self._no_operation_in_progress(cert)
            given = _json_object(body.get("policy"))
            if given or cert is None:
                described = pki.describe(chain[0])
                policy = policies.normalize({**given, "x509_props": described}, now)
                policy["x509_props"] = described
                kept = {k: v for k, v in policy["key_props"].items() if k not in ("kty", "key_size", "crv")}
                policy["key_props"] = {**kept, **pki.key_props_of(key)}
            else:
                policy = cert.policy
            cert = cert or Certificate(name=name, policy=policy)
            cert.policy = policy
            attributes = _json_object(body.get("attributes"))
            key_id = self._store.save_key(pki.key_to_pem(key))
            enabled = bool(attributes.get("enabled", True))
            self._drop_placeholder(cert)  # a finished (cancelled) operation's placeholder is not a version to keep
            version = self._new_version(cert, chain, key_id, enabled, tags or {})
            self._commit(vault, cert, version)
            return Response(200, bundles.certificate(vault, cert, version))

    # -- read / update -----------------------------------------------------------------------------
    def get(self, vault: Vault, name: str, version: str | None) -> Response:
        cert = self._live(vault, name)
        return Response(200, bundles.certificate(vault, cert, self._version(cert, version)))

    def update(self, vault: Vault, name: str, version: str | None, body: Any) -> Response:
        body = _json_object(body)
        now = self._clock.epoch()
        with self._store.lock:
            cert = self._live(vault, name)
            target = self._version(cert, version)
            attributes = _json_object(body.get("attributes"))
            tags = _tags(body.get("tags"))
            if "enabled" in attributes:
                target.attributes["enabled"] = bool(attributes["enabled"])
            if tags is not None:
                target.tags = tags
            if body.get("policy") is not None:
                cert.policy = policies.merge_update(cert.policy, body["policy"], now)
            target.attributes["updated"] = now
            self._store.save(vault.name, cert)
            return Response(200, bundles.certificate(vault, cert, target))

    def get_policy(self, vault: Vault, name: str) -> Response:
        cert = self._live(vault, name)
        return Response(200, policies.render(cert.policy, vault.base_url, cert.name))

    def update_policy(self, vault: Vault, name: str, body: Any) -> Response:
        with self._store.lock:
            cert = self._live(vault, name)
            cert.policy = policies.merge_update(cert.policy, body, self._clock.epoch())
            self._store.save(vault.name, cert)
            return Response(200, policies.render(cert.policy, vault.base_url, cert.name))

    # -- lists -------------------------------------------------------------------------------------
    def list(self, vault: Vault, query: Mapping[str, str]) -> Response:
        """``includePending=true`` adds certificates that have only a pending operation (no issued version)."""
        pending = (query.get("includePending") or "").lower() == "true"
        live = [
            c
            for c in self._store.all(vault.name)
            if c.deleted is None and (c.latest_issued() is not None or (pending and c.pending is not None))
        ]

        def render(c: Certificate) -> dict[str, Any]:
            if c.latest_issued() is None:
                return bundles.pending_only_item(vault, c)
            return bundles.item(vault, c, c.latest(), with_version=False)  # type: ignore[arg-type]

        body = page(live, lambda c: c.name.upper(), query, f"{vault.base_url}/certificates", vault.api_version, render)
        return Response(200, body)

    def list_versions(self, vault: Vault, name: str, query: Mapping[str, str]) -> Response:
        cert = self._live(vault, name)
        body = page(
            list(cert.versions),
            lambda v: v.version.upper(),
            query,
            f"{vault.base_url}/certificates/{cert.name}/versions",
            vault.api_version,
            lambda v: bundles.item(vault, cert, v, with_version=True),
        )
        return Response(200, body)

    # -- delete ------------------------------------------------------------------------------------
    def delete(self, vault: Vault, name: str) -> Response:
        now = self._clock.epoch()
        with self._store.lock:
            cert = self._live(vault, name)
            cert.deleted = {"deletedDate": now, "scheduledPurgeDate": now + PURGE_DAYS * 86400}
            self._store.save(vault.name, cert)
            return Response(200, bundles.deleted(vault, cert))

    def _purge_due(self, vault: Vault, cert: Certificate | None) -> Certificate | None:
        """Key Vault purges a deleted certificate at its scheduledPurgeDate: so does the emulated clock."""
        if cert is not None and cert.deleted is not None and self._clock.epoch() >= cert.deleted["scheduledPurgeDate"]:
            self._store.remove(vault.name, cert.name)
            return None
        return cert

    def _deleted(self, vault: Vault, name: str) -> Certificate:
        with self._store.lock:
            cert = self._purge_due(vault, self._store.get(vault.name, check_name(name)))
        if cert is None or cert.deleted is None:
            raise deleted_not_found(name)
        return cert

    def list_deleted(self, vault: Vault, query: Mapping[str, str]) -> Response:
        """Deleted, not yet purged certificates; ``includePending=true`` adds ones that had only a pending operation."""
        pending = (query.get("includePending") or "").lower() == "true"
        with self._store.lock:
            deleted = [
                c
                for c in (self._purge_due(vault, c) for c in self._store.all(vault.name))
                if c is not None and c.deleted is not None and (c.latest_issued() is not None or pending)
            ]
        body = page(
            deleted,
            lambda c: c.name.upper(),
            query,
            f"{vault.base_url}/deletedcertificates",
            vault.api_version,
            lambda c: bundles.deleted_item(vault, c),
        )
        return Response(200, body)

    def get_deleted(self, vault: Vault, name: str) -> Response:
        return Response(200, bundles.deleted(vault, self._deleted(vault, name)))

    def purge(self, vault: Vault, name: str) -> Response:
        with self._store.lock:
            cert = self._deleted(vault, name)
            self._store.remove(vault.name, cert.name)
            return Response(204)

    def recover(self, vault: Vault, name: str) -> Response:
        with self._store.lock:
            cert = self._deleted(vault, name)
            cert.deleted = None
            self._store.save(vault.name, cert)
            latest = cert.latest()
            if latest is None:
                raise certificate_not_found(name)
            return Response(200, bundles.certificate(vault, cert, latest))

    # -- secret ------------------------------------------------------------------------------------
    def secret(self, vault: Vault, name: str, version: str | None) -> Response:
        cert = self._store.get(vault.name, check_name(name))
        found = None
        if cert is not None and cert.deleted is None:
            found = cert.find(version) if version else cert.latest()
        if cert is None or found is None:
            raise secret_not_found(name, version)
        if found.placeholder or not found.attributes.get("enabled", True):
            raise secret_disabled()
        chain = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in [found.cer, *found.chain]]
        key = None
        if cert.policy["key_props"].get("exportable", True):
            key = pki.key_from_pem(self._store.load_key(found.key_id))
        value = pki.export_secret(key, chain, pem=found.content_type == policies.PEM)
        return Response(200, bundles.secret(vault, cert, found, value))
