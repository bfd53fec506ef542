"""Key Vault certificate events in, renewal requests out: the product's Event Grid boundary.

Pure functions on plain dicts, strings and bytes; the function bodies call them, one event at a time
(the Functions host answers the subscription handshakes and splits a delivery into events). See
``renewal.eventgrid.parse`` for the accepted shapes and ``renewal.eventgrid.rejections`` for the
reason codes.
"""

from renewal.eventgrid.delivery import Ignored, outcome
from renewal.eventgrid.parse import MAX_EVENT_BYTES, KeyVaultCertificateEvent, from_functions_event, parse_event
from renewal.eventgrid.rejections import IgnoredQueueMessage, InvalidQueueMessage, RejectedEvent
from renewal.eventgrid.schema import (
    CERTIFICATE_EVENT_TYPES,
    CERTIFICATE_EXPIRED,
    CERTIFICATE_NEAR_EXPIRY,
    CERTIFICATE_NEW_VERSION_CREATED,
    CLOUD_EVENTS_SCHEMA,
    EVENT_GRID_SCHEMA,
)
from renewal.queue_body import MAX_QUEUE_MESSAGE_BYTES, parse_queue_message

__all__ = [
    "CERTIFICATE_EVENT_TYPES",
    "CERTIFICATE_EXPIRED",
    "CERTIFICATE_NEAR_EXPIRY",
    "CERTIFICATE_NEW_VERSION_CREATED",
    "CLOUD_EVENTS_SCHEMA",
    "EVENT_GRID_SCHEMA",
    "MAX_EVENT_BYTES",
    "MAX_QUEUE_MESSAGE_BYTES",
    "Ignored",
    "IgnoredQueueMessage",
    "InvalidQueueMessage",
    "KeyVaultCertificateEvent",
    "RejectedEvent",
    "from_functions_event",
    "outcome",
    "parse_event",
    "parse_queue_message",
]
