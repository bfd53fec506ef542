"""One Key Vault certificate event: parsed leniently, validated strictly.

Accepted shapes (a ``Mapping`` each):

* Event Grid schema: ``id``, ``topic``, ``subject``, ``eventType``, ``eventTime``, ``data``
  (``dataVersion``/``metadataVersion`` are ignored);
* CloudEvents 1.0: ``specversion`` "1.0", ``id``, ``source``, ``subject``, ``type``, ``time``, ``data``;
* the Azure Functions worker's ``func.EventGridEvent``, through :func:`from_functions_event`, or as a
  dict with the keys ``id, topic, subject, eventType`` (or ``event_type``), ``eventTime``, ``data``.

Lenient: key case, surrounding spaces and ``_`` in keys (``"ObjectName "``, ``vaultName``,
``event_type``), spaces around string values, ``NBF``/``EXP`` as numbers or digit strings.
Strict: every check below has its own reason code, and only the allow-listed :class:`Vault` (never an
event field) is carried forward to build URLs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from renewal.eventgrid import rejections
from renewal.eventgrid.jsonbody import json_size, show
from renewal.eventgrid.rejections import RejectedEvent
from renewal.eventgrid.schema import CERTIFICATE_EVENT_TYPES, CLOUD_EVENTS_SCHEMA, EVENT_GRID_SCHEMA
from renewal.vaults import Vault, is_valid_object_name, is_valid_vault_name

MAX_EVENT_BYTES = 64 * 1024

_TOPIC = re.compile(
    r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.KeyVault/vaults/([^/]+)", re.IGNORECASE
)
_VERSION = re.compile(r"[0-9A-Za-z]{1,64}")
_EVENT_ID = re.compile(r"[\x21-\x7e]{1,256}")
_EPOCH = re.compile(r"[0-9]{1,12}")
_MAX_EPOCH = 253402300799  # 9999-12-31T23:59:59Z


@dataclass(frozen=True)
class KeyVaultCertificateEvent:
    """A certificate event that passed every check; ``vault`` is the allow-list entry."""

    event_id: str
    event_type: str
    schema: str
    vault: Vault
    name: str
    version: str
    topic: str
    not_before: datetime | None
    expires_on: datetime | None
    event_time: datetime | None

    @property
    def short_type(self) -> str:
        return self.event_type.rsplit(".", 1)[-1]


def _iso(moment: Any) -> Any:
    return moment.isoformat() if isinstance(moment, datetime) else moment


def from_functions_event(event: Any) -> dict[str, Any]:
    """The worker's trigger value as the event dict it was decoded from (duck-typed, no import).

    The worker's converter returns ``func.CloudEvent`` for a CloudEvents 1.0 body (it has ``specversion``,
    ``source``, ``type``, ``time``) and ``func.EventGridEvent`` otherwise, whatever the parameter's annotation.
    """
    if hasattr(event, "specversion"):
        return {
            "specversion": event.specversion,
            "id": event.id,
            "source": event.source,
            "subject": event.subject,
            "type": event.type,
            "time": _iso(event.time),
            "data": event.get_json(),
        }
    return {
        "id": event.id,
        "topic": event.topic,
        "subject": event.subject,
        "eventType": event.event_type,
        "eventTime": _iso(event.event_time),
        "data": event.get_json(),
        "dataVersion": event.data_version,
    }


def is_valid_version(version: str) -> bool:
    return bool(_VERSION.fullmatch(version))


def normalise_keys(fields: Mapping[Any, Any], where: str) -> dict[str, Any]:
    """Fold key spelling (case, spaces, underscores) so ``"ObjectName "`` and ``objectName`` meet."""
    folded: dict[str, Any] = {}
    for key, value in fields.items():
        if not isinstance(key, str):
            raise RejectedEvent(rejections.WRONG_FIELD_TYPE, f"{where} has a non-string key {show(key)}")
        norm = key.strip().replace("_", "").lower()
        if norm in folded and folded[norm] != value:
            raise RejectedEvent(
                rejections.AMBIGUOUS_FIELD, f"{where} spells {show(key.strip())} twice with different values; send one"
            )
        folded[norm] = value
    return folded


def text_field(fields: Mapping[str, Any], key: str, label: str) -> str:
    value = fields.get(key)
    if value is None:
        raise RejectedEvent(rejections.MISSING_FIELD, f"{label} is missing")
    if not isinstance(value, str):
        raise RejectedEvent(rejections.WRONG_FIELD_TYPE, f"{label} must be a string, got {type(value).__name__}")
    value = value.strip()
    if not value:
        raise RejectedEvent(rejections.MISSING_FIELD, f"{label} is empty")
    return value


def parse_event(event: Mapping[str, Any], allow_list: Mapping[str, Vault]) -> KeyVaultCertificateEvent:
    """Validate one event against the allow-list (keyed by lower-case vault name) or raise RejectedEvent."""
    if not isinstance(event, Mapping):
        raise RejectedEvent(rejections.NOT_AN_OBJECT, f"an event must be a JSON object, got {type(event).__name__}")
    try:
        size = json_size(event)
    except (ValueError, RecursionError):
        raise RejectedEvent(rejections.NOT_JSON, "the event cannot be represented as JSON") from None
    if size > MAX_EVENT_BYTES:
        raise RejectedEvent(rejections.TOO_LARGE, f"the event is {size} bytes; the limit is {MAX_EVENT_BYTES} bytes")
    envelope = normalise_keys(event, "the event")
    schema, type_key, topic_key, time_key = _schema(envelope)
    event_type = _event_type(text_field(envelope, type_key, f"the event's {type_key!r}"))
    data = envelope.get("data")
    if data is None:
        raise RejectedEvent(rejections.MISSING_FIELD, "the event has no 'data'")
    if not isinstance(data, Mapping):
        raise RejectedEvent(
            rejections.WRONG_FIELD_TYPE, f"the event's 'data' must be an object, got {type(data).__name__}"
        )
    data = normalise_keys(data, "the event's data")

    object_type = text_field(data, "objecttype", "data.ObjectType")
    if object_type.lower() != "certificate":
        raise RejectedEvent(
            rejections.WRONG_OBJECT_TYPE, f"data.ObjectType is {show(object_type)}; expected 'Certificate'"
        )
    vault_name = text_field(data, "vaultname", "data.VaultName")
    if not is_valid_vault_name(vault_name):
        raise RejectedEvent(rejections.INVALID_VAULT_NAME, f"data.VaultName {show(vault_name)} is not a Key Vault name")
    topic = text_field(envelope, topic_key, f"the event's {topic_key!r}")
    _check_topic(topic, vault_name)
    vault = allow_list.get(vault_name.lower())
    if vault is None:
        raise RejectedEvent(
            rejections.VAULT_NOT_ALLOWED, f"vault {vault_name!r} is not in CERTLC_VAULTS; add it there to manage it"
        )
    name = text_field(data, "objectname", "data.ObjectName")
    if not is_valid_object_name(name):
        raise RejectedEvent(
            rejections.INVALID_OBJECT_NAME, f"data.ObjectName {show(name)} is not a Key Vault object name"
        )
    subject = text_field(envelope, "subject", "the event's 'subject'")
    if subject.lower() != name.lower():
        raise RejectedEvent(rejections.SUBJECT_MISMATCH, f"subject {show(subject)} is not the object name {name!r}")
    version = text_field(data, "version", "data.Version")
    if not is_valid_version(version):
        raise RejectedEvent(rejections.INVALID_VERSION, f"data.Version {show(version)} is not a Key Vault version id")
    _check_id(text_field(data, "id", "data.Id"), vault, name, version)
    return KeyVaultCertificateEvent(
        event_id=_event_id(envelope),
        event_type=event_type,
        schema=schema,
        vault=vault,
        name=name,
        version=version,
        topic=topic,
        not_before=_epoch(data.get("nbf"), "data.NBF"),
        expires_on=_epoch(data.get("exp"), "data.EXP"),
        event_time=_event_time(envelope.get(time_key), f"the event's {time_key!r}"),
    )


def _schema(envelope: Mapping[str, Any]) -> tuple[str, str, str, str]:
    if "specversion" in envelope:
        spec = envelope["specversion"]
        if not isinstance(spec, str) or spec.strip() != "1.0":
            raise RejectedEvent(
                rejections.UNSUPPORTED_SPEC_VERSION, f"specversion {show(spec)} is not supported; use '1.0'"
            )
        return CLOUD_EVENTS_SCHEMA, "type", "source", "time"
    if "eventtype" in envelope:
        return EVENT_GRID_SCHEMA, "eventtype", "topic", "eventtime"
    raise RejectedEvent(
        rejections.UNKNOWN_SCHEMA,
        "the event has neither 'eventType' (Event Grid schema) nor 'specversion' (CloudEvents 1.0)",
    )


def _event_type(value: str) -> str:
    for known in CERTIFICATE_EVENT_TYPES:
        if value.lower() == known.lower():
            return known
    raise RejectedEvent(
        rejections.UNSUPPORTED_EVENT_TYPE,
        f"event type {show(value)} is not a Key Vault certificate event; subscribe only to "
        + ", ".join(CERTIFICATE_EVENT_TYPES),
    )


def _check_topic(topic: str, vault_name: str) -> None:
    match = _TOPIC.fullmatch(topic)
    if not match:
        raise RejectedEvent(
            rejections.INVALID_TOPIC,
            f"topic {show(topic)} is not a Key Vault resource id "
            "(/subscriptions/…/resourceGroups/…/providers/Microsoft.KeyVault/vaults/NAME)",
        )
    if match.group(1).lower() != vault_name.lower():
        raise RejectedEvent(
            rejections.TOPIC_MISMATCH,
            f"the topic names vault {show(match.group(1))} but data.VaultName is {vault_name!r}",
        )


def _check_id(id_url: str, vault: Vault, name: str, version: str) -> None:
    """The Id must name this certificate version on ``NAME.vault.<cloud>`` or on the configured vault URL."""
    expected = f"https://{{vault host}}/certificates/{name}/{version}"
    try:
        parts = urlsplit(id_url)
        port = parts.port or 443
        configured = urlsplit(vault.url)
    except ValueError:
        raise RejectedEvent(
            rejections.ID_MISMATCH, f"data.Id {show(id_url)} is not a URL; expected {expected}"
        ) from None
    segments = parts.path.split("/")
    host = (parts.hostname or "").lower()
    same_vault = host.startswith(f"{vault.name.lower()}.vault.") or (
        host == (configured.hostname or "").lower() and port == (configured.port or 443)
    )
    if (
        parts.scheme.lower() != "https"
        or parts.query
        or parts.fragment
        or parts.username is not None
        or len(segments) != 4
        or segments[0] != ""
        or segments[1].lower() != "certificates"
        or segments[2].lower() != name.lower()
        or segments[3].lower() != version.lower()
        or not same_vault
    ):
        raise RejectedEvent(rejections.ID_MISMATCH, f"data.Id {show(id_url)} does not match; expected {expected}")


def _event_id(envelope: Mapping[str, Any]) -> str:
    event_id = text_field(envelope, "id", "the event's 'id'")
    if not _EVENT_ID.fullmatch(event_id):
        raise RejectedEvent(
            rejections.INVALID_EVENT_ID, f"event id {show(event_id)} must be 1-256 printable ASCII characters"
        )
    return event_id


def _epoch(value: Any, label: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str) and _EPOCH.fullmatch(value.strip()):
        seconds = int(value.strip())
    elif isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, float) and value.is_integer():
        seconds = int(value)
    else:
        raise RejectedEvent(rejections.INVALID_TIMESTAMP, f"{label} {show(value)} is not a Unix time in seconds")
    if not 0 <= seconds <= _MAX_EPOCH:
        raise RejectedEvent(rejections.INVALID_TIMESTAMP, f"{label} {seconds} is outside the years 1970-9999")
    return datetime.fromtimestamp(seconds, UTC)


def _event_time(value: Any, label: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise RejectedEvent(
                rejections.INVALID_TIMESTAMP, f"{label} {show(value)} is not an ISO-8601 time"
            ) from None
    else:
        raise RejectedEvent(
            rejections.INVALID_TIMESTAMP, f"{label} must be an ISO-8601 string, got {type(value).__name__}"
        )
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
