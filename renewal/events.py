"""Key Vault certificate events in, renewal requests out: the product's Event Grid boundary.

Pure functions on plain dicts, strings and bytes; the function bodies call them. See
``renewal.eventgrid.parse`` for the accepted shapes and ``renewal.eventgrid.rejections`` for the
reason codes.
"""

from renewal.eventgrid.delivery import (
    MAX_DELIVERY_BYTES,
    MAX_EVENTS_PER_DELIVERY,
    DeliveryResult,
    Ignored,
    Rejection,
    outcome,
    parse_delivery,
    requests_from_events,
)
from renewal.eventgrid.handshake import (
    EVENT_GRID_ORIGIN,
    VALIDATION_EVENT_TYPE,
    abuse_protection_headers,
    validation_code,
    validation_response,
)
from renewal.eventgrid.parse import (
    CERTIFICATE_EVENT_TYPES,
    CERTIFICATE_EXPIRED,
    CERTIFICATE_NEAR_EXPIRY,
    CERTIFICATE_NEW_VERSION_CREATED,
    CLOUD_EVENTS_SCHEMA,
    EVENT_GRID_SCHEMA,
    MAX_EVENT_BYTES,
    KeyVaultCertificateEvent,
    from_functions_event,
    parse_event,
)
from renewal.eventgrid.queue import MAX_QUEUE_MESSAGE_BYTES, parse_queue_message
from renewal.eventgrid.rejections import IgnoredQueueMessage, InvalidQueueMessage, RejectedEvent

__all__ = [
    "CERTIFICATE_EVENT_TYPES",
    "CERTIFICATE_EXPIRED",
    "CERTIFICATE_NEAR_EXPIRY",
    "CERTIFICATE_NEW_VERSION_CREATED",
    "CLOUD_EVENTS_SCHEMA",
    "EVENT_GRID_ORIGIN",
    "EVENT_GRID_SCHEMA",
    "MAX_DELIVERY_BYTES",
    "MAX_EVENTS_PER_DELIVERY",
    "MAX_EVENT_BYTES",
    "MAX_QUEUE_MESSAGE_BYTES",
    "VALIDATION_EVENT_TYPE",
    "DeliveryResult",
    "Ignored",
    "IgnoredQueueMessage",
    "InvalidQueueMessage",
    "KeyVaultCertificateEvent",
    "RejectedEvent",
    "Rejection",
    "abuse_protection_headers",
    "from_functions_event",
    "outcome",
    "parse_delivery",
    "parse_event",
    "parse_queue_message",
    "requests_from_events",
    "validation_code",
    "validation_response",
]
