"""Key Vault's service limits, weighted by key type, per vault and per subscription, over a sliding window.

"Azure Key Vault service limits" (learn.microsoft.com/azure/key-vault/general/service-limits), per vault per
region, per 10 seconds:

============================  ===========  =========  ================  ==============
key type                      HSM CREATE   HSM other  software CREATE   software other
============================  ===========  =========  ================  ==============
RSA 2048                      10           2,000      20                4,000
RSA 3072                      10           500        20                1,000
RSA 4096                      10           250        20                500
EC (P-256/384/521, P-256K)    10           2,000      20                4,000
============================  ===========  =========  ================  ==============

"The throttling thresholds are weighted, and enforcement is on their sum." The emulator keeps two budgets per
vault, 20 CREATE and 4,000 other, and charges each request a weight: a software create 1, an HSM create 2 (so
10 HSM creates); an other transaction 4,000 / its row's limit (software RSA-2048/EC 1, RSA-3072 4, RSA-4096 8;
HSM RSA-2048/EC 2, RSA-3072 8, RSA-4096 16). Secrets, issuers, contacts, lists and anything without a key type
weigh 1. The throttling guidance (learn.microsoft.com/azure/key-vault/general/overview-throttling) adds a
subscription-wide ceiling, "five times the individual key vault limit", for each kind (100 CREATE, 20,000 other
weight per 10 s), and "failed requests that return a 429 do not count towards the throttle limits".

A real 429 has been seen without ``Retry-After`` (vcsjones/AzureSignTool#219): ``retry_after`` is ``always``
(the header on every 429), ``never``, or ``mixed`` (the 2nd, 4th, … 429 since the last configuration lack it).
The start-up mode comes from ``CERTLC_KEYVAULT_THROTTLE_RETRY_AFTER`` (default ``always``). ``time_scale``
shrinks the window for tests. Granted and throttled requests are counted per caller (User-Agent), vault and
subscription, whether or not enforcement is on; configuring resets the counts.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from .errors import KeyVaultError

WINDOW_SECONDS = 10.0
KINDS = ("create", "other")
LIMITS = {"create": 20, "other": 4000}
SUBSCRIPTION_FACTOR = 5
SUBSCRIPTION_LIMITS = {kind: SUBSCRIPTION_FACTOR * limit for kind, limit in LIMITS.items()}
RETRY_AFTER_MODES = ("always", "never", "mixed")
RETRY_AFTER_ENV = "CERTLC_KEYVAULT_THROTTLE_RETRY_AFTER"
DEFAULT_SUBSCRIPTION = "default"
UNKNOWN_CALLER = "(no User-Agent)"
OTHER_CALLERS = "(other callers)"
MAX_CALLERS = 1000
MAX_CALLER_LENGTH = 256

# Per-vault "other" limits of the service-limits table, by (HSM, key): the weight is 4,000 / the limit.
_OTHER_LIMITS = {
    (False, "RSA-2048"): 4000,
    (False, "RSA-3072"): 1000,
    (False, "RSA-4096"): 500,
    (False, "EC"): 4000,
    (True, "RSA-2048"): 2000,
    (True, "RSA-3072"): 500,
    (True, "RSA-4096"): 250,
    (True, "EC"): 2000,
}
_HSM_CREATE_LIMIT = 10


def default_retry_after() -> str:
    """The start-up Retry-After mode: ``CERTLC_KEYVAULT_THROTTLE_RETRY_AFTER`` or ``always``."""
    mode = (os.environ.get(RETRY_AFTER_ENV) or "always").strip().lower()
    if mode not in RETRY_AFTER_MODES:
        raise ValueError(f"{RETRY_AFTER_ENV} must be one of {', '.join(RETRY_AFTER_MODES)}: {mode!r}")
    return mode


def _key_row(key_props: Mapping[str, Any]) -> tuple[bool, str] | None:
    kty = str(key_props.get("kty") or "").upper()
    if kty not in ("RSA", "RSA-HSM", "EC", "EC-HSM"):
        return None
    hsm = kty.endswith("-HSM")
    if kty.startswith("EC"):
        return hsm, "EC"
    try:
        size = int(key_props.get("key_size") or 2048)
    except (TypeError, ValueError):
        size = 2048
    # Key Vault makes 2048, 3072 and 4096-bit keys; anything else is charged as the next size up.
    return hsm, "RSA-2048" if size <= 2048 else "RSA-3072" if size <= 3072 else "RSA-4096"


def weight(kind: str, key_props: Mapping[str, Any] | None) -> int:
    """What one request of ``kind`` on a key with ``key_props`` (kty, key_size, crv) costs; 1 without a key."""
    row = _key_row(key_props) if isinstance(key_props, Mapping) else None
    if row is None:
        return 1
    hsm, key = row
    if kind == "create":
        return LIMITS["create"] // _HSM_CREATE_LIMIT if hsm else 1
    return LIMITS["other"] // _OTHER_LIMITS[hsm, key]


def _counts() -> dict[str, Any]:
    return {
        "granted": {kind: {"requests": 0, "weight": 0} for kind in KINDS},
        "throttled": {kind: 0 for kind in KINDS},
        "throttled_by": {"vault": 0, "subscription": 0},
    }


class _Window:
    """Weighted hits of one budget over the sliding window."""

    def __init__(self) -> None:
        self.hits: deque[tuple[float, int]] = deque()
        self.total = 0

    def expire(self, oldest: float) -> None:
        while self.hits and self.hits[0][0] <= oldest:
            self.total -= self.hits.popleft()[1]

    def wait(self, needed: int, limit: int, window: float, now: float) -> float:
        """Seconds until ``needed`` more fits under ``limit`` (hits leave the window oldest first)."""
        left = self.total
        for at, cost in self.hits:
            left -= cost
            if left + needed <= limit:
                return at + window - now
        return window

    def add(self, now: float, cost: int) -> None:
        self.hits.append((now, cost))
        self.total += cost


class Throttle:
    def __init__(self, retry_after: str | None = None) -> None:
        self.enabled = False
        self.time_scale = 1.0
        self.default_retry_after = retry_after or default_retry_after()
        if self.default_retry_after not in RETRY_AFTER_MODES:
            raise ValueError(f"retry_after must be one of {', '.join(RETRY_AFTER_MODES)}: {retry_after!r}")
        self.retry_after = self.default_retry_after
        self._subscriptions: dict[str, str] = {}  # vault -> subscription, for the vaults configured
        self._windows: dict[tuple[str, str, str], _Window] = {}  # (scope, name, kind)
        self._throttled = 0
        self._stats: dict[str, dict[str, dict[str, Any]]] = {"callers": {}, "vaults": {}, "subscriptions": {}}
        self._lock = threading.Lock()

    def configure(self, spec: Any) -> dict[str, Any]:
        """Apply ``{"enabled", "time_scale", "retry_after", "subscriptions"}`` (absent keys keep their value;
        ``"retry_after": null`` is the start-up mode); the windows and the counts start afresh."""
        if not isinstance(spec, dict):
            raise ValueError('throttling settings are a JSON object, e.g. {"enabled": true, "time_scale": 0.1}')
        scale = float(spec.get("time_scale", self.time_scale))
        if not 0 < scale <= 1:
            raise ValueError("time_scale must be in (0, 1]: it shrinks the 10 s window")
        mode = spec.get("retry_after", self.retry_after)
        mode = self.default_retry_after if mode is None else mode
        if mode not in RETRY_AFTER_MODES:
            raise ValueError(f"retry_after must be one of {', '.join(RETRY_AFTER_MODES)}: {mode!r}")
        subscriptions = self._subscriptions
        if "subscriptions" in spec:
            subscriptions = _vault_subscriptions(spec["subscriptions"])
        with self._lock:
            self.enabled = bool(spec.get("enabled", self.enabled))
            self.time_scale = scale
            self.retry_after = mode
            self._subscriptions = subscriptions
            self._windows.clear()
            self._throttled = 0
            for table in self._stats.values():
                table.clear()
        return self.settings()

    def settings(self) -> dict[str, Any]:
        with self._lock:
            members: dict[str, list[str]] = {}
            for vault, subscription in sorted(self._subscriptions.items()):
                members.setdefault(subscription, []).append(vault)
            return {
                "enabled": self.enabled,
                "time_scale": self.time_scale,
                "window_seconds": WINDOW_SECONDS * self.time_scale,
                "limits": dict(LIMITS),
                "subscription_limits": dict(SUBSCRIPTION_LIMITS),
                "retry_after": self.retry_after,
                "retry_after_default": self.default_retry_after,
                "subscriptions": members,
                "default_subscription": DEFAULT_SUBSCRIPTION,
                "stats": self._stats_copy(),
            }

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return self._stats_copy()

    def _stats_copy(self) -> dict[str, Any]:
        return {
            table: {
                name: {
                    "granted": {kind: dict(c) for kind, c in counts["granted"].items()},
                    "throttled": dict(counts["throttled"]),
                    "throttled_by": dict(counts["throttled_by"]),
                }
                for name, counts in sorted(entries.items())
            }
            for table, entries in self._stats.items()
        }

    def subscription_of(self, vault: str) -> str:
        return self._subscriptions.get(vault, DEFAULT_SUBSCRIPTION)

    def _entries(self, caller: str | None, vault: str, subscription: str) -> list[dict[str, Any]]:
        callers = self._stats["callers"]
        who = (caller or UNKNOWN_CALLER)[:MAX_CALLER_LENGTH]
        if who not in callers and len(callers) >= MAX_CALLERS:
            who = OTHER_CALLERS
        return [
            callers.setdefault(who, _counts()),
            self._stats["vaults"].setdefault(vault, _counts()),
            self._stats["subscriptions"].setdefault(subscription, _counts()),
        ]

    def check(self, vault: str, kind: str, weight: int = 1, caller: str | None = None) -> None:
        """Count one request of ``kind`` and ``weight`` from ``caller`` (its User-Agent); raise the 429 when
        its vault's or its subscription's budget for ``kind`` has no room for it in the window."""
        weight = max(1, int(weight))
        window = WINDOW_SECONDS * self.time_scale
        now = time.monotonic()
        with self._lock:
            subscription = self.subscription_of(vault)
            entries = self._entries(caller, vault, subscription)
            budgets = (
                ("vault", vault, LIMITS[kind], self._windows.setdefault(("vault", vault, kind), _Window())),
                (
                    "subscription",
                    subscription,
                    SUBSCRIPTION_LIMITS[kind],
                    self._windows.setdefault(("subscription", subscription, kind), _Window()),
                ),
            )
            if self.enabled:
                for scope, name, limit, hits in budgets:
                    hits.expire(now - window)
                    if hits.total + weight > limit:
                        for counts in entries:
                            counts["throttled"][kind] += 1
                            counts["throttled_by"][scope] += 1
                        self._throttled += 1
                        wait = hits.wait(weight, limit, window, now)
                        raise self._throttled_error(scope, name, kind, weight, limit, window, wait)
                for _scope, _name, _limit, hits in budgets:
                    hits.add(now, weight)
            for counts in entries:
                counts["granted"][kind]["requests"] += 1
                counts["granted"][kind]["weight"] += weight

    def _throttled_error(
        self, scope: str, name: str, kind: str, weight: int, limit: int, window: float, wait: float
    ) -> KeyVaultError:
        send = self.retry_after == "always" or (self.retry_after == "mixed" and self._throttled % 2 == 1)
        headers = {"Retry-After": str(max(1, math.ceil(wait)))} if send else {}
        return KeyVaultError(
            429,
            "Throttled",
            "Request was not processed because too many requests were received. "
            f"Reason: {limit} {kind} transaction weight per {window:g} s for {scope} {name} "
            f"(this request weighs {weight}).",
            headers=headers,
        )


def _vault_subscriptions(raw: Any) -> dict[str, str]:
    """``{"sub-a": ["kv1", "kv2"], ...}`` -> vault -> subscription; a vault in two subscriptions is refused."""
    if not isinstance(raw, dict):
        raise ValueError('subscriptions are a JSON object of subscription -> vault names, e.g. {"sub-a": ["kv1"]}')
    found: dict[str, str] = {}
    for subscription, vaults in raw.items():
        if not isinstance(vaults, list) or not all(isinstance(v, str) and v for v in vaults):
            raise ValueError(f"subscription {subscription!r} needs a list of vault names")
        for vault in vaults:
            if vault in found and found[vault] != subscription:
                raise ValueError(f"vault {vault!r} is in two subscriptions: {found[vault]!r} and {subscription!r}")
            found[vault] = subscription
    return found
