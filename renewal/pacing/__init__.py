"""Pacing: Key Vault's limits shared by every instance, so certlc asks only for what Key Vault will grant.

Key Vault answers 429 past its limits, and a client that earns 429s wastes its calls and delays everyone's. Flex
Consumption runs up to 40 instances, each with its own concurrency, so a per-process limiter cannot hold a per-vault
budget: the budget lives in one blob beside the renewal records, changed only by conditional writes. ``limits`` says
what Key Vault allows (its documented service limits), ``budget`` decides whether a create may go now (pure), and
``store`` is the thin adapter to the blob.
"""
