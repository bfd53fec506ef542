"""The renewal queue message: versioned JSON, one certificate per message.

The queue carries it base64-encoded, as the Functions host writes it; the queue
adapters own that encoding, this module only owns the JSON.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

SCHEMA_VERSION = 1

TRIGGERS = frozenset({"near_expiry", "expired", "sweep", "canary", "manual", "compromise", "revoked", "issue"})
NEW_KEY_TRIGGERS = frozenset({"compromise", "revoked"})  # renewed now with a new key, whatever the dates
# Longest value each text field may have, checked when a message is read, before any effect: the correlation id
# becomes a tag value (Key Vault takes 256 characters), a longer one would be refused at the merge, after the CA
# signed. Key Vault names: a vault 3-24 characters, an object 1-127, a version 32 hex digits.
FIELD_LIMITS = {
    "vault": 24,
    "name": 127,
    "version": 32,
    "correlation_id": 64,
    "ca_request_id": 2048,  # an ACME order URL
    "ca_profile": 256,
    "kv_request_id": 256,
    "event_id": 256,
    "triggered_at": 40,
}
MAX_ATTEMPT = 1000


class InvalidMessage(ValueError):
    """A queue message that can never be processed; it is rejected without retry."""


@dataclass(frozen=True)
class RenewalRequest:
    vault: str
    name: str
    trigger: str  # what started the renewal (an event, the sweep, an operator); every "reason" is an outcome
    version: str | None = None  # the certificate version the event was about
    attempt: int = 1
    correlation_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    ca_request_id: str | None = None  # a CA request still pending, polled on the next attempt
    ca_profile: str | None = None  # the profile the pending CA request was made with
    kv_request_id: str | None = None  # a Key Vault pending operation seen in flight on an earlier attempt
    event_id: str | None = None
    force: bool = False
    # when the trigger became this request (ISO 8601 UTC), kept through every attempt: "trigger to merged" in the
    # renewal history. An instance of the previous release ignores it, and a message without it reads as None.
    triggered_at: str | None = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))

    def next_attempt(self, **changes: Any) -> RenewalRequest:
        return replace(self, attempt=self.attempt + 1, **changes)

    def to_json(self) -> str:
        body = {"schema": SCHEMA_VERSION, **{k: v for k, v in asdict(self).items() if v is not None}}
        body["reason"] = self.trigger  # the field's former name, for instances still on the previous release
        return json.dumps(body, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> RenewalRequest:
        if body.get("schema") != SCHEMA_VERSION:
            raise InvalidMessage(f"unsupported message schema {body.get('schema')!r} (expected {SCHEMA_VERSION})")
        fields = {k: body[k] for k in cls.__dataclass_fields__ if k in body}
        if "trigger" not in fields and "reason" in body:  # written by the previous release
            fields["trigger"] = body["reason"]
        for key in ("vault", "name", "trigger"):
            if not isinstance(fields.get(key), str) or not fields[key]:
                raise InvalidMessage(f"message field {key!r} is missing or not a string")
        if fields["trigger"] not in TRIGGERS:
            raise InvalidMessage(f"unknown renewal trigger {fields['trigger']!r}; expected one of {sorted(TRIGGERS)}")
        attempt = fields.get("attempt", 1)
        if not isinstance(attempt, int) or isinstance(attempt, bool) or not 1 <= attempt <= MAX_ATTEMPT:
            raise InvalidMessage(f"message field 'attempt' must be a whole number from 1 to {MAX_ATTEMPT}")
        fields.setdefault("triggered_at", None)
        for key in (
            "version",
            "correlation_id",
            "ca_request_id",
            "ca_profile",
            "kv_request_id",
            "event_id",
            "triggered_at",
        ):
            if key in fields and fields[key] is not None and not isinstance(fields[key], str):
                raise InvalidMessage(f"message field {key!r} must be a string")
        for key, limit in FIELD_LIMITS.items():
            if isinstance(fields.get(key), str) and len(fields[key]) > limit:
                raise InvalidMessage(f"message field {key!r} is {len(fields[key])} characters long, over {limit}")
        if "force" in fields and not isinstance(fields["force"], bool):
            raise InvalidMessage("message field 'force' must be true or false")
        return cls(**fields)
