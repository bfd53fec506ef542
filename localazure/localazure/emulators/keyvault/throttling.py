"""Key Vault's per-vault service limits, enforced over a sliding window.

Numbers from "Azure Key Vault service limits" (learn.microsoft.com/azure/key-vault/general/
service-limits), software-protected keys, per vault per region, per 10 seconds:
CREATE key 20 (a certificate create makes a key), all other transactions 4,000
(RSA 2048 / EC; secrets and vault transactions share the 4,000). Requests answered 429
do not count, as the throttling guidance says. ``time_scale`` shrinks the window for tests.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Any

from .errors import KeyVaultError

WINDOW_SECONDS = 10.0
LIMITS = {"create": 20, "other": 4000}


class Throttle:
    def __init__(self) -> None:
        self.enabled = False
        self.time_scale = 1.0
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def configure(self, spec: Any) -> dict[str, Any]:
        if not isinstance(spec, dict):
            raise ValueError('throttling settings are a JSON object, e.g. {"enabled": true, "time_scale": 0.1}')
        scale = float(spec.get("time_scale", self.time_scale))
        if not 0 < scale <= 1:
            raise ValueError("time_scale must be in (0, 1]: it shrinks the 10 s window")
        with self._lock:
            self.enabled = bool(spec.get("enabled", self.enabled))
            self.time_scale = scale
            self._hits.clear()
        return self.settings()

    def settings(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "time_scale": self.time_scale,
            "window_seconds": WINDOW_SECONDS * self.time_scale,
            "limits": dict(LIMITS),
        }

    def check(self, vault: str, kind: str) -> None:
        if not self.enabled:
            return
        window = WINDOW_SECONDS * self.time_scale
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault((vault, kind), deque())
            while hits and hits[0] <= now - window:
                hits.popleft()
            if len(hits) >= LIMITS[kind]:
                wait = hits[0] + window - now
                raise KeyVaultError(
                    429,
                    "Throttled",
                    "Request was not processed because too many requests were received. "
                    f"Reason: {LIMITS[kind]} {kind} transactions per {window:g} s for vault {vault}.",
                    headers={"Retry-After": str(max(1, math.ceil(wait)))},
                )
            hits.append(now)
