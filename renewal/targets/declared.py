"""Endpoints an operator declares: where a certificate is served when no Azure service says so.

Three sources, one syntax for an endpoint, ``host[:port][@connect]``: ``host`` is the name the handshake asks for
(SNI), ``port`` defaults to 443, ``connect`` is the address to reach it at when the name does not lead there (a
private endpoint, a load balancer's back end); a host or connect address is a DNS name, an IPv4 address or an
``[IPv6]`` one.

- the tag ``certlc-endpoints`` on the certificate: ``www.contoso.com,api.contoso.com:8443@10.0.0.5``. Key Vault
  keeps at most 256 characters in a tag value (about ten endpoints); more go in the setting below. A bad entry
  is skipped and reported, the others kept: a typo in a tag must not stop anything.
- the setting ``CERTLC_ENDPOINTS``, for endpoints several certificates share: ``;``-separated entries
  ``vault/name|vault/name2=endpoint,endpoint``. A bad entry is a configuration error (the app does not start).
- the setting ``CERTLC_PROBER``: which worker probes which endpoints, for those reachable on premises only:
  ``;``-separated entries ``worker=pattern,pattern`` where a pattern is a host name, ``*.domain`` (any name
  under it) or an address or network (``10.0.0.0/8``, ``fd00::/8``); the first entry that matches wins, and an
  endpoint no entry matches is probed by the app. ``certlc worker --prober-name NAME`` probes NAME's.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from renewal import tags as cert_tags
from renewal.errors import ConfigError
from renewal.targets.model import Target
from renewal.vaults import is_valid_object_name, is_valid_vault_name

log = logging.getLogger("certlc.targets")

ENDPOINTS_SETTING = "CERTLC_ENDPOINTS"
PROBER_SETTING = "CERTLC_PROBER"
DEFAULT_PORT = 443
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_PROBER_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_ENDPOINT = re.compile(r"^(?P<host>\[[^\]]*\]|[^:@\[\]]*)(?::(?P<port>[^@]*))?(?:@(?P<connect>.*))?$")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Endpoint:
    """One declared place to probe."""

    host: str  # the SNI name (lower case), or an address
    port: int = DEFAULT_PORT
    connect: str | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        connect = f"@[{self.connect}]" if self.connect and ":" in self.connect else f"@{self.connect}"
        return f"{host}:{self.port}{connect if self.connect else ''}"


@dataclass(frozen=True)
class DeclaredTargets:
    """A certificate's declared endpoints, and what in its tag was skipped and why."""

    targets: tuple[Target, ...]
    problems: tuple[str, ...] = ()


def _address(text: str) -> str | None:
    """The address in ``text`` (``[v6]`` or IPv4), or None when it is no address."""
    bracketed = text.startswith("[") and text.endswith("]")
    try:
        address = ipaddress.ip_address(text[1:-1] if bracketed else text)
    except ValueError:
        if bracketed:
            raise ValueError(f"{text} is not an IPv6 address") from None
        return None
    if address.version == 6 and not bracketed:
        raise ValueError(f"write the IPv6 address {text} in brackets: [{text}]")
    return str(address)


def host_name(text: str, what: str = "host") -> str:
    """``text`` as a host name (lower case, no trailing dot) or an address; ValueError saying what is wrong."""
    text = text.strip()
    if not text:
        raise ValueError(f"the {what} is empty")
    address = _address(text)
    if address is not None:
        return address
    name = text.lower().removesuffix(".")
    if "*" in name:
        raise ValueError(f"{text} is a wildcard: name one host a client asks for")
    if len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise ValueError(f"{text} is not a host name (labels of a-z, 0-9 and -, at most 63 each and 253 in all)")
    if re.fullmatch(r"[0-9.]+", name):
        raise ValueError(f"{text} is not an IPv4 address")
    return name


def parse_endpoint(text: str) -> Endpoint:
    """``host[:port][@connect]``; ValueError with what is wrong."""
    text = text.strip()
    host_part, _, connect_part = text.partition("@")
    if not host_part.startswith("[") and host_part.count(":") > 1:
        raise ValueError("more than one ':': a port is written once, an IPv6 address in brackets ([2001:db8::1]:443)")
    if ":" in connect_part and not connect_part.startswith("[") and _address(connect_part) is None:
        raise ValueError("the connect address takes no port: write host:port@address")
    match = _ENDPOINT.match(text)
    if match is None:
        raise ValueError("not host[:port][@connect-address] (an IPv6 address goes in brackets)")
    port_text = match["port"]
    port = DEFAULT_PORT
    if port_text is not None:
        if not port_text.strip().isdigit() or not 1 <= int(port_text) <= 65535:
            raise ValueError(f"port {port_text!r} is not a number from 1 to 65535")
        port = int(port_text)
    connect = host_name(match["connect"], "connect address") if match["connect"] is not None else None
    return Endpoint(host_name(match["host"]), port, connect)


def _entries(value: str, separator: str) -> list[tuple[int, str]]:
    """The non-empty entries with their position (from 1), as messages name them."""
    return [(n, e.strip()) for n, e in enumerate(value.split(separator), start=1) if e.strip()]


def tag_endpoints(value: str) -> tuple[list[Endpoint], list[str]]:
    """The endpoints of a ``certlc-endpoints`` tag value, and a sentence per entry that was skipped."""
    found: list[Endpoint] = []
    problems: list[str] = []
    for position, entry in _entries(value, ","):
        try:
            endpoint = parse_endpoint(entry)
        except ValueError as exc:
            problems.append(f"tag {cert_tags.ENDPOINTS} entry {position} ({entry!r}) skipped: {exc}")
            continue
        if endpoint not in found:
            found.append(endpoint)
    return found, problems


@lru_cache(maxsize=8)
def _shared_endpoints(value: str) -> dict[str, tuple[Endpoint, ...]]:
    shared: dict[str, list[Endpoint]] = {}
    for position, entry in _entries(value, ";"):
        where = f"{ENDPOINTS_SETTING} entry {position} ({entry[:80]!r})"
        names, sep, listed = entry.partition("=")
        if not sep or not names.strip() or not listed.strip():
            raise ConfigError(f"{where} is not vault/name|vault/name=host[:port][@connect],... ")
        endpoints: list[Endpoint] = []
        for number, text in _entries(listed, ","):
            try:
                endpoints.append(parse_endpoint(text))
            except ValueError as exc:
                raise ConfigError(f"{where}: endpoint {number} ({text!r}): {exc}") from None
        for certificate in (c.strip() for c in names.split("|")):
            vault, slash, name = certificate.partition("/")
            if not slash or not is_valid_vault_name(vault.strip()) or not is_valid_object_name(name.strip()):
                raise ConfigError(f"{where}: {certificate!r} is not vault/name (for example kv1/www-contoso)")
            listed_for = shared.setdefault(f"{vault.strip().lower()}/{name.strip().lower()}", [])
            listed_for.extend(e for e in endpoints if e not in listed_for)
    return {key: tuple(value) for key, value in shared.items()}


def shared_endpoints(env: Mapping[str, str]) -> dict[str, tuple[Endpoint, ...]]:
    """``CERTLC_ENDPOINTS`` by ``vault/name`` (lower case); ConfigError naming the entry that is wrong."""
    return _shared_endpoints(env.get(ENDPOINTS_SETTING, "").strip())


def _pattern(text: str) -> str | Network:
    """A prober pattern: a network (an address is a network of one), ``*.domain`` or a host name."""
    try:
        return ipaddress.ip_network(text.replace("[", "").replace("]", ""), strict=False)
    except ValueError:
        if "/" in text or ":" in text or re.fullmatch(r"[0-9.]+", text):
            raise ValueError(f"{text} is not an address or network (10.0.0.0/8, fd00::/8)") from None
    if text.startswith("*."):
        return "*." + host_name(text[2:])
    return host_name(text)


@lru_cache(maxsize=8)
def _prober_rules(value: str) -> tuple[tuple[str, tuple[str | Network, ...]], ...]:
    rules: list[tuple[str, tuple[str | Network, ...]]] = []
    for position, entry in _entries(value, ";"):
        where = f"{PROBER_SETTING} entry {position} ({entry[:80]!r})"
        name, sep, listed = entry.partition("=")
        name = name.strip().lower()
        if not sep or not _PROBER_NAME.match(name):
            raise ConfigError(f"{where} is not worker=pattern,... (a worker name of a-z, 0-9 and -)")
        patterns: list[str | Network] = []
        for number, text in _entries(listed, ","):
            try:
                patterns.append(_pattern(text))
            except ValueError as exc:
                raise ConfigError(f"{where}: pattern {number} ({text!r}): {exc}") from None
        if not patterns:
            raise ConfigError(f"{where} names no endpoints: host, *.domain, address or network, ','-separated")
        rules.append((name, tuple(patterns)))
    return tuple(rules)


def prober_rules(env: Mapping[str, str]) -> tuple[tuple[str, tuple[str | Network, ...]], ...]:
    """``CERTLC_PROBER`` in order: (worker, patterns); ConfigError naming the entry that is wrong."""
    return _prober_rules(env.get(PROBER_SETTING, "").strip())


def prober_names(env: Mapping[str, str]) -> frozenset[str]:
    """The workers ``CERTLC_PROBER`` names, to check ``--prober-name`` against."""
    return frozenset(name for name, _ in prober_rules(env))


def _matches(pattern: str | Network, name: str) -> bool:
    if not isinstance(pattern, str):
        try:
            return ipaddress.ip_address(name) in pattern
        except ValueError:
            return False
    if pattern.startswith("*."):
        return name.endswith(pattern[1:])
    return name == pattern


def prober_for(host: str, env: Mapping[str, str], *, connect: str | None = None) -> str:
    """The worker that probes ``host`` (reached at ``connect`` when given): the first ``CERTLC_PROBER`` entry with
    a pattern matching either; "" when none does (the app probes it)."""
    names = [n.strip("[]").lower().removesuffix(".") for n in (host, connect) if n]
    for worker, patterns in prober_rules(env):
        if any(_matches(pattern, name) for pattern in patterns for name in names):
            return worker
    return ""


def _target(endpoint: Endpoint, env: Mapping[str, str]) -> Target:
    return Target(
        kind="endpoint",
        name=str(endpoint),
        hosts=(endpoint.host,),
        port=endpoint.port,
        pickup="unknown",
        source="declared",
        connect=endpoint.connect,
        prober=prober_for(endpoint.host, env, connect=endpoint.connect),
    )


def declared_targets(vault: str, name: str, tags: Mapping[str, str], env: Mapping[str, str]) -> DeclaredTargets:
    """The certificate's endpoints from its ``certlc-endpoints`` tag, then ``CERTLC_ENDPOINTS``, each once. A bad
    tag entry is skipped, logged and returned in ``problems``; a bad setting raises ConfigError (the start-up
    check's job)."""
    endpoints, problems = tag_endpoints(cert_tags.tag(tags, cert_tags.ENDPOINTS) or "")
    for problem in problems:
        log.warning("%s/%s: %s", vault, name, problem)
    endpoints += [e for e in shared_endpoints(env).get(f"{vault.lower()}/{name.lower()}", ()) if e not in endpoints]
    return DeclaredTargets(tuple(_target(e, env) for e in endpoints), tuple(problems))
