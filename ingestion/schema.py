"""The status row: one source for the column names and types the code writes.

The ARM template (infra/monitoring.json) declares the same columns for the DCR
stream and the ``CertlcStatus_CL`` table; tests/ingestion holds the two together.
The original CertLC runbook's names (KeyVault, CertName, CertSubject, CertIssuer,
CertThumbprint, CertExpiration, CertRecipient, ExpiryStatus) are kept so its
workbook queries still run; ``CertExpiration`` is now a real datetime.
"""

from __future__ import annotations

TABLE_NAME = "CertlcStatus_CL"
STREAM_DEFAULT = "Custom-CertlcStatus_CL"

# (name, Log Analytics type, description)
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("TimeGenerated", "datetime", "Snapshot time, shared by every row of one ingestion run"),
    ("KeyVault", "string", "Name of the key vault that holds the certificate"),
    ("CertName", "string", "Key Vault certificate name"),
    ("CertVersion", "string", "Current version, or the last good one while a renewal is pending"),
    ("CertSubject", "string", "Subject distinguished name (RFC 4514)"),
    ("CertIssuer", "string", "Issuer distinguished name (RFC 4514)"),
    ("CertThumbprint", "string", "SHA-1 thumbprint, upper-case hex"),
    ("CertSANs", "string", "Subject alternative names, comma separated"),
    ("CertNotBefore", "datetime", "Start of validity"),
    ("CertExpiration", "datetime", "End of validity"),
    ("DaysLeft", "int", "Whole days from the snapshot to expiry (negative once expired)"),
    ("ExpiryStatus", "string", "Expired, ExpiringSoon or NotExpired"),
    ("CertRecipient", "string", "Who is notified (the Recipient tag)"),
    ("Enabled", "boolean", "Whether the certificate is enabled in Key Vault"),
    ("Managed", "boolean", "Whether certlc renews it (issuer Unknown or opted in, and not opted out)"),
    ("LastRenewalOutcome", "string", "Outcome of the last renewal (certlc-last-outcome tag), empty if none"),
    ("RenewalPending", "boolean", "A new version is pending (not merged yet); the row shows the last good version"),
    ("RenewedBy", "string", "Who renews it: certlc, keyvault, opted_out, disabled or nobody"),
    ("RenewalPlan", "string", "Reason code of what happens next: scheduled, due, failed, canary, uncovered, ..."),
    ("NextRenewal", "datetime", "When certlc renews it (past: due now); empty when certlc does not renew it"),
    ("RenewalNote", "string", "One line on what happens next, or what to do"),
    ("Canary", "boolean", "certlc renews it on a schedule as a canary (CERTLC_CANARY or the certlc-canary tag)"),
    (
        "Served",
        "string",
        "How many of its targets serve the current version, and the first that does not (renewal.targets)",
    ),
)

COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _, _ in COLUMNS)
COLUMN_TYPES: dict[str, str] = {name: kind for name, kind, _ in COLUMNS}

STATUS_EXPIRED = "Expired"
STATUS_EXPIRING = "ExpiringSoon"
STATUS_OK = "NotExpired"
STATUSES: tuple[str, ...] = (STATUS_EXPIRED, STATUS_EXPIRING, STATUS_OK)
