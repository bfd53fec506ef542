"""ACME (RFC 8555) CA adapter built on the ``acme``/``josepy`` packages (JWS and messages; the polling is ours).

Nothing on local disk in Azure. The account key is the PEM itself (in Azure an app setting that is a
Key Vault reference, resolved by the platform) or, on-premises and in the local stack, a file made once
(0600). In Azure a missing key is a configuration error, never a new key: a new key is a new account,
and many CAs hand out single-use EAB keys. The account is found again with ``onlyReturnExisting``; EAB
is sent only when it is first created. An order the CA has not finished within ``timeout`` is
``Pending`` with the order URL as request id; ``poll(order_url, csr)`` finishes it with the CSR of Key
Vault's pending operation, so any instance can.

Never a second certificate for one renewal: once the CA has an order, every failure (the network, the
CA, an ``OSError``) is ``CaUnavailable`` naming the order, and the retry follows it with ``poll``
instead of placing another. An ``Issued`` names its order too, for the same reason.

Milliseconds, not seconds: after acting, the first look at the order is after ``FIRST_LOOK_SECONDS``,
then the wait doubles up to the CA's Retry-After, or ``LONGEST_LOOK_SECONDS`` when it gives none.
"""

from __future__ import annotations

import contextlib
import email.utils
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from renewal.ca.base import (
    CA_TIMEOUT_DEFAULT,
    CaConfigError,
    CaError,
    CannotWithdraw,
    CaResult,
    CaUnavailable,
    Denied,
    Issued,
    Pending,
    RevocationResult,
    Revoked,
)
from renewal.ca.per_thread import PerThread
from renewal.ca.revocation import revocation_target
from renewal.hosting import KEY_VAULT_REFERENCE

if TYPE_CHECKING:
    from acme import client as acme_client
    from acme import messages

TRANSIENT_CODES = {"rateLimited", "serverInternal", "badNonce"}
PENDING_RETRY_SECONDS = 60
HTTP01_PATH = "/.well-known/acme-challenge/"
FIRST_LOOK_SECONDS = 0.025  # the CA usually needs a few milliseconds to validate, then to sign
LONGEST_LOOK_SECONDS = 1.0  # the longest wait between looks when the CA sends no Retry-After
KEY_SETTING = "CERTLC_ACME_ACCOUNT_KEY"


def account_key_options(setting: str, *, azure: bool) -> dict[str, Any]:
    """The adapter's account key arguments from ``CERTLC_ACME_ACCOUNT_KEY``: the PEM itself, or a file's path.

    A path's key is made when missing, except in Azure, where a key made on local disk would not last."""
    value = setting.strip()
    if value.startswith(KEY_VAULT_REFERENCE):
        raise CaConfigError(
            f"{KEY_SETTING} is a Key Vault reference the platform could not resolve: give the app's identity "
            "Key Vault Secrets User on that secret and check the reference (the setting's status in the portal)"
        )
    if value.startswith("-----BEGIN"):
        return {"account_key_pem": value.replace("\\n", "\n")}  # a one-line PEM with escaped line breaks too
    if not value:
        where = ": in Azure, a Key Vault reference to a secret holding the account key's PEM" if azure else ""
        raise CaConfigError(f"{KEY_SETTING} is not set{where}")
    return {"account_key_path": Path(value), "create_account_key": not azure}


def next_wait(previous: float | None, retry_after: float | None) -> float:
    """Seconds until the next look at an order: ``FIRST_LOOK_SECONDS`` first, then twice the previous wait,
    up to the CA's Retry-After (``LONGEST_LOOK_SECONDS`` without one)."""
    if previous is None:
        return FIRST_LOOK_SECONDS
    ceiling = LONGEST_LOOK_SECONDS if retry_after is None else max(retry_after, FIRST_LOOK_SECONDS)
    return min(previous * 2, ceiling)


def retry_after_seconds(header: str | None, now: datetime) -> float | None:
    """Retry-After in seconds from ``now`` (delay-seconds or an HTTP date); None when absent or unreadable."""
    if not header:
        return None
    if header.strip().isdigit():
        return float(header.strip())
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - now).total_seconds()) if when.tzinfo else None


class ChallengeSolver(Protocol):
    """Publishes challenge answers where the CA looks for them.

    ``validation`` is what the CA must find: the key authorization for ``http-01`` (served at
    ``/.well-known/acme-challenge/<token>``), the TXT value for ``dns-01`` (at
    ``_acme-challenge.<identifier>``): ``renewal.ca.dns01.AzureDnsSolver``.
    """

    challenge_type: str

    def present(self, identifier: str, token: str, validation: str) -> None: ...

    def cleanup(self, identifier: str, token: str) -> None: ...


class Http01FolderSolver:
    """Writes http-01 answers under a web root another server already serves for the names."""

    challenge_type = "http-01"

    def __init__(self, webroot: Path) -> None:
        self.folder = Path(webroot) / HTTP01_PATH.strip("/")

    def present(self, identifier: str, token: str, validation: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / token).write_text(validation)

    def cleanup(self, identifier: str, token: str) -> None:
        (self.folder / token).unlink(missing_ok=True)


class Http01ServerSolver:
    """Serves http-01 answers itself from a tiny HTTP server (port 80 behind the names, or a test port)."""

    challenge_type = "http-01"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        import http.server

        answers: dict[str, str] = {}
        self._answers = answers

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                answer = answers.get(self.path.removeprefix(HTTP01_PATH)) if self.path.startswith(HTTP01_PATH) else None
                self.send_response(200 if answer is not None else 404)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write((answer or "").encode())

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer((host, port), Handler)
        self.port: int = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="http01-solver", daemon=True).start()

    def present(self, identifier: str, token: str, validation: str) -> None:
        self._answers[token] = validation

    def cleanup(self, identifier: str, token: str) -> None:
        self._answers.pop(token, None)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Http01ServerSolver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AcmeAuthority(CannotWithdraw):
    name = "acme"

    def __init__(
        self,
        directory_url: str,
        *,
        account_key_path: Path | None = None,
        account_key_pem: str | None = None,
        create_account_key: bool = True,
        contact_email: str | None = None,
        eab_kid: str | None = None,
        eab_hmac_key: str | None = None,
        ca_bundle: str | None = None,
        solver: ChallengeSolver | None = None,
        timeout: float = 60,
        network_timeout: float = CA_TIMEOUT_DEFAULT,
    ) -> None:
        """The account key is ``account_key_pem`` or the file ``account_key_path`` (made when missing only if
        ``create_account_key``). ``eab_hmac_key`` is base64url as CAs hand it out; ``timeout`` bounds the wait
        for an order in one submit/poll, ``network_timeout`` (``CERTLC_CA_TIMEOUT``) the connect and each read
        of every request."""
        if (account_key_path is None) == (account_key_pem is None):
            raise CaConfigError("the ACME account key is either a PEM or a file's path: give exactly one")
        if bool(eab_kid) != bool(eab_hmac_key):
            raise CaConfigError("ACME external account binding needs both the key id and the HMAC key")
        self.directory_url = directory_url
        self.account_key_path = Path(account_key_path) if account_key_path is not None else None
        self._account_key_pem = account_key_pem
        self._create_account_key = create_account_key
        self.contact_email = contact_email
        self._eab = (eab_kid, eab_hmac_key) if eab_kid and eab_hmac_key else None
        self._verify: bool | str = ca_bundle or True
        self.solver = solver
        self.timeout = timeout
        self.network_timeout = network_timeout
        self._clients = PerThread(self._register_or_explain)

    def submit(self, csr_pem: bytes, profile: str, replaces: str | None = None) -> CaResult:
        """``replaces``: the ARI identifier of the certificate this one renews (RFC 9773), named in the new order."""
        from cryptography import x509

        from renewal.ca.acme_ari import new_order

        try:
            x509.load_pem_x509_csr(csr_pem)
        except ValueError as exc:
            return Denied(f"the CSR is not a valid PEM certificate request: {exc}")

        def run(placed: _Placed) -> CaResult:
            client = self._account()
            order = new_order(client, csr_pem, profile=self._order_profile(client, profile), replaces=replaces)
            placed.url = order.uri
            return self._complete(client, order)

        return self._guarded(run, _Placed())

    def poll(self, request_id: str, csr_pem: bytes) -> CaResult:
        """Carries on the order ``request_id`` (its URL); ``csr_pem`` finalizes it if the CA has not yet."""
        if urlsplit(request_id)[:2] != urlsplit(self.directory_url)[:2]:
            raise CaConfigError(f"{request_id!r} is not an order of the ACME server {self.directory_url}")

        def run(placed: _Placed) -> CaResult:
            client = self._account()
            return self._complete(client, self._load_order(client, request_id, csr_pem))

        return self._guarded(run, _Placed(request_id))

    def revoke(self, certificate_pem: str, reason: str) -> RevocationResult:
        """RFC 8555 §7.6 revokeCert signed by the account key: the CA accepts it from the account that ordered the
        certificate (or one holding authorizations for all its names)."""
        import requests
        from acme import errors, messages

        target = revocation_target(certificate_pem, reason)
        try:
            self._account().revoke(target.certificate, target.code)
        except messages.Error as exc:
            if exc.code == "alreadyRevoked":
                return Revoked(target.serial, reason, "already revoked")
            if exc.code in TRANSIENT_CODES:
                raise CaUnavailable(f"ACME server is busy or failing: {_problem(exc)}") from exc
            raise CaError(
                f"the ACME server {self.directory_url} refused to revoke certificate {target.serial}: {_problem(exc)}"
            ) from exc
        except requests.RequestException as exc:
            raise CaUnavailable(f"ACME server {self.directory_url} unreachable: {type(exc).__name__}: {exc}") from exc
        except errors.Error as exc:  # an answer that is neither a problem document nor 200 OK
            raise CaUnavailable(
                f"ACME server {self.directory_url} gave an unexpected answer to revokeCert: {exc}"
            ) from exc
        return Revoked(target.serial, reason)

    @property
    def account_url(self) -> str:
        return self._account().net.account["uri"]  # type: ignore[index]

    # -- account --------------------------------------------------------------------------------

    def _account_key(self) -> Any:
        import josepy
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        if self._account_key_pem is not None:
            where, pem = KEY_SETTING, self._account_key_pem.encode()
        else:
            assert self.account_key_path is not None
            where, pem = str(self.account_key_path), self._key_file(self.account_key_path)
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:  # the message names where the key is, never its content
            raise CaConfigError(f"the ACME account key in {where} is not an unencrypted PEM private key") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise CaConfigError(f"the ACME account key in {where} must be an EC P-256 key")
        return josepy.JWKEC(key=key)

    def _key_file(self, path: Path) -> bytes:
        """The key file's bytes; made first (0600) when missing and allowed."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        if not path.exists():
            if not self._create_account_key:
                raise CaConfigError(
                    f"the ACME account key file {path} does not exist, and here a new one would not last: "
                    f"put the key's PEM in a Key Vault secret and make {KEY_SETTING} a Key Vault reference to it"
                )
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            # Written whole beside it, then linked into place: a link is made whole or not at all, so a thread or
            # worker that finds the file never reads it half-written (an O_EXCL create shows an empty file first).
            staged = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(pem)
                    out.flush()
                    os.fsync(out.fileno())
                with contextlib.suppress(FileExistsError):  # another worker made it first: use theirs
                    os.link(staged, path)
            finally:
                staged.unlink(missing_ok=True)
        return path.read_bytes()

    def _account(self) -> acme_client.ClientV2:
        """This thread's client bound to our account (found or created on the thread's first call)."""
        return self._clients.get()

    def _register_or_explain(self) -> acme_client.ClientV2:
        from acme import messages

        try:
            return self._register()
        except messages.Error as exc:
            if exc.code in TRANSIENT_CODES:
                raise CaUnavailable(f"ACME server is busy or failing: {_problem(exc)}") from exc
            raise CaConfigError(f"ACME account setup at {self.directory_url} failed: {_problem(exc)}") from exc

    def _register(self) -> acme_client.ClientV2:
        import josepy
        from acme import client as acme_client
        from acme import errors, messages

        key = self._account_key()
        net = acme_client.ClientNetwork(
            key, alg=josepy.ES256, verify_ssl=self._verify, user_agent="certlc", timeout=self.network_timeout
        )
        client = acme_client.ClientV2(acme_client.ClientV2.get_directory(self.directory_url, net), net)
        try:
            client.new_account(messages.NewRegistration.from_data(only_return_existing=True))
        except errors.ConflictError as existing:  # 200 + Location: the key already has an account
            return _bound(client, existing.location)
        except messages.Error as exc:
            if exc.code != "accountDoesNotExist":
                raise
        if client.external_account_required() and self._eab is None:
            raise CaConfigError(
                f"the ACME server {self.directory_url} requires external account binding: "
                "set the EAB key id and HMAC key the CA issued"
            )
        eab = None
        if self._eab is not None:
            kid, hmac_key = self._eab
            eab = messages.ExternalAccountBinding.from_data(key.public_key(), kid, hmac_key, client.directory)
        try:
            client.new_account(
                messages.NewRegistration.from_data(
                    email=self.contact_email, terms_of_service_agreed=True, external_account_binding=eab
                )
            )
        except errors.ConflictError as existing:  # another thread (or instance) created it a moment ago
            return _bound(client, existing.location)
        return client

    # -- orders ---------------------------------------------------------------------------------

    @staticmethod
    def _order_profile(client: acme_client.ClientV2, profile: str) -> str | None:
        """The ACME profile to ask for: only when the server offers profiles (otherwise it has one policy)."""
        offered = getattr(getattr(client.directory, "meta", None), "profiles", None) or {}
        if not offered or not profile:
            return None
        if profile not in offered:
            raise _Refused(f"ACME profile {profile!r} is not offered; offered: {', '.join(sorted(offered))}")
        return profile

    def _complete(self, client: acme_client.ClientV2, order: messages.OrderResource) -> CaResult:
        """Answers the challenges, finalizes and downloads, looking at the order as ``next_wait`` says."""
        from acme import messages

        deadline = time.monotonic() + self.timeout
        presented: list[tuple[str, str]] = []  # filled as answers go out, so a failure half-way cleans up too
        answered = False
        wait: float | None = None
        retry_after: float | None = None
        try:
            while True:
                status = order.body.status
                if status == messages.STATUS_VALID:
                    return Issued(_split_chain(_post_as_get(client, order.body.certificate).text), order.uri)
                if status == messages.STATUS_INVALID:
                    return Denied(self._why_invalid(client, order))
                if status == messages.STATUS_PENDING and not answered:
                    answered = True
                    self._present(client, order, presented)
                if status == messages.STATUS_READY:
                    order, retry_after = self._finalize(client, order)
                    wait = None
                    continue
                wait = next_wait(wait, retry_after)
                if time.monotonic() + wait > deadline:
                    return Pending(
                        request_id=order.uri,
                        retry_after_seconds=PENDING_RETRY_SECONDS,
                        detail=f"ACME order still {status} after {self.timeout:g} s",
                    )
                time.sleep(wait)
                order, retry_after = self._look(client, order)
        finally:
            self._cleanup(presented)

    def _look(
        self, client: acme_client.ClientV2, order: messages.OrderResource
    ) -> tuple[messages.OrderResource, float | None]:
        from acme import messages

        response = _post_as_get(client, order.uri)
        body = messages.Order.from_json(response.json())
        return order.update(body=body), retry_after_seconds(response.headers.get("Retry-After"), datetime.now(UTC))

    def _finalize(
        self, client: acme_client.ClientV2, order: messages.OrderResource
    ) -> tuple[messages.OrderResource, float | None]:
        from acme import messages
        from cryptography import x509

        request = messages.CertificateRequest(csr=x509.load_pem_x509_csr(order.csr_pem))
        try:
            response = client.net.post(order.body.finalize, request, new_nonce_url=client.directory["newNonce"])
        except messages.Error as exc:
            if exc.code != "orderNotReady":  # finalized meanwhile (another look will tell), else a real refusal
                raise
            return self._look(client, order)
        body = messages.Order.from_json(response.json())
        return order.update(body=body), retry_after_seconds(response.headers.get("Retry-After"), datetime.now(UTC))

    def _why_invalid(self, client: acme_client.ClientV2, order: messages.OrderResource) -> str:
        """The CA's reason for an invalid order: a failed challenge's finding, else the order's error."""
        from acme import messages

        for url in order.body.authorizations:
            authz = messages.Authorization.from_json(_post_as_get(client, url).json())
            for challenge in authz.challenges:
                if challenge.error is not None:
                    return (
                        f"ACME challenge validation failed for {authz.identifier.value!r} "
                        f"({_challenge_type(challenge)}): {_problem(challenge.error)}"
                    )
        return f"the ACME CA did not issue: {_problem(order.body.error)}"

    def _present(
        self, client: acme_client.ClientV2, order: messages.OrderResource, presented: list[tuple[str, str]]
    ) -> None:
        """Publishes each pending authorization's answer, noting it in ``presented`` before the CA is told."""
        from acme import messages

        for authz in order.authorizations:
            if authz.body.status != messages.STATUS_PENDING:
                continue
            identifier = authz.body.identifier.value
            if self.solver is None:
                raise CaConfigError(f"the ACME server wants a challenge for {identifier!r} but no solver is set")
            offered = {_challenge_type(c): c for c in authz.body.challenges}
            challenge = offered.get(self.solver.challenge_type)
            if challenge is None:
                raise _Refused(
                    f"the ACME server offers no {self.solver.challenge_type} challenge for {identifier!r}; "
                    f"offered: {', '.join(sorted(offered))}"
                )
            response, validation = challenge.response_and_validation(client.net.key)
            token = challenge.chall.encode("token")
            self.solver.present(identifier, token, validation)
            presented.append((identifier, token))
            if challenge.status == messages.STATUS_PENDING:
                client.answer_challenge(challenge, response)

    def _cleanup(self, presented: list[tuple[str, str]]) -> None:
        for identifier, token in presented:
            self.solver.cleanup(identifier, token)  # type: ignore[union-attr]

    def _load_order(self, client: acme_client.ClientV2, order_url: str, csr_pem: bytes) -> messages.OrderResource:
        """The order as the CA has it now; its authorizations only while they may need answers."""
        from acme import messages

        body = messages.Order.from_json(_post_as_get(client, order_url).json())
        authorizations = []
        if body.status == messages.STATUS_PENDING:
            authorizations = [
                messages.AuthorizationResource(
                    body=messages.Authorization.from_json(_post_as_get(client, url).json()), uri=url
                )
                for url in body.authorizations
            ]
        return messages.OrderResource(body=body, uri=order_url, authorizations=authorizations, csr_pem=csr_pem)

    # -- errors ---------------------------------------------------------------------------------

    def _guarded(self, run: Callable[[_Placed], CaResult], placed: _Placed) -> CaResult:
        """Maps what the network and the ACME server say onto Denied / CaUnavailable / CaConfigError. Once the
        CA has the order (``placed.url``), any other failure is ``CaUnavailable`` naming it: followed, not placed
        again."""
        import requests
        from acme import errors, messages

        try:
            return run(placed)
        except _Refused as exc:
            return Denied(str(exc))
        except CaError:
            raise
        except requests.RequestException as exc:
            raise CaUnavailable(
                f"ACME server {self.directory_url} unreachable: {type(exc).__name__}: {exc}", request_id=placed.url
            ) from exc
        except messages.Error as exc:
            if exc.code in TRANSIENT_CODES:
                raise CaUnavailable(f"ACME server is busy or failing: {_problem(exc)}", request_id=placed.url) from exc
            return Denied(f"the ACME server refused: {_problem(exc)}")
        except Exception as exc:
            if placed.url is None and not isinstance(exc, errors.Error):
                raise
            where = f"the ACME order {placed.url}" if placed.url else f"the ACME server {self.directory_url}"
            raise CaUnavailable(
                f"unexpected failure with {where}: {type(exc).__name__}: {exc}", request_id=placed.url
            ) from exc


def _bound(client: acme_client.ClientV2, account_url: str) -> acme_client.ClientV2:
    """``client`` signing as the existing account at ``account_url``."""
    from acme import messages

    client.net.account = messages.RegistrationResource(uri=account_url, body=messages.Registration())
    return client


@dataclass
class _Placed:
    """The order's URL once the CA has it: from then on a failure names it, so the retry follows it."""

    url: str | None = None


class _Refused(Exception):
    """A request the CA will not accept as it stands (becomes ``Denied``)."""


def _post_as_get(client: acme_client.ClientV2, url: str) -> Any:
    return client.net.post(url, None, new_nonce_url=client.directory["newNonce"])


def _challenge_type(challenge: Any) -> str:
    """The challenge's type, also for types the acme package does not know (kept as raw JSON)."""
    typ = challenge.chall.typ
    return typ if isinstance(typ, str) else str(challenge.chall.jobj.get("type", "unknown"))


def _problem(error: Any) -> str:
    if error is None:
        return "no detail given"
    code = getattr(error, "code", None) or getattr(error, "typ", "error")
    detail = getattr(error, "detail", None) or getattr(error, "description", None) or str(error)
    return f"{code}: {detail}"


def _split_chain(fullchain_pem: str) -> tuple[str, ...]:
    marker = "-----END CERTIFICATE-----"
    return tuple(part.strip() + "\n" + marker + "\n" for part in fullchain_pem.split(marker) if part.strip())
