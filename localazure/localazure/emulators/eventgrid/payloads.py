"""An event as its source raises it, and the two forms Event Grid delivers it in.

* ``EventGridSchema``: a JSON array (Event Grid always sends an array), ``Content-Type:
  application/json; charset=utf-8``, ``aeg-event-type: Notification``.
* ``CloudEventSchemaV1_0``: one structured-mode event per request, ``Content-Type:
  application/cloudevents+json; charset=utf-8``, source = topic. Event Grid's documentation gives that
  content type for CloudEvents deliveries and sends one event per request unless the subscription
  turns batching on (``maxEventsPerBatch`` defaults to 1), so the publisher does the same.

The topic is the source resource's id, ``/subscriptions/{sub}/resourceGroups/{rg}/providers/{resource}``,
as for a system topic.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from renewal.eventgrid.schema import CLOUD_EVENTS_SCHEMA, EVENT_GRID_SCHEMA, EVENT_TYPE_HEADER, NOTIFICATION


@dataclass(frozen=True)
class Event:
    """One event as its source raises it; the publisher gives it an id and its topic."""

    resource: str  # the source below its resource group's providers, e.g. "Microsoft.KeyVault/vaults/kv1"
    subject: str
    event_type: str  # e.g. "Microsoft.KeyVault.CertificateNearExpiry"
    event_time: datetime
    data: Mapping[str, Any]


@dataclass(frozen=True)
class _Form:
    """How one schema names an event's topic, type and time, what else it always carries, and its headers."""

    topic: str
    type: str
    time: str
    fixed: Mapping[str, str]
    headers: Mapping[str, str]


_FORMS = {
    EVENT_GRID_SCHEMA: _Form(
        "topic",
        "eventType",
        "eventTime",
        {"dataVersion": "1", "metadataVersion": "1"},
        {"Content-Type": "application/json; charset=utf-8", "aeg-metadata-version": "1", "aeg-data-version": "1"},
    ),
    CLOUD_EVENTS_SCHEMA: _Form(
        "source",
        "type",
        "time",
        {"specversion": "1.0"},
        {"Content-Type": "application/cloudevents+json; charset=utf-8", "aeg-metadata-version": "1.0"},
    ),
}


def topic_for(subscription_id: str, resource_group: str, resource: str) -> str:
    """The id of the resource an event comes from, which Event Grid gives as its topic (or source)."""
    return f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/{resource}"


def event_time_text(moment: datetime) -> str:
    """ISO-8601 UTC with seven fractional digits and ``Z``, as Event Grid writes it."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def envelope(event: Event, schema: str, *, event_id: str, topic: str) -> dict[str, Any]:
    """``event`` as one JSON object of ``schema``, its members in the order Event Grid's samples show."""
    form = _FORMS[schema]
    return {
        "id": event_id,
        form.topic: topic,
        "subject": event.subject,
        form.type: event.event_type,
        form.time: event_time_text(event.event_time),
        "data": dict(event.data),
        **form.fixed,
    }


def payload(event: Event, schema: str, subscription_name: str, *, event_id: str, topic: str) -> tuple[bytes, dict]:
    """The body and headers that deliver ``event`` to one subscription (the delivery count is added per attempt)."""
    body = envelope(event, schema, event_id=event_id, topic=topic)
    headers = {EVENT_TYPE_HEADER: NOTIFICATION, "aeg-subscription-name": subscription_name.upper()}
    headers.update(_FORMS[schema].headers)
    return json.dumps([body] if schema == EVENT_GRID_SCHEMA else body).encode(), headers
