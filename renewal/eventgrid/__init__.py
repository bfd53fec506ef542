"""Event Grid input: one Key Vault certificate event at a time (renewal queue bodies: ``renewal.queue_body``).

The Functions host answers the subscription handshakes and splits deliveries (locally:
``certlc.host.eventgrid``); the ``event`` function sees one event per invocation.

``renewal.events`` is the public entry point; the modules here hold one idea each.
"""
