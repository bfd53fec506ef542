"""How soon each Azure service picks up a new Key Vault version through a versionless reference, as documented.

One table, the only place these numbers live (docs/targets.md gives the evidence for each; the local emulator's defaults
follow it). A pinned reference (one naming a version) never picks anything up: someone must move it
(``renewal.targets.azure.rollout``).

| kind | within | what the documentation says | source |
|---|---|---|---|
| app_gateway | 4 h | instances poll Key Vault at four-hour intervals for a renewed version | learn.microsoft.com/azure/application-gateway/key-vault-certs |
| front_door | 72 h | with "Latest" selected, Front Door rotates to the newest version within 72 hours | learn.microsoft.com/azure/frontdoor/standard-premium/how-to-configure-https-custom-domain |
| app_service | 24 h | an imported Key Vault certificate is synced to the newest version within 24 hours | learn.microsoft.com/azure/app-service/configure-ssl-certificate |
| api_management | 4 h | a versionless secret is picked up within four hours of the change | learn.microsoft.com/azure/api-management/configure-custom-domain |
| container_apps | 12 h | a versionless Key Vault certificate is rotated within 12 hours | learn.microsoft.com/azure/container-apps/key-vault-certificates-manage |
"""  # noqa: E501 - a table

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Interval:
    kind: str
    within: timedelta
    source: str


PICKUP: dict[str, Interval] = {
    interval.kind: interval
    for interval in (
        Interval(
            "app_gateway", timedelta(hours=4), "https://learn.microsoft.com/azure/application-gateway/key-vault-certs"
        ),
        Interval(
            "front_door",
            timedelta(hours=72),
            "https://learn.microsoft.com/azure/frontdoor/standard-premium/how-to-configure-https-custom-domain",
        ),
        Interval(
            "app_service",
            timedelta(hours=24),
            "https://learn.microsoft.com/azure/app-service/configure-ssl-certificate",
        ),
        Interval(
            "api_management",
            timedelta(hours=4),
            "https://learn.microsoft.com/azure/api-management/configure-custom-domain",
        ),
        Interval(
            "container_apps",
            timedelta(hours=12),
            "https://learn.microsoft.com/azure/container-apps/key-vault-certificates-manage",
        ),
    )
}


def pickup_within(kind: str) -> timedelta:
    """The documented interval within which ``kind`` follows a versionless reference to a new version."""
    return PICKUP[kind].within
