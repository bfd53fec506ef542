"""Where "now" comes from: the system clock, or on the local stack the Key Vault emulator's clock.

The emulator's clock can be moved forward to make certificates expire; ``CERTLC_CLOCK_URL``
(the emulator's ``/_emulator/clock``, loopback only) makes the functions see the same time,
so their decisions agree with the events the emulator raised.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from renewal.clients import ConnectionConfigError, is_loopback_url
from renewal.trust import ca_bundle

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def require_aware(value: datetime, what: str) -> datetime:
    """Refuse naive datetimes: their time zone would be the host's, which certlc must never assume."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (got naive {value.isoformat()}); use datetime.now(UTC)")
    return value.astimezone(UTC)


def iso_utc(moment: datetime, *, timespec: str = "seconds") -> str:
    """ISO 8601 in UTC with a ``Z`` (``2025-01-02T03:04:05Z``), as JSON payloads, Log Analytics and people read it;
    one fixed ``timespec`` per stream, so its times also sort as text (the audit trail's is milliseconds)."""
    return require_aware(moment, "date").isoformat(timespec=timespec).replace("+00:00", "Z")


def clock_from_env(env: Mapping[str, str]) -> Clock:
    url = env.get("CERTLC_CLOCK_URL", "").strip()
    if not url:
        return utc_now
    if not is_loopback_url(url):
        raise ConnectionConfigError(f"CERTLC_CLOCK_URL {url} is not on loopback: it is for the local emulator only")
    verify: bool | str = ca_bundle(env, "CERTLC_KEYVAULT_CA_BUNDLE", ConnectionConfigError) or True
    sessions = threading.local()  # one kept-alive connection per thread: a fresh TLS handshake on every read of the
    # clock cost the local stack a tenth of a second per renewal, which production never pays

    def emulated_now() -> datetime:
        import requests

        session = getattr(sessions, "session", None)
        if session is None:
            session = sessions.session = requests.Session()
            session.trust_env = False  # loopback only: no proxy, no netrc
        response = session.get(url, verify=verify, timeout=10)
        response.raise_for_status()
        return datetime.fromisoformat(response.json()["now"].replace("Z", "+00:00"))

    return emulated_now
