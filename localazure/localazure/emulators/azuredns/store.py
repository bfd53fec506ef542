"""The emulator's zones and record sets, in memory, with ARM's etag rules.

Zone, resource group and record set names are case-insensitive in Azure DNS, so they are kept lower
case. Every write gives the record set a new etag; ``If-Match`` and ``If-None-Match: *`` are checked
against it as RecordSets_CreateOrUpdate and RecordSets_Delete describe them.
"""

from __future__ import annotations

import copy
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from ..armfront import ArmError

APEX = "@"
DEFAULT_NAME_SERVERS = (  # as Azure DNS gives them (Zones_Get example)
    "ns1-01.azure-dns.com.",
    "ns2-01.azure-dns.net.",
    "ns3-01.azure-dns.org.",
    "ns4-01.azure-dns.info.",
)


@dataclass
class RecordSet:
    ttl: int
    metadata: dict[str, str]
    records: list[dict[str, Any]]  # the ARM record objects of the set's type, as written
    etag: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class Zone:
    subscription: str
    resource_group: str
    name: str
    name_servers: tuple[str, ...] = DEFAULT_NAME_SERVERS
    etag: str = field(default_factory=lambda: str(uuid.uuid4()))
    record_sets: dict[tuple[str, str], RecordSet] = field(default_factory=dict)  # (TYPE, relative name) -> set

    @property
    def arm_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Network/dnsZones/{self.name}"
        )

    def relative_name(self, fqdn: str) -> str | None:
        """The record set name of ``fqdn`` in this zone, or None when the zone does not hold it."""
        fqdn = fqdn.rstrip(".").lower()
        if fqdn == self.name:
            return APEX
        return fqdn.removesuffix("." + self.name) if fqdn.endswith("." + self.name) else None


def _key(*parts: str) -> tuple[str, ...]:
    return tuple(part.lower() for part in parts)


class Store:
    def __init__(self) -> None:
        self._zones: dict[tuple[str, ...], Zone] = {}
        self._lock = threading.Lock()

    def add_zone(self, subscription: str, resource_group: str, name: str, **kwargs: Any) -> Zone:
        zone = Zone(subscription.lower(), resource_group.lower(), name.rstrip(".").lower(), **kwargs)
        with self._lock:
            self._zones[_key(subscription, resource_group, zone.name)] = zone
        return zone

    def zone(self, subscription: str, resource_group: str, name: str) -> Zone:
        zone = self._zones.get(_key(subscription, resource_group, name))
        if zone is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.Network/dnszones/{name}' under resource group '{resource_group}' "
                "was not found.",
            )
        return zone

    def get(self, zone: Zone, rtype: str, name: str) -> RecordSet:
        found = zone.record_sets.get((rtype, name.lower()))
        if found is None:
            raise ArmError(
                404,
                "NotFound",
                f"The resource record '{name}' does not exist in resource group '{zone.resource_group}' "
                f"of subscription '{zone.subscription}'.",
            )
        return found

    def put(
        self, zone: Zone, rtype: str, name: str, new: RecordSet, if_match: str | None, if_none_match: str | None
    ) -> tuple[RecordSet, bool]:
        """Writes the set; returns it and whether it was created."""
        key = (rtype, name.lower())
        with self._lock:
            current = zone.record_sets.get(key)
            if if_none_match == "*" and current is not None:
                raise ArmError(412, "PreconditionFailed", f"The record set {name} of type {rtype} already exists.")
            _check_etag(current, if_match, name, rtype)
            zone.record_sets[key] = new
            return new, current is None

    def delete(self, zone: Zone, rtype: str, name: str, if_match: str | None) -> bool:
        """Removes the set; returns whether there was one."""
        key = (rtype, name.lower())
        with self._lock:
            current = zone.record_sets.get(key)
            _check_etag(current, if_match, name, rtype)
            return zone.record_sets.pop(key, None) is not None

    def find(self, fqdn: str) -> tuple[Zone, str] | None:
        """The hosted zone holding ``fqdn`` (the longest match) and the name relative to it."""
        best: tuple[Zone, str] | None = None
        for zone in list(self._zones.values()):
            relative = zone.relative_name(fqdn)
            if relative is not None and (best is None or len(zone.name) > len(best[0].name)):
                best = (zone, relative)
        return best

    def copy(self) -> Store:
        """A frozen copy: what a name server that stopped receiving zone transfers keeps serving."""
        frozen = Store()
        with self._lock:
            frozen._zones = copy.deepcopy(self._zones)
        return frozen


def _check_etag(current: RecordSet | None, if_match: str | None, name: str, rtype: str) -> None:
    if if_match is None or (if_match == "*" and current is not None):
        return
    if current is None or current.etag != if_match.strip('"'):
        raise ArmError(
            412,
            "PreconditionFailed",
            f"The etag of the record set {name} of type {rtype} does not match the If-Match header "
            "(it changed since it was read).",
        )
