"""When Key Vault raises certificate events, decided against the emulated clock.

``CertificateNewVersionCreated`` on create-complete, merge and import; ``CertificateNearExpiry``
once the clock is within 30 days of the current version's expiry and ``CertificateExpired`` once
it is past it. Only the current (newest enabled) version raises the expiry events, once each;
what was raised is stored with the version so a restart does not raise it again. Delivery is
the publisher's job (``localazure.emulators.eventgrid``).

An event has the form of Key Vault's published samples: topic = the vault's resource id, subject =
certificate name, PascalCase ``data`` with ``Id``/``VaultName``/``ObjectType``/``ObjectName``/``Version``
and ``NBF``/``EXP`` as digit strings.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from localazure.emulators.eventgrid import Event
from renewal.eventgrid.schema import CERTIFICATE_EXPIRED, CERTIFICATE_NEAR_EXPIRY, CERTIFICATE_NEW_VERSION_CREATED

from .bundles import Vault
from .clock import Clock
from .store import Certificate, Store, Version

log = logging.getLogger(__name__)
NEAR_EXPIRY_SECONDS = 30 * 86400


class Publisher(Protocol):
    """Where the emulator's events go: ``localazure.emulators.eventgrid.EventGridPublisher``, or a test's recorder."""

    def publish(self, event: Event) -> None: ...


def certificate_event(
    event_type: str,
    *,
    vault: str,
    vault_url: str,
    name: str,
    version: str,
    nbf: int | None,
    exp: int | None,
    when: datetime,
) -> Event:
    """The event Key Vault raises for one certificate version (``nbf``/``exp`` in epoch seconds)."""
    data = {
        "Id": f"{vault_url.rstrip('/')}/certificates/{name}/{version}",
        "VaultName": vault,
        "ObjectType": "Certificate",
        "ObjectName": name,
        "Version": version,
    }
    for key, value in (("NBF", nbf), ("EXP", exp)):
        if value is not None:
            data[key] = str(value)
    return Event(f"Microsoft.KeyVault/vaults/{vault}", name, event_type, when, data)


def _stored(event_type: str) -> str:
    """The name a version's ``events_sent`` keeps in the state folder: the type without ``Microsoft.KeyVault.``."""
    return event_type.rsplit(".", 1)[-1]


class CertificateEvents:
    """Listens to new versions and watches expiry; hands events to the publisher."""

    def __init__(self, store: Store, clock: Clock, publisher: Publisher | None, vault_urls: Mapping[str, str]) -> None:
        self._store = store
        self._clock = clock
        self._publisher = publisher
        self._vault_urls = vault_urls
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _publish(self, event_type: str, vault: str, cert: Certificate, version: Version, when: datetime) -> None:
        if self._publisher is None:
            return
        event = certificate_event(
            event_type,
            vault=vault,
            vault_url=self._vault_urls[vault],
            name=cert.name,
            version=version.version,
            nbf=version.attributes.get("nbf"),
            exp=version.attributes.get("exp"),
            when=when,
        )
        self._publisher.publish(event)

    def new_version(self, vault: Vault, cert: Certificate, version: Version) -> None:
        """NewVersionCreated, then the expiry events the new version may already be due (only this one)."""
        self._publish(CERTIFICATE_NEW_VERSION_CREATED, vault.name, cert, version, self._clock.now())
        now, when = self._clock.epoch(), self._clock.now()
        with self._store.lock:
            current = cert.current()
            if cert.deleted is None and current is not None and self._due(current, now):
                self._raise_due(vault.name, cert, current, now, when)

    def check_expiry(self) -> None:
        now = self._clock.epoch()
        when = self._clock.now()
        with self._store.lock:
            for vault in self._store.vaults():
                for cert in self._store.all(vault):
                    current = cert.current()
                    if cert.deleted is not None or current is None:
                        continue
                    if self._due(current, now):
                        self._raise_due(vault, cert, current, now, when)

    @staticmethod
    def _due(version: Version, now: int) -> bool:
        exp = version.attributes["exp"]
        pending = [t for t in (CERTIFICATE_NEAR_EXPIRY, CERTIFICATE_EXPIRED) if _stored(t) not in version.events_sent]
        return bool(pending) and now >= exp - NEAR_EXPIRY_SECONDS

    def _raise_due(self, vault: str, cert: Certificate, version: Version, now: int, when: datetime) -> None:
        exp = version.attributes["exp"]
        for event_type, threshold in ((CERTIFICATE_NEAR_EXPIRY, exp - NEAR_EXPIRY_SECONDS), (CERTIFICATE_EXPIRED, exp)):
            if now >= threshold and _stored(event_type) not in version.events_sent:
                version.events_sent.append(_stored(event_type))
                self._store.save(vault, cert)
                self._publish(event_type, vault, cert, version, when)

    def start(self, interval: float = 1.0) -> None:
        """Also check as real time passes, so long-running demos see events without clock jumps."""

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.check_expiry()
                except Exception:  # keep watching; one bad record must not stop events for all
                    log.exception("expiry check failed")

        self._thread = threading.Thread(target=loop, name="kv-emulator-expiry", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
