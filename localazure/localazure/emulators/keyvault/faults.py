"""Injected failures: status codes, Retry-After and latency for requests matching a rule."""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass
from typing import Any

FAULT_STATUSES = (408, 429, 500, 502, 503, 504)
_CODES = {
    408: ("RequestTimeout", "The request timed out."),
    429: ("Throttled", "Request was not processed because too many requests were received."),
    500: ("InternalServerError", "The service encountered an internal error. Please retry."),
    502: ("BadGateway", "The service received an invalid response. Please retry."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable. Please retry."),
    504: ("GatewayTimeout", "The service did not answer in time. Please retry."),
}


@dataclass
class Fault:
    status: int | None
    retry_after: float | None
    count: int | None
    ratio: float | None
    path: str | None
    method: str | None
    latency_ms: int
    hits: int = 0

    def describe(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def error_body(self) -> dict[str, Any]:
        code, message = _CODES[self.status or 500]
        return {"error": {"code": code, "message": f"{message} (injected fault)"}}


def parse_fault(spec: Any) -> Fault:
    if not isinstance(spec, dict):
        raise ValueError('a fault is a JSON object, e.g. {"status": 503, "count": 2}')
    status = spec.get("status")
    if status is not None and status not in FAULT_STATUSES:
        raise ValueError(f"status must be one of {list(FAULT_STATUSES)}")
    latency = int(spec.get("latency_ms") or 0)
    if status is None and latency <= 0:
        raise ValueError("a fault needs a status, a latency_ms, or both")
    count = spec.get("count")
    ratio = spec.get("ratio")
    if count is not None and (not isinstance(count, int) or count < 1):
        raise ValueError("count must be a positive integer")
    if ratio is not None and not (isinstance(ratio, int | float) and 0 < ratio <= 1):
        raise ValueError("ratio must be a number in (0, 1]")
    path = spec.get("path")
    if path is not None:
        re.compile(path)
    retry_after = spec.get("retry_after")
    method = spec.get("method")
    return Fault(
        status=status,
        retry_after=float(retry_after) if retry_after is not None else None,
        count=count,
        ratio=float(ratio) if ratio is not None else None,
        path=path,
        method=method.upper() if isinstance(method, str) else None,
        latency_ms=latency,
    )


class Faults:
    def __init__(self) -> None:
        self._rules: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, spec: Any) -> Fault:
        fault = parse_fault(spec)
        with self._lock:
            self._rules.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.describe() for rule in self._rules]

    def match(self, method: str, path: str) -> Fault | None:
        """The first applicable rule, consuming one of its ``count`` if it has one."""
        with self._lock:
            for rule in self._rules:
                if rule.method and rule.method != method:
                    continue
                if rule.path and not re.search(rule.path, path):
                    continue
                if rule.count is not None and rule.hits >= rule.count:
                    continue
                if rule.ratio is not None and random.random() >= rule.ratio:
                    continue
                rule.hits += 1
                return rule
        return None
