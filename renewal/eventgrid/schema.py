"""Event Grid's own names, as both ends of a webhook delivery use them.

One copy for the event parser here, the local Functions host's webhook (``certlc.host``) and the local
Event Grid publisher (``localazure.emulators.eventgrid``), so the sender and the receivers cannot drift apart.
Only names Event Grid itself defines belong here; each side's limits and reason codes stay with that side.
"""

from __future__ import annotations

# The delivery schemas, as an Event Grid subscription names them.
EVENT_GRID_SCHEMA = "EventGridSchema"
CLOUD_EVENTS_SCHEMA = "CloudEventSchemaV1_0"

# Key Vault's certificate event types.
CERTIFICATE_NEAR_EXPIRY = "Microsoft.KeyVault.CertificateNearExpiry"
CERTIFICATE_EXPIRED = "Microsoft.KeyVault.CertificateExpired"
CERTIFICATE_NEW_VERSION_CREATED = "Microsoft.KeyVault.CertificateNewVersionCreated"
CERTIFICATE_EVENT_TYPES = (CERTIFICATE_NEAR_EXPIRY, CERTIFICATE_EXPIRED, CERTIFICATE_NEW_VERSION_CREATED)

# The Event Grid schema's handshake: a POST of this event, marked by the header below.
VALIDATION_EVENT_TYPE = "Microsoft.EventGrid.SubscriptionValidationEvent"
EVENT_TYPE_HEADER = "aeg-event-type"
SUBSCRIPTION_VALIDATION = "SubscriptionValidation"  # the header's value on the handshake
NOTIFICATION = "Notification"  # its value on a delivery

# The CloudEvents handshake (webhook abuse protection): an OPTIONS request from Event Grid's origin.
EVENT_GRID_ORIGIN = "eventgrid.azure.net"
REQUEST_ORIGIN_HEADER = "WebHook-Request-Origin"
ALLOWED_ORIGIN_HEADER = "WebHook-Allowed-Origin"
