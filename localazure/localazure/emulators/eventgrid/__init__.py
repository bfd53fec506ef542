"""A local Event Grid publisher: webhook subscriptions, their handshakes, and deliveries with retries.

Event Grid's side of a delivery, for the emulated sources (the Key Vault emulator raises certificate events):
a source hands :class:`Event` s to :class:`EventGridPublisher`, which delivers each to every subscription whose
filter takes it, in that subscription's schema. The receiving side, the Functions host's webhook, is
``certlc.host.eventgrid``; both take Event Grid's names from ``renewal.eventgrid.schema``.

* ``payloads.py``: an event and the two forms it is delivered in (Event Grid schema, CloudEvents 1.0)
* ``subscriptions.py``: what may be subscribed (endpoint, schema, event types) and the handshakes
* ``publisher.py``: the publisher: subscriptions, the delivery queue, retries and the delivery log
"""

from localazure.emulators.eventgrid.payloads import Event
from localazure.emulators.eventgrid.publisher import EventGridPublisher
from localazure.emulators.eventgrid.subscriptions import SubscriptionError

__all__ = ["Event", "EventGridPublisher", "SubscriptionError"]
