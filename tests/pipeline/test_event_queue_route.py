"""Key Vault's events delivered by Event Grid straight onto the renewal queue (``eventDestination=storageQueue``).

The evidence on the encoding Event Grid uses for a queue message is split: base64 of the event's JSON in a 2022
report (MicrosoftDocs/azure-docs#102923), plain JSON in 2021 ones (MicrosoftDocs/azure-docs#69702,
Azure/azure-webjobs-sdk#2667). host.json keeps ``messageEncoding: base64``: the first renews through the queue,
the second is moved to the poison queue at once by the trigger (as the queues extension 5.x does) and the sweep
renews the certificate instead; nothing is lost under either.
"""

from __future__ import annotations

import json

from renewal.clients import queue_client
from tests.pipeline.helpers import drain_until, near_expiry_event, seed, unique, versions

RAW = {"message_encode_policy": None, "message_decode_policy": None}  # the text on the wire, as Event Grid writes it


def due_certificate(stack, prefix: str) -> tuple[str, str]:
    """Due by its own window (450 days before expiry) but not by Key Vault's, so only our message acts on it."""
    name = unique(prefix)
    old = seed(stack, name, days_left=400, lifetime_days=500, tags={"certlc-renew-before-days": "450"})
    return name, old.properties.version


def poison_texts(stack) -> list[str]:
    poison = queue_client(stack.settings, f"{stack.settings['CERTLC_QUEUE_NAME']}-poison", **RAW)
    return [m.content for m in poison.peek_messages(max_messages=32)]


def test_an_event_base64_encoded_as_event_grid_writes_it_now_is_renewed_from_the_queue(stack):
    name, version = due_certificate(stack, "queue-b64")
    queue_client(stack.settings).send_message(json.dumps(near_expiry_event(stack, name, version)))  # base64
    drain_until(stack, lambda: len(versions(stack, name)) == 2, names=(name,))


def test_an_event_in_plain_json_as_event_grid_once_wrote_it_is_poisoned_and_the_sweep_renews(stack):
    name, version = due_certificate(stack, "queue-plain")
    text = json.dumps(near_expiry_event(stack, name, version))
    queue_client(stack.settings, **RAW).send_message(text)
    drain_until(stack, lambda: text in poison_texts(stack))
    assert len(versions(stack, name)) == 1  # the trigger could not read it: no renewal from the event
    stack.host.trigger_timer("sweep")
    drain_until(stack, lambda: len(versions(stack, name)) == 2, names=(name,))
