"""ACME dns-01 through Azure DNS: the ``_acme-challenge`` TXT record set, written with the managed identity.

``present`` adds the validation to the record set (merged with values already there: a wildcard and its
apex, or two renewals in one zone, share one name), then waits until every name server of the zone
answers it, so the CA cannot look before Azure DNS has published it. ``cleanup`` removes only that value,
and the record set once it is empty. A write that loses a race with another writer (412 on the etag) reads
again and merges again. ``present`` removes its own value when it fails after writing, since the ACME
adapter only cleans up what was presented.

Settings: ``CERTLC_ACME_DNS_ZONES`` (``zone=subscriptionId/resourceGroup`` entries or the zones' ARM ids),
``CERTLC_ACME_DNS_TIMEOUT`` (the wait for the name servers), ``CERTLC_ACME_DNS_NAMESERVERS`` (ask these
instead of the zone's own: a split view, or tests), ``CERTLC_ACME_DNS_ENDPOINT`` and
``CERTLC_ACME_DNS_CA_BUNDLE`` (another cloud's ARM, or the local emulator).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from renewal.ca.base import CA_TIMEOUT_DEFAULT, CaConfigError, CaError, CaUnavailable
from renewal.clients import credential_for
from renewal.setting_values import seconds_setting
from renewal.trust import ca_bundle

log = logging.getLogger(__name__)

CHALLENGE_LABEL = "_acme-challenge"
TXT_TTL = 60  # seconds: short, so a value removed does not linger in resolvers
ARM_ENDPOINT = "https://management.azure.com"
DNS_TIMEOUT_DEFAULT = 120.0  # Azure DNS publishes to all its name servers within about a minute
WRITE_ATTEMPTS = 5
POLL_FIRST, POLL_MAX = 0.2, 5.0  # seconds between asking the name servers: doubling from the first to the max
DNS_QUERY_TIMEOUT = 3.0
_ARM_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Network/dnsZones/(?P<zone>[^/]+)$",
    re.IGNORECASE,
)
_SHORT = re.compile(r"^(?P<zone>[^=/\s]+)=(?P<sub>[^/\s]+)/(?P<rg>[^/\s]+)$")
_LABELS = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))+$")


@dataclass(frozen=True)
class DnsZone:
    """An Azure DNS zone certlc may write ``_acme-challenge`` TXT records in."""

    name: str
    subscription_id: str
    resource_group: str


@dataclass(frozen=True)
class NameServer:
    host: str
    port: int = 53

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_zones(text: str, key: str = "CERTLC_ACME_DNS_ZONES") -> tuple[DnsZone, ...]:
    """Entries separated by commas, semicolons or white space: ``zone=subscriptionId/resourceGroup``, or a zone's
    ARM id ``/subscriptions/…/resourceGroups/…/providers/Microsoft.Network/dnsZones/zone``."""
    zones: list[DnsZone] = []
    for entry in re.split(r"[,;\s]+", text.strip()):
        if not entry:
            continue
        found = _ARM_ID.match(entry) or _SHORT.match(entry)
        name = found["zone"].rstrip(".").lower() if found else ""
        if not found or not _LABELS.match(name):
            raise CaConfigError(
                f"{key}: {entry!r} is neither zone=subscriptionId/resourceGroup (example.com=<subscription id>/dns-rg) "
                "nor the ARM id of a DNS zone"
            )
        zones.append(DnsZone(name, found["sub"], found["rg"]))
    if not zones:
        raise CaConfigError(f"{key} is not set: name the Azure DNS zones certlc answers dns-01 challenges in")
    if len({zone.name for zone in zones}) != len(zones):
        raise CaConfigError(f"{key} names a zone twice: {text.strip()!r}")
    return tuple(zones)


def parse_name_servers(text: str, key: str = "CERTLC_ACME_DNS_NAMESERVERS") -> tuple[NameServer, ...]:
    """``host`` or ``host:port`` entries separated by commas or white space."""
    servers = []
    for entry in re.split(r"[,\s]+", text.strip()):
        if not entry:
            continue
        host, _, port = entry.rpartition(":") if ":" in entry else (entry, "", "53")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise CaConfigError(f"{key}: {entry!r} is not host or host:port")
        servers.append(NameServer(host, int(port)))
    return tuple(servers)


def zone_for(identifier: str, zones: Sequence[DnsZone]) -> DnsZone | None:
    """The configured zone holding ``identifier`` (a wildcard's too), the longest when zones nest."""
    name = identifier.removeprefix("*.").rstrip(".").lower()
    holding = [zone for zone in zones if name == zone.name or name.endswith("." + zone.name)]
    return max(holding, key=lambda zone: len(zone.name), default=None)


def record_name(identifier: str, zone: DnsZone) -> str:
    """The TXT record set's name relative to the zone: ``_acme-challenge`` plus the labels below the zone."""
    name = identifier.removeprefix("*.").rstrip(".").lower()
    below = name.removesuffix(zone.name).rstrip(".")
    return f"{CHALLENGE_LABEL}.{below}" if below else CHALLENGE_LABEL


def with_value(values: Sequence[str], value: str) -> list[str]:
    return [*values, value] if value not in values else list(values)


def without_value(values: Sequence[str], value: str) -> list[str]:
    return [other for other in values if other != value]


def propagation_gap(answers: Mapping[str, frozenset[str] | str], value: str) -> str | None:
    """Why the value is not published yet (which name servers lack it, or failed), or None once all answer it.

    ``answers`` maps each name server to the TXT values it answered, or to what went wrong asking it."""
    if not answers:
        return "no name servers to ask"
    lacking = [
        f"{server} {got}" if isinstance(got, str) else f"{server} does not answer it yet"
        for server, got in answers.items()
        if isinstance(got, str) or value not in got
    ]
    return "; ".join(lacking) or None


class AzureDnsSolver:
    """Answers dns-01 challenges with TXT record sets in Azure DNS zones (see the module's docstring)."""

    challenge_type = "dns-01"

    def __init__(
        self,
        zones: Sequence[DnsZone],
        credential: Any,
        *,
        endpoint: str = ARM_ENDPOINT,
        ca_bundle: str | None = None,
        name_servers: Sequence[NameServer] = (),
        timeout: float = DNS_TIMEOUT_DEFAULT,
        network_timeout: float = CA_TIMEOUT_DEFAULT,
    ) -> None:
        """``name_servers`` replaces the zone's own for the wait; ``timeout`` bounds that wait, ``network_timeout``
        the connect and each read of every ARM request."""
        self.zones = tuple(zones)
        self.endpoint = endpoint.rstrip("/")
        self.name_servers = tuple(name_servers)
        self.timeout = timeout
        self._credential = credential
        self._options: dict[str, Any] = {"connection_timeout": network_timeout, "read_timeout": network_timeout}
        if ca_bundle:
            self._options["connection_verify"] = ca_bundle
        self._clients: dict[str, Any] = {}
        self._presented: dict[str, tuple[DnsZone, str, str]] = {}  # token -> zone, record set name, value
        self._lock = threading.Lock()

    def present(self, identifier: str, token: str, validation: str) -> None:
        zone = zone_for(identifier, self.zones)
        if zone is None:
            raise CaConfigError(
                f"no Azure DNS zone for {identifier!r} in CERTLC_ACME_DNS_ZONES "
                f"({', '.join(z.name for z in self.zones)}): add the zone holding it to answer dns-01 challenges"
            )
        name = record_name(identifier, zone)
        servers = self.name_servers or self._zone_name_servers(zone)
        self._change(zone, name, lambda values: with_value(values, validation))
        with self._lock:
            self._presented[token] = (zone, name, validation)
        try:
            self._wait_published(zone, name, validation, servers)
        except BaseException:
            self.cleanup(identifier, token)
            raise

    def cleanup(self, identifier: str, token: str) -> None:
        """Removes this challenge's value; a failure is logged, not raised, so an issued certificate still counts."""
        with self._lock:
            presented = self._presented.pop(token, None)
        if presented is None:
            return
        zone, name, value = presented
        try:
            self._change(zone, name, lambda values: without_value(values, value))
        except CaError as exc:
            log.warning("the dns-01 TXT value at %s.%s was not removed: %s", name, zone.name, exc)

    # -- ARM ------------------------------------------------------------------------------------

    def _client(self, subscription_id: str) -> Any:
        from azure.mgmt.dns import DnsManagementClient

        if subscription_id not in self._clients:
            self._clients[subscription_id] = DnsManagementClient(
                self._credential,
                subscription_id,
                base_url=self.endpoint,
                credential_scopes=[f"{self.endpoint}/.default"],
                **self._options,
            )
        return self._clients[subscription_id]

    def _zone_name_servers(self, zone: DnsZone) -> tuple[NameServer, ...]:
        with self._arm_errors(zone, "read the zone"):
            found = self._client(zone.subscription_id).zones.get(zone.resource_group, zone.name)
        return tuple(NameServer(server.rstrip(".")) for server in found.name_servers or ())

    def _change(self, zone: DnsZone, name: str, change: Callable[[list[str]], list[str]]) -> None:
        """Reads the TXT record set, applies ``change`` to its values and writes it back under its etag."""
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
        from azure.mgmt.dns.models import RecordSet, TxtRecord

        race = {412: ResourceModifiedError}  # the etag changed, or If-None-Match found a record set

        sets = self._client(zone.subscription_id).record_sets
        for _ in range(WRITE_ATTEMPTS):
            with self._arm_errors(zone, f"read the TXT record set {name}"):
                try:
                    current = sets.get(zone.resource_group, zone.name, name, "TXT")
                except ResourceNotFoundError:
                    current = None
            values = ["".join(r.value or ()) for r in current.txt_records or ()] if current else []
            wanted = change(values)
            if wanted == values:
                return
            try:
                with self._arm_errors(zone, f"write the TXT record set {name}"):
                    if not wanted:
                        sets.delete(zone.resource_group, zone.name, name, "TXT", if_match=current.etag, error_map=race)
                    else:
                        record_set = RecordSet(
                            ttl=current.ttl if current else TXT_TTL,
                            metadata=current.metadata if current else None,
                            txt_records=[TxtRecord(value=[v]) for v in wanted],
                        )
                        sets.create_or_update(
                            zone.resource_group,
                            zone.name,
                            name,
                            "TXT",
                            record_set,
                            if_match=current.etag if current else None,
                            if_none_match=None if current else "*",
                            error_map=race,
                        )
                return
            except ResourceModifiedError:
                continue  # another writer changed the record set since it was read: merge again
        raise CaUnavailable(f"the TXT record set {name} in {zone.name} kept changing under other writers")

    @contextlib.contextmanager
    def _arm_errors(self, zone: DnsZone, doing: str) -> Iterator[None]:
        """ARM's answers as the workflow's errors: refused and not found are configuration, the rest transient;
        a lost race on the etag (``ResourceModifiedError``) goes to the caller as it is."""
        from azure.core.exceptions import HttpResponseError, ResourceModifiedError, ServiceRequestError

        where = f"zone {zone.name} (resource group {zone.resource_group}, subscription {zone.subscription_id})"
        try:
            yield
        except ResourceModifiedError:
            raise
        except HttpResponseError as exc:
            status = exc.status_code or 500
            if status == 403:
                raise CaConfigError(
                    f"the app's identity may not {doing} in Azure DNS {where}: assign it the template's "
                    f"DNS TXT role on the zone ({_arm_message(exc)})"
                ) from exc
            if status == 404:
                raise CaConfigError(f"could not {doing}: no Azure DNS {where} ({_arm_message(exc)})") from exc
            if status in (408, 429) or status >= 500:
                raise CaUnavailable(f"Azure DNS is busy or failing ({doing} in {where}): {_arm_message(exc)}") from exc
            raise CaConfigError(f"Azure DNS refused to {doing} in {where}: {_arm_message(exc)}") from exc
        except ServiceRequestError as exc:
            raise CaUnavailable(f"Azure DNS at {self.endpoint} unreachable ({doing}): {exc}") from exc

    # -- DNS ------------------------------------------------------------------------------------

    def _wait_published(self, zone: DnsZone, name: str, value: str, servers: Sequence[NameServer]) -> None:
        fqdn = f"{name}.{zone.name}"
        deadline = time.monotonic() + self.timeout
        interval = POLL_FIRST
        while True:
            gap = propagation_gap({str(server): _ask_txt(server, fqdn) for server in servers}, value)
            if gap is None:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise CaUnavailable(
                    f"the dns-01 TXT value at {fqdn} was not on every name server of {zone.name} "
                    f"within {self.timeout:g} s: {gap}"
                )
            time.sleep(min(interval, left))
            interval = min(interval * 2, POLL_MAX)


def _ask_txt(server: NameServer, fqdn: str) -> frozenset[str] | str:
    """The TXT values ``server`` answers for ``fqdn``, or what went wrong (an NXDOMAIN is no values)."""
    from dnslib import QTYPE, RCODE, DNSError, DNSRecord

    question = DNSRecord.question(fqdn, "TXT")
    try:
        reply = DNSRecord.parse(question.send(server.host, server.port, timeout=DNS_QUERY_TIMEOUT))
        if reply.header.tc:  # too many values for a UDP answer
            reply = DNSRecord.parse(question.send(server.host, server.port, tcp=True, timeout=DNS_QUERY_TIMEOUT))
    except (OSError, DNSError) as exc:
        return f"did not answer ({type(exc).__name__}: {exc})"
    if reply.header.rcode not in (RCODE.NOERROR, RCODE.NXDOMAIN):
        return f"answered {RCODE.get(reply.header.rcode)}"
    return frozenset(
        b"".join(rr.rdata.data).decode(errors="replace")
        for rr in reply.rr
        if rr.rtype == QTYPE.TXT and str(rr.rname).rstrip(".").lower() == fqdn.lower()
    )


def _arm_message(exc: Any) -> str:
    error = getattr(exc, "error", None)
    code, message = getattr(error, "code", None), getattr(error, "message", None)
    return f"{exc.status_code} {code}: {message}" if code else f"{exc.status_code}: {exc.reason}"


def solver_from_env(env: Mapping[str, str], network_timeout: float = CA_TIMEOUT_DEFAULT) -> AzureDnsSolver:
    """The solver from app settings; the credential is the managed identity, or the local token for an emulator."""
    endpoint = (env.get("CERTLC_ACME_DNS_ENDPOINT") or ARM_ENDPOINT).strip()
    return AzureDnsSolver(
        parse_zones(env.get("CERTLC_ACME_DNS_ZONES", "")),
        credential_for(endpoint, env),
        endpoint=endpoint,
        ca_bundle=ca_bundle(env, "CERTLC_ACME_DNS_CA_BUNDLE", CaConfigError),
        name_servers=parse_name_servers(env.get("CERTLC_ACME_DNS_NAMESERVERS", "")),
        timeout=seconds_setting(env, "CERTLC_ACME_DNS_TIMEOUT", DNS_TIMEOUT_DEFAULT, CaConfigError),
        network_timeout=network_timeout,
    )
