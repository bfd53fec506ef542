"""The Azure stand-ins (Key Vault, Logs Ingestion, Event Grid, AD CS and Azure DNS emulators) and the local stack that
starts them with Azurite, a local CA and the Functions-compatible host (``certlc.host``).

A separate distribution (``certlc-localazure``) for development, tests and the demo: servers install certlc alone.
"""
