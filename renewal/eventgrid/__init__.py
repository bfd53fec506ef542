"""Event Grid input: Key Vault certificate events, deliveries, queue bodies and the subscription handshake.

``renewal.events`` is the public entry point; the modules here hold one idea each.
"""
