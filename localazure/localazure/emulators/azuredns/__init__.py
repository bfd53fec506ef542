"""An Azure DNS emulator for the dns-01 solver's tests.

The ARM side serves the operations the solver uses (Zones_Get; RecordSets_Get, CreateOrUpdate and Delete
for TXT and A record sets) in the shapes of the REST specification, bodies validated against it
(``schemas.py``), behind a bearer token with RBAC roles, over HTTPS on loopback. The zones' name servers
are real DNS servers (dnslib) on loopback UDP ports answering from the same record sets, so an ACME
server (pebble's ``-dnsserver``) validates dns-01 challenges against what the solver wrote.
"""

from .emulator import AzureDnsEmulator

__all__ = ["AzureDnsEmulator"]
