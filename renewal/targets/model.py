"""A certificate's targets and what was seen there.

A target is one place that serves a certificate: an endpoint declared by a tag or a setting, or an Azure service
found referencing the certificate's Key Vault secret (``renewal.targets.azure``). Each names the host names to probe
(TLS with SNI) and how it picks up a new Key Vault version: ``versionless`` references follow the newest version by
themselves within the service's documented interval, ``pinned`` ones never (someone must move them), and ``files``
is an endpoint fed by ``certlc sync``, which reloads it itself; ``unknown`` for a declared endpoint nobody described.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

Kind = Literal["endpoint", "app_gateway", "app_service", "front_door", "api_management", "container_apps"]
Pickup = Literal["versionless", "pinned", "files", "unknown"]
Source = Literal["declared", "discovered"]
KINDS: tuple[Kind, ...] = ("endpoint", "app_gateway", "app_service", "front_door", "api_management", "container_apps")


@dataclass(frozen=True)
class Target:
    """One place that serves a certificate (identified by ``key``), and how to reach and judge it."""

    kind: Kind
    name: str  # how people call it: "appgw-eu/listener-www", "www.contoso.com:443"
    hosts: tuple[str, ...]  # the SNI names a handshake asks for (every one is probed)
    port: int = 443
    pickup: Pickup = "unknown"
    pinned_version: str | None = None  # the Key Vault version a pinned reference names
    pickup_within: timedelta | None = None  # a versionless reference's documented pickup interval
    resource_id: str = ""  # the ARM id of the reference, for a rollout write
    source: Source = "declared"
    connect: str | None = None  # the address to connect to when not the host name itself (a private endpoint)
    prober: str = ""  # the worker that probes it ("" = the app; a name from CERTLC_PROBER for on-premises ones)

    @property
    def key(self) -> str:
        """Stable identity across sweeps: what "since when" is remembered under."""
        return self.resource_id.lower() if self.resource_id else f"{self.kind}:{self.name.lower()}"


@dataclass(frozen=True)
class Probe:
    """What one TLS handshake with SNI saw: the leaf served, or why nothing was."""

    host: str
    port: int
    at: datetime
    thumbprint: str | None = None  # SHA-1, upper-case hex (Key Vault's x5t, decoded), None when unreachable
    not_after: datetime | None = None
    subject: str = ""
    error: str = ""  # why there was no leaf: refused, timed out, TLS alert, name unknown...

    @property
    def reached(self) -> bool:
        return self.thumbprint is not None


@dataclass(frozen=True)
class KnownVersion:
    """A Key Vault version of the certificate, as a probe's leaf is compared with it."""

    version: str
    thumbprint: str  # SHA-1, upper-case hex
    not_after: datetime | None
    created: datetime | None = None


@dataclass(frozen=True)
class CertificateVersions:
    """The certificate's current version and the one it replaced, the two a served leaf can be."""

    vault: str
    name: str
    current: KnownVersion
    previous: KnownVersion | None = None
    extra: tuple[KnownVersion, ...] = field(default_factory=tuple)  # older versions, for "something else" vs "old"
