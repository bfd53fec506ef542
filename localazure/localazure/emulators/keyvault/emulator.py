"""The running emulator: its parts wired together (store, clock, auth, events, admin, listeners) and what a
client needs to reach it."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from localazure.emulators.eventgrid import EventGridPublisher
from localazure.pki import loopback_tls, server_context
from renewal.eventgrid.schema import CERTIFICATE_EVENT_TYPES

from . import DEFAULT_PENDING_VERSION
from .admin import PREFIX, Admin, RequestLog
from .auth import DEFAULT_TOKENS, TokenAuthorizer
from .backup import Backups
from .certificates import Certificates
from .clock import Clock
from .contacts import Contacts
from .events import CertificateEvents, Publisher
from .faults import Faults
from .issuers import Issuers
from .routes import Services
from .server import Listener, Pipeline
from .store import Store
from .throttling import Throttle

VAULT_NAME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$")


def _check(vaults: list[str], host: str, ports: list[int] | None) -> None:
    if not vaults:
        raise ValueError("at least one vault name is needed")
    bad = [v for v in vaults if not VAULT_NAME_RE.match(v)]
    if bad or len(set(vaults)) != len(vaults):
        raise ValueError(f"vault names must be unique, 3-24 letters, digits and dashes: {vaults}")
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"the emulator listens on loopback only, not {host}")
    if ports is not None and len(ports) != len(vaults):
        raise ValueError(f"give one port per vault: {len(vaults)} vaults, {len(ports)} ports")


class Emulator:
    """A Key Vault emulator: one HTTPS listener per vault over one store, clock and control API.

    ``start()`` (the package's) makes and starts one; ``vault_urls``, ``url``, ``admin_url``, ``ca_bundle`` and
    ``token`` are what a client needs, ``describe()`` says them as JSON, ``stop()`` (or leaving ``with``) ends it.
    """

    def __init__(
        self,
        state_dir: Path,
        vaults: list[str],
        host: str,
        ports: list[int] | None,
        tokens: Mapping[str, str] | None,
        publisher: Publisher | None,
        pending_version: str = DEFAULT_PENDING_VERSION,
    ) -> None:
        _check(vaults, host, ports)
        self.tls = loopback_tls(state_dir / "tls", "certlc Key Vault emulator")
        self.store = Store(state_dir)
        self.clock = Clock(float(self.store.load_meta("clock").get("offset_seconds", 0.0)))
        self.clock.on_change(lambda: self.store.save_meta("clock", {"offset_seconds": self.clock.offset_seconds}))
        self.authorizer = TokenAuthorizer({**DEFAULT_TOKENS, **(tokens or {})})
        own = EventGridPublisher(event_types=CERTIFICATE_EVENT_TYPES) if publisher is None else None
        self._own_publisher = own
        self.publisher: Publisher = publisher or own
        self.vault_urls: dict[str, str] = {}
        self.events = CertificateEvents(self.store, self.clock, self.publisher, self.vault_urls)
        self.clock.on_change(self.events.check_expiry)
        self.requests = RequestLog()
        self.faults = Faults()
        self.throttle = Throttle()
        admin = Admin(self.clock, self.requests, self.faults, self.throttle, self.publisher, self.vault_urls)
        self.certificates = certificates = Certificates(self.store, self.clock, self.events, pending_version)
        self.pending_version = pending_version
        services = Services(certificates, Issuers(self.store, self.clock), Contacts(self.store), Backups(self.store))
        pipeline = Pipeline(services, self.authorizer, self.clock, self.requests, self.faults, self.throttle, admin)
        context = server_context(self.tls)
        self.listeners: list[Listener] = []
        try:
            for vault, port in zip(vaults, ports or [0] * len(vaults), strict=True):
                self.store.add_vault(vault)
                listener = Listener(pipeline, vault, host, port, context)
                self.listeners.append(listener)
                self.vault_urls[vault] = listener.url
        except OSError:
            self._close_listeners()
            raise
        self.url = next(iter(self.vault_urls.values()))
        self.admin_url = self.url + PREFIX
        self.ca_bundle = str(self.tls.ca_pem)
        self.token = self.authorizer.first_token("officer")
        self.tokens = self.authorizer.tokens

    def describe(self) -> dict[str, object]:
        """What a client needs to connect (the CLI's ``--json`` line)."""
        return {
            "url": self.url,
            "ca_bundle": self.ca_bundle,
            "admin_url": self.admin_url,
            "token": self.token,
            "vaults": dict(self.vault_urls),
        }

    def start(self) -> None:
        for listener in self.listeners:
            listener.start()
        self.events.check_expiry()
        self.events.start()

    def _close_listeners(self) -> None:
        for listener in self.listeners:
            listener.stop()

    def stop(self) -> None:
        self.events.stop()
        self._close_listeners()
        if self._own_publisher is not None:
            self._own_publisher.close()

    def __enter__(self) -> Emulator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
