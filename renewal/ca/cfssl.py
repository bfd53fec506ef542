"""CFSSL remote signer (``cfssl serve`` or multirootca): ``/api/v1/cfssl/sign``, or ``authsign`` with HMAC.

cfssl signs or refuses at once, so nothing is ever pending. It silently signs with its default
policy when asked for a profile it does not have; this adapter refuses that instead, checking the
profile against the configured list or, without one, against what ``/api/v1/cfssl/info`` reports.

``revoke`` marks the certificate in cfssl's certificate database, so ``cfssl serve`` needs ``-db-config``; cfssl
publishes the revocation through the OCSP responses ``cfssl ocsprefresh`` signs from that database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Collection
from typing import Any

from renewal.ca.base import (
    CA_TIMEOUT_DEFAULT,
    CaConfigError,
    CaError,
    CannotWithdraw,
    CaResult,
    CaUnavailable,
    Denied,
    Issued,
    RevocationResult,
    Revoked,
)
from renewal.ca.revocation import revocation_target

API = "/api/v1/cfssl"
RECORD_NOT_FOUND = 11200  # cfssl's CertStoreError + RecordNotFound: no row for that serial and AKI


class CfsslAuthority(CannotWithdraw):
    name = "cfssl"

    def __init__(
        self,
        url: str,
        *,
        profile_default: str | None = None,
        profiles: Collection[str] | None = None,
        ca_bundle: str | None = None,
        timeout: float = CA_TIMEOUT_DEFAULT,
        auth_key: str | None = None,
    ) -> None:
        """``auth_key`` is the hex HMAC key of cfssl's ``auth_keys`` (type ``standard``)."""
        self.url = url.rstrip("/")
        self.profile_default = profile_default or None
        self.profiles = frozenset(profiles) if profiles is not None else None
        self._verify: bool | str = ca_bundle or True
        self._timeout = timeout
        try:
            self._auth_key = bytes.fromhex(auth_key) if auth_key else None
        except ValueError as exc:
            raise CaConfigError("the cfssl auth key must be hex, as in cfssl's auth_keys config") from exc
        self._info: dict[str, dict[str, Any]] = {}

    def submit(self, csr_pem: bytes, profile: str, replaces: str | None = None) -> CaResult:
        chosen = profile or self.profile_default
        if chosen:
            unknown = self._unknown_profile(chosen)
            if unknown and profile:
                return Denied(unknown)
            if unknown:
                raise CaConfigError(f"{unknown} (it is the configured default profile)")
        request: dict[str, Any] = {"certificate_request": csr_pem.decode("ascii", errors="replace")}
        if chosen:
            request["profile"] = chosen
        if self._auth_key is None:
            answer = self._call("sign", request)
        else:
            payload = json.dumps(request).encode()
            token = hmac.new(self._auth_key, payload, hashlib.sha256).digest()
            answer = self._call(
                "authsign",
                {"token": base64.b64encode(token).decode(), "request": base64.b64encode(payload).decode()},
            )
        if isinstance(answer, Denied):
            return answer
        leaf = answer["certificate"].strip() + "\n"
        return Issued((leaf, self._profile_info(chosen or "")["certificate"].strip() + "\n"))

    def poll(self, request_id: str, csr_pem: bytes = b"") -> CaResult:
        raise CaConfigError(f"cfssl never leaves a request pending; there is nothing to poll for {request_id!r}")

    def revoke(self, certificate_pem: str, reason: str) -> RevocationResult:
        """cfssl finds the row by decimal serial and AKI (lower-case hex), and takes the reason by name. It answers
        success again for a certificate already revoked, recording the new reason and time, so ``Revoked`` never
        says "already revoked" here."""
        from cryptography import x509

        target = revocation_target(certificate_pem, reason)
        try:
            aki = target.certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
            key_id = (aki.key_identifier or b"").hex()
        except x509.ExtensionNotFound:
            key_id = ""
        request = {"serial": str(target.certificate.serial_number), "authority_key_id": key_id, "reason": reason}
        answer = self._call("revoke", request)
        if isinstance(answer, Denied) and f"code {RECORD_NOT_FOUND}:" in answer.reason and key_id:
            # cfssl 1.2 built with a recent Go (Debian's) records an empty AKI for everything it signs
            answer = self._call("revoke", request | {"authority_key_id": ""})
        if isinstance(answer, Denied):
            raise CaError(f"cfssl at {self.url} did not revoke certificate {target.serial}: {answer.reason}")
        return Revoked(target.serial, reason)

    def _unknown_profile(self, profile: str) -> str | None:
        """Why ``profile`` is not one cfssl has, or None when it is."""
        if self.profiles is not None:
            if profile in self.profiles:
                return None
            return f"cfssl profile {profile!r} is not configured; known: {', '.join(sorted(self.profiles)) or 'none'}"
        if _policy(self._profile_info(profile)) != _policy(self._profile_info("")):
            return None
        return (
            f"cfssl reports its default policy for profile {profile!r}, which is what it does for a profile "
            "it does not have; fix the profile name, or list the profiles in the adapter's settings "
            "if this one really equals the default"
        )

    def _profile_info(self, profile: str) -> dict[str, Any]:
        if profile not in self._info:
            answer = self._call("info", {"profile": profile} if profile else {})
            if isinstance(answer, Denied):
                raise CaConfigError(f"cfssl info for profile {profile!r} failed: {answer.reason}")
            self._info[profile] = answer
        return self._info[profile]

    def _call(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any] | Denied:
        """POSTs to the cfssl API: its result, a ``Denied`` for a refusal, else an exception."""
        import requests

        url = f"{self.url}{API}/{endpoint}"
        try:
            response = requests.post(url, json=body, verify=self._verify, timeout=self._timeout)
        except requests.RequestException as exc:
            raise CaUnavailable(f"cfssl at {self.url} is unreachable: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise CaUnavailable(
                f"cfssl {endpoint} answered HTTP {response.status_code}", _retry_after(response.headers)
            )
        if response.status_code == 404 and endpoint == "revoke":
            raise CaConfigError(
                f"no cfssl revoke endpoint at {url} (HTTP 404): cfssl serves it only with a certificate database, "
                "so start cfssl serve with -db-config"
            )
        if response.status_code == 404:
            raise CaConfigError(
                f"no cfssl {endpoint!r} endpoint at {url} (HTTP 404): check the URL; with auth keys in "
                "cfssl's config only authsign is served, so set the auth key too"
            )
        try:
            document = response.json()
        except ValueError:
            raise CaUnavailable(
                f"cfssl {endpoint} answered HTTP {response.status_code} with something that is not JSON"
            ) from None
        if response.ok and document.get("success"):
            return document["result"]
        errors = document.get("errors") or [{"code": response.status_code, "message": "no detail"}]
        reason = "; ".join(f"code {e.get('code')}: {e.get('message')}" for e in errors)
        if self._auth_key is not None and any("invalid token" in str(e.get("message")) for e in errors):
            raise CaConfigError(f"cfssl refused the request's authentication ({reason}): check the auth key")
        return Denied(f"cfssl refused the request: {reason}")


def _policy(info: dict[str, Any]) -> tuple[Any, ...]:
    return (sorted(info.get("usages") or []), info.get("expiry"))


def _retry_after(headers: Any) -> int | None:
    value = headers.get("Retry-After", "")
    return int(value) if value.isdigit() else None
