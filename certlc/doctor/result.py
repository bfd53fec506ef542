"""One check's outcome, and what one probe saw on the wire."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CheckResult:
    """``name`` says what was checked (``vault kv1``); ``fix`` says what to do, and is empty when ``ok``."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    target: str = ""  # the URL or path the check looked at
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "detail": self.detail,
            "fix": self.fix,
            "target": self.target,
            "seconds": round(self.seconds, 3),
        }


def passed(name: str, detail: str, target: str = "") -> CheckResult:
    return CheckResult(name, True, detail, "", target)


def failed(name: str, detail: str, fix: str, target: str = "") -> CheckResult:
    return CheckResult(name, False, detail, fix, target)


@dataclass(frozen=True)
class Answer:
    """What one call saw: an HTTP answer (``status``), or why nothing answered (``status`` None, ``unreachable``)."""

    status: int | None = None
    code: str = ""  # the service's error code, when it gave one
    message: str = ""  # the service's message (first line), or why nothing answered
    body: Any = None  # the parsed body, for the probes that read it
    unreachable: bool = False
    no_token: bool = False  # the identity could not get a token at all
    fix: str = ""  # for a setting that cannot be used (``code`` "Config"): its own fix, where the probe knows it

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def describe(self) -> str:
        """``HTTP 403 Forbidden: message`` or the reason nothing answered, on one line."""
        if self.status is None:
            return self.message
        text = f"HTTP {self.status}" + (f" {self.code}" if self.code else "")
        return text + (f": {self.message}" if self.message else "")
