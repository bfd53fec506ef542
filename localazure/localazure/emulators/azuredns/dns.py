"""The zones' name servers: dnslib ``DNSServer``s on loopback UDP answering from the emulator's record sets.

Each listener is one authoritative name server. ``freeze()`` makes it keep serving the zones as they are
at that moment, like a secondary that stopped receiving updates: what a solver that does not wait for
every name server of the zone gets caught by.
"""

from __future__ import annotations

from typing import Any

from dnslib import QTYPE, RCODE, RR, TXT, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from .store import Store

ANSWERS = {"TXT": lambda record: [TXT(record.get("value") or [])], "A": lambda record: [A(record["ipv4Address"])]}


class ZoneResolver(BaseResolver):
    """Authoritative answers: records of the asked type, NOERROR without them, NXDOMAIN for names the zone
    does not have, REFUSED outside the hosted zones."""

    def __init__(self, store: Store) -> None:
        self.live = store
        self.view = store

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        reply.header.aa = 1
        qname, qtype = str(request.q.qname), QTYPE[request.q.qtype]
        found = self.view.find(qname)
        if found is None:
            reply.header.rcode = RCODE.REFUSED
            return reply
        zone, relative = found
        sets = {rtype: record_set for (rtype, name), record_set in zone.record_sets.items() if name == relative}
        if not sets and relative != "@":
            reply.header.rcode = RCODE.NXDOMAIN
        record_set = sets.get(qtype)
        if record_set is not None and qtype in ANSWERS:
            for record in record_set.records:
                for rdata in ANSWERS[qtype](record):
                    reply.add_answer(RR(qname, getattr(QTYPE, qtype), rdata=rdata, ttl=record_set.ttl))
        return reply


class NameServer:
    """One name server on ``127.0.0.1`` and a port the system picks."""

    def __init__(self, store: Store, host: str = "127.0.0.1") -> None:
        self.resolver = ZoneResolver(store)
        quiet = DNSLogger(log="-request,-reply,-truncated,-error", prefix=False)
        self._server = DNSServer(self.resolver, address=host, port=0, logger=quiet)
        self.host = host
        self.port: int = self._server.server.server_address[1]
        self._server.start_thread()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def freeze(self) -> None:
        self.resolver.view = self.resolver.live.copy()

    def thaw(self) -> None:
        self.resolver.view = self.resolver.live

    def stop(self) -> None:
        self._server.stop()
        self._server.server.server_close()
