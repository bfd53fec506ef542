"""Why an event was refused: a stable reason code for dashboards and tests, and a message for people."""

from __future__ import annotations

from renewal.messages import InvalidMessage

# Stable reason codes. Log and alert on the code; show the message.
NOT_JSON = "not_json"
TOO_LARGE = "too_large"
TOO_DEEP = "too_deep"
NOT_AN_OBJECT = "not_an_object"
UNKNOWN_SCHEMA = "unknown_schema"
UNSUPPORTED_SPEC_VERSION = "unsupported_spec_version"
MISSING_FIELD = "missing_field"
WRONG_FIELD_TYPE = "wrong_field_type"
AMBIGUOUS_FIELD = "ambiguous_field"
UNSUPPORTED_EVENT_TYPE = "unsupported_event_type"
WRONG_OBJECT_TYPE = "wrong_object_type"
INVALID_VAULT_NAME = "invalid_vault_name"
VAULT_NOT_ALLOWED = "vault_not_allowed"
INVALID_OBJECT_NAME = "invalid_object_name"
INVALID_VERSION = "invalid_version"
INVALID_EVENT_ID = "invalid_event_id"
INVALID_TOPIC = "invalid_topic"
TOPIC_MISMATCH = "topic_mismatch"
SUBJECT_MISMATCH = "subject_mismatch"
ID_MISMATCH = "id_mismatch"
INVALID_TIMESTAMP = "invalid_timestamp"
NOT_BASE64 = "not_base64"
UNKNOWN_MESSAGE = "unknown_message"
INVALID_REQUEST = "invalid_request"

# Accepted but deliberately not acted on.
NEW_VERSION_CREATED = "new_version_created"


class RejectedEvent(ValueError):
    """An event (or a whole delivery) that certlc refuses; retrying it cannot help."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class InvalidQueueMessage(InvalidMessage):
    """A queue body that is neither a renewal request nor a usable Key Vault certificate event."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class IgnoredQueueMessage(InvalidQueueMessage):
    """A valid event that asks for no renewal (e.g. NewVersionCreated): drop it, do not alert."""
