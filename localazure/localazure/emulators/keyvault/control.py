"""A small client for the emulator's ``/_emulator/`` control API (tests, local stack, demo)."""

from __future__ import annotations

from typing import Any

from renewal.eventgrid.schema import EVENT_GRID_SCHEMA


class EmulatorControl:
    def __init__(self, admin_url: str, ca_bundle: str, timeout: float = 10.0) -> None:
        import requests

        self._base = admin_url.rstrip("/")
        self._session = requests.Session()
        self._session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify=
        self._session.verify = ca_bundle
        self._timeout = timeout

    def call(self, method: str, path: str, body: Any = None) -> Any:
        response = self._session.request(method, f"{self._base}/{path}", json=body, timeout=self._timeout)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} /_emulator/{path} failed: HTTP {response.status_code} {response.text}")
        return response.json()

    def now(self) -> str:
        return self.call("GET", "clock")["now"]

    def advance(self, seconds: float) -> str:
        return self.call("POST", "clock", {"advance_seconds": seconds})["now"]

    def set_now(self, iso: str) -> str:
        return self.call("POST", "clock", {"now": iso})["now"]

    def requests(self) -> list[dict[str, Any]]:
        return self.call("GET", "requests")

    def clear_requests(self) -> None:
        self.call("DELETE", "requests")

    def add_fault(self, **spec: Any) -> dict[str, Any]:
        return self.call("POST", "faults", spec)

    def clear_faults(self) -> None:
        self.call("DELETE", "faults")

    def throttling(
        self,
        enabled: bool,
        time_scale: float = 1.0,
        retry_after: str | None = None,
        subscriptions: dict[str, list[str]] | None = None,
    ) -> dict[str, Any]:
        """Configure throttling as a whole and reset its windows and counts. ``retry_after``: always, never or
        mixed (None: the emulator's start-up mode); ``subscriptions``: subscription -> vault names (None: every
        vault in one subscription)."""
        body = {
            "enabled": enabled,
            "time_scale": time_scale,
            "retry_after": retry_after,
            "subscriptions": subscriptions or {},
        }
        return self.call("POST", "throttling", body)

    def throttle_stats(self) -> dict[str, Any]:
        """Granted (requests and weight, by kind) and throttled (429s by kind and by limit hit) counts per caller
        (User-Agent), vault and subscription since throttling was last configured."""
        return self.call("GET", "throttling/stats")

    def subscribe(self, endpoint: str, schema: str = EVENT_GRID_SCHEMA, event_types: list[str] | None = None) -> dict:
        return self.call("POST", "subscriptions", {"endpoint": endpoint, "schema": schema, "event_types": event_types})

    def events(self) -> list[dict[str, Any]]:
        return self.call("GET", "events")

    def flush_events(self, timeout: float = 10.0) -> bool:
        return self.call("POST", "events/flush", {"timeout": timeout})["flushed"]

    def reset(self) -> None:
        """Back to a quiet emulator: no faults, no throttling (start-up Retry-After mode, one subscription, counts
        reset), empty request log."""
        self.clear_faults()
        self.throttling(False, 1.0)
        self.clear_requests()

    def close(self) -> None:
        self._session.close()
