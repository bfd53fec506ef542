"""Where a certificate is used, and what each place serves: a renewal ends where the certificate is served.

``model``: a certificate's targets (declared endpoints, Azure services found referencing its Key Vault secret)
and what a TLS handshake saw there; ``decide``: the pure verdicts (state of a target, what rollout does, the
SERVED summary, alerts, whether the replaced version may be retired).
"""
