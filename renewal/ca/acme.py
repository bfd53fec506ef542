"""ACME (RFC 8555) CA adapter built on the ``acme``/``josepy`` packages.

The account key lives in a file (0600, made once) so every run is the same account; an external
account binding (EAB) is sent only when the account is first created. Identifiers come from the
CSR Key Vault made; challenges are answered by a ``ChallengeSolver``. An order the CA has not
finished within ``timeout`` is reported ``Pending`` with the order URL as request id, and ``poll``
carries it on; the CSR of such an order is kept next to the account key for the finalization.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from renewal.ca.base import CA_TIMEOUT_DEFAULT, CaConfigError, CaResult, CaUnavailable, Denied, Issued, Pending

if TYPE_CHECKING:
    from acme import client as acme_client
    from acme import messages

TRANSIENT_CODES = {"rateLimited", "serverInternal", "badNonce"}
PENDING_RETRY_SECONDS = 60
HTTP01_PATH = "/.well-known/acme-challenge/"


class ChallengeSolver(Protocol):
    """Publishes challenge answers where the CA looks for them.

    ``validation`` is what the CA must find: the key authorization for ``http-01`` (served at
    ``/.well-known/acme-challenge/<token>``), the TXT value for ``dns-01`` (at
    ``_acme-challenge.<identifier>``). An Azure DNS ``dns-01`` solver fits this protocol; it is not
    implemented yet.
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


class AcmeAuthority:
    name = "acme"

    def __init__(
        self,
        directory_url: str,
        *,
        account_key_path: Path,
        contact_email: str | None = None,
        eab_kid: str | None = None,
        eab_hmac_key: str | None = None,
        ca_bundle: str | None = None,
        solver: ChallengeSolver | None = None,
        timeout: float = 60,
        network_timeout: float = CA_TIMEOUT_DEFAULT,
    ) -> None:
        """``eab_hmac_key`` is base64url as CAs hand it out; ``timeout`` bounds the wait for an order in one
        submit/poll, ``network_timeout`` (``CERTLC_CA_TIMEOUT``) the connect and each read of every request."""
        if bool(eab_kid) != bool(eab_hmac_key):
            raise CaConfigError("ACME external account binding needs both the key id and the HMAC key")
        self.directory_url = directory_url
        self.account_key_path = Path(account_key_path)
        self.contact_email = contact_email
        self._eab = (eab_kid, eab_hmac_key) if eab_kid and eab_hmac_key else None
        self._verify: bool | str = ca_bundle or True
        self.solver = solver
        self.timeout = timeout
        self.network_timeout = network_timeout
        self._client: acme_client.ClientV2 | None = None

    def submit(self, csr_pem: bytes, profile: str) -> CaResult:
        from cryptography import x509

        try:
            x509.load_pem_x509_csr(csr_pem)
        except ValueError as exc:
            return Denied(f"the CSR is not a valid PEM certificate request: {exc}")

        def run() -> CaResult:
            client = self._account()
            order = client.new_order(csr_pem, profile=self._order_profile(client, profile))
            return self._complete(client, order)

        return self._guarded(run)

    def poll(self, request_id: str) -> CaResult:
        def run() -> CaResult:
            client = self._account()
            return self._complete(client, self._load_order(client, request_id))

        return self._guarded(run)

    @property
    def account_url(self) -> str:
        return self._account().net.account["uri"]  # type: ignore[index]

    # -- account --------------------------------------------------------------------------------

    def _account_key(self) -> Any:
        import josepy
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        path = self.account_key_path
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another worker made it first: use theirs
            else:
                with os.fdopen(fd, "wb") as out:
                    out.write(pem)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CaConfigError(f"the ACME account key {path} must be an EC P-256 key")
        return josepy.JWKEC(key=key)

    def _account(self) -> acme_client.ClientV2:
        """The client bound to our account (found or created once per instance)."""
        from acme import messages

        if self._client is None:
            try:
                self._client = self._register()
            except messages.Error as exc:
                if exc.code in TRANSIENT_CODES:
                    raise CaUnavailable(f"ACME server is busy or failing: {_problem(exc)}") from exc
                raise CaConfigError(f"ACME account setup at {self.directory_url} failed: {_problem(exc)}") from exc
        return self._client

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
            net.account = messages.RegistrationResource(uri=existing.location, body=messages.Registration())
            return client
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
        client.new_account(
            messages.NewRegistration.from_data(
                email=self.contact_email, terms_of_service_agreed=True, external_account_binding=eab
            )
        )
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
        from acme import errors, messages

        deadline = dt.datetime.now() + dt.timedelta(seconds=self.timeout)
        status = order.body.status
        if status == messages.STATUS_INVALID:
            return self._finish(order, Denied(f"the ACME order is invalid: {_problem(order.body.error)}"))
        if status == messages.STATUS_VALID:
            return self._finish(order, self._download(client, order.body.certificate))
        try:
            if status == messages.STATUS_PENDING:
                presented = self._present(client, order)
                try:
                    order = client.poll_authorizations(order, deadline)
                finally:
                    self._cleanup(presented)
            if status == messages.STATUS_PROCESSING:
                done = client.poll_finalization(order, deadline)
            else:
                done = client.finalize_order(order, deadline)
        except errors.TimeoutError:
            if order.csr_pem:
                self._csr_path(order.uri).write_bytes(order.csr_pem)
            return Pending(
                request_id=order.uri,
                retry_after_seconds=PENDING_RETRY_SECONDS,
                detail=f"ACME order still {status} after {self.timeout:g} s",
            )
        except errors.ValidationError as exc:
            return self._finish(order, Denied(f"ACME challenge validation failed: {exc}"))
        except errors.IssuanceError as exc:
            return self._finish(order, Denied(f"the ACME CA did not issue: {_problem(exc.error)}"))
        return self._finish(order, Issued(_split_chain(done.fullchain_pem)))

    def _present(self, client: acme_client.ClientV2, order: messages.OrderResource) -> list[tuple[str, str]]:
        from acme import messages

        presented: list[tuple[str, str]] = []
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
        return presented

    def _cleanup(self, presented: list[tuple[str, str]]) -> None:
        for identifier, token in presented:
            self.solver.cleanup(identifier, token)  # type: ignore[union-attr]

    def _load_order(self, client: acme_client.ClientV2, order_url: str) -> messages.OrderResource:
        from acme import messages

        if urlsplit(order_url)[:2] != urlsplit(self.directory_url)[:2]:
            raise CaConfigError(f"{order_url!r} is not an order of the ACME server {self.directory_url}")
        body = messages.Order.from_json(_post_as_get(client, order_url).json())
        authorizations = [
            messages.AuthorizationResource(
                body=messages.Authorization.from_json(_post_as_get(client, url).json()), uri=url
            )
            for url in body.authorizations
        ]
        csr_path = self._csr_path(order_url)
        csr_pem = csr_path.read_bytes() if csr_path.exists() else None
        if csr_pem is None and body.status in (messages.STATUS_PENDING, messages.STATUS_READY):
            raise CaConfigError(
                f"the ACME order {order_url} needs its CSR to finalize but {csr_path} is gone; "
                "move the certificate's pending operation out of the way and renew again"
            )
        return messages.OrderResource(body=body, uri=order_url, authorizations=authorizations, csr_pem=csr_pem)

    def _download(self, client: acme_client.ClientV2, certificate_url: str) -> Issued:
        return Issued(_split_chain(_post_as_get(client, certificate_url).text))

    def _csr_path(self, order_url: str) -> Path:
        folder = self.account_key_path.parent / "acme-orders"
        folder.mkdir(mode=0o700, exist_ok=True)
        return folder / f"{hashlib.sha256(order_url.encode()).hexdigest()[:32]}.csr"

    def _finish(self, order: messages.OrderResource, result: CaResult) -> CaResult:
        if order.uri:
            self._csr_path(order.uri).unlink(missing_ok=True)
        return result

    # -- errors ---------------------------------------------------------------------------------

    def _guarded(self, run: Callable[[], CaResult]) -> CaResult:
        """Maps what the network and the ACME server say onto Denied / CaUnavailable / CaConfigError."""
        import requests
        from acme import errors, messages

        try:
            return run()
        except _Refused as exc:
            return Denied(str(exc))
        except requests.RequestException as exc:
            raise CaUnavailable(f"ACME server {self.directory_url} unreachable: {type(exc).__name__}: {exc}") from exc
        except messages.Error as exc:
            if exc.code in TRANSIENT_CODES:
                raise CaUnavailable(f"ACME server is busy or failing: {_problem(exc)}") from exc
            return Denied(f"the ACME server refused: {_problem(exc)}")
        except errors.Error as exc:
            raise CaUnavailable(f"unexpected answer from ACME server {self.directory_url}: {exc!r}") from exc


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
