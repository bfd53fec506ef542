"""Key Vault's documented service limits, and what one certificate's key costs against them.

From "Azure Key Vault service limits" (learn.microsoft.com/azure/key-vault/general/service-limits), per vault per
region per 10 seconds: a key CREATE (which every certificate create makes) 20 for software keys and 10 for HSM keys;
all other transactions 4,000 for RSA 2048 and EC software keys, 1,000 for RSA 3072, 500 for RSA 4096, and half of each
for HSM keys. "The throttling thresholds are weighted, and enforcement is on their sum", so a cost is the fraction of
the software RSA 2048 limit one transaction uses. The throttling guidance (overview-throttling) adds the
subscription-wide ceiling: five times the per-vault limit, across every vault of a subscription in a region.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WINDOW_SECONDS = 10.0
CREATES_PER_VAULT = 20  # software keys; an HSM create costs 2 of them
OTHERS_PER_VAULT = 4000  # RSA 2048 / EC software keys; larger and HSM keys cost more of them
SUBSCRIPTION_FACTOR = 5
OTHER_COST_BY_RSA_SIZE = {2048: 1, 3072: 4, 4096: 8}


@dataclass(frozen=True)
class KeyKind:
    """What Key Vault weighs a certificate's transactions by: HSM or software, RSA size or EC."""

    hsm: bool = False
    rsa_size: int | None = 2048  # None for EC keys

    @property
    def create_cost(self) -> int:
        return 2 if self.hsm else 1

    @property
    def other_cost(self) -> int:
        size = OTHER_COST_BY_RSA_SIZE.get(self.rsa_size or 2048, 8) if self.rsa_size else 1
        return size * (2 if self.hsm else 1)


def key_kind(policy: Any) -> KeyKind:
    """The key kind of a certificate policy (the SDK's ``CertificatePolicy``); RSA 2048 software when it says
    nothing, as Key Vault's default policy is."""
    kty = str(getattr(getattr(policy, "key_type", None), "value", getattr(policy, "key_type", None)) or "RSA")
    hsm = kty.upper().endswith("-HSM")
    if kty.upper().startswith("EC"):
        return KeyKind(hsm=hsm, rsa_size=None)
    return KeyKind(hsm=hsm, rsa_size=int(getattr(policy, "key_size", None) or 2048))
