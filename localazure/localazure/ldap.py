"""A real OpenLDAP ``slapd`` standing in for a domain controller's directory: a fake forest whose configuration
naming context holds AD CS certificate template objects (MS-CRTD), served over LDAPS and StartTLS on loopback.

slapd knows nothing of Active Directory, so the schema below defines the few MS-CRTD attributes certlc reads
(``msPKI-Cert-Template-OID``, with ``cn`` and ``displayName``), the ``pKICertificateTemplate`` and ``container``
classes, and the RootDSE's ``configurationNamingContext``. It serves simple binds, and with ``kerberos=`` Kerberos
(SASL GSSAPI) binds too, as ``ldap/localhost`` of an MIT realm, the principal mapped to the directory account; NTLM
(Sicily) binds need a domain controller. The tests and ``certlc demo --ca adcs`` start it.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from localazure import tools
from localazure.pki import TlsFiles, write_loopback_tls
from localazure.ports import LOOPBACK, free_port, port_open
from localazure.process import ManagedProcess, ServerStartError, start_with_retry

FOREST = "DC=corp,DC=example"
CONFIGURATION_NC = f"CN=Configuration,{FOREST}"
TEMPLATES_DN = f"CN=Certificate Templates,CN=Public Key Services,CN=Services,{CONFIGURATION_NC}"
BIND_DN = f"CN=svc-certlc,CN=Users,{FOREST}"
KERBEROS_HOST = "localhost"  # the host name Kerberos clients name slapd by: its SPN is ldap/localhost@REALM
# (cn, displayName, msPKI-Cert-Template-OID, schema version): the names web enrollment takes, and their OIDs
TEMPLATES = (
    ("WebServerV2", "Web Server v2", "1.3.6.1.4.1.311.21.8.5934178.1234567.1.2.3.4.101", 2),
    ("ApprovalV3", "Web Server (manager approval)", "1.3.6.1.4.1.311.21.8.5934178.1234567.1.2.3.4.102", 3),
    ("WebServer", "Web Server", "1.3.6.1.4.1.311.21.8.5934178.1234567.1.2.3.4.1", 1),
)

# Real AD attribute and class OIDs where MS-ADA2/MS-ADSC give them; the RootDSE attribute (not in AD's schema)
# takes an OID from OpenLDAP's experimental arc.
SCHEMA = """\
attributetype ( 1.2.840.113556.1.4.1436 NAME 'msPKI-Cert-Template-OID'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.1432 NAME 'msPKI-Template-Schema-Version'
  EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.4203.666.11.900.1 NAME 'configurationNamingContext'
  EQUALITY distinguishedNameMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 SINGLE-VALUE )
objectclass ( 1.2.840.113556.1.3.23 NAME 'container' SUP top STRUCTURAL MUST cn )
objectclass ( 1.2.840.113556.1.5.177 NAME 'pKICertificateTemplate' SUP top STRUCTURAL
  MUST cn MAY ( displayName $ msPKI-Cert-Template-OID $ msPKI-Template-Schema-Version ) )
"""


@dataclass(frozen=True)
class KerberosRealm:
    """What slapd needs to take Kerberos binds: the realm, its ``krb5.conf``, and a keytab holding
    ``ldap/localhost``; a principal ``<user>@REALM`` binds as ``CN=<user>,CN=Users,`` of the forest."""

    realm: str
    krb5_conf: Path
    keytab: Path


@dataclass
class Slapd:
    """A running slapd; ``log`` records every bind and search (loglevel ``stats``)."""

    directory: Path
    ldaps_port: int
    ldap_port: int
    ca_pem: Path
    process: ManagedProcess
    host: str = LOOPBACK  # what the URLs name; Kerberos clients need the SPN's host name

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://{self.host}:{self.ldaps_port}"

    @property
    def starttls_url(self) -> str:
        return f"ldap://{self.host}:{self.ldap_port}"

    @property
    def log(self) -> Path:
        return self.process.log_path

    def binds(self) -> int:
        """How many binds slapd has logged so far."""
        return len(re.findall(r" op=\d+ BIND dn=.* method=", self.log.read_text(errors="replace")))

    def gssapi_binds(self) -> list[str]:
        """The DN each SASL GSSAPI bind so far was mapped to (normalized: lower case), in order."""
        return re.findall(r' BIND dn="([^"]*)" mech=GSSAPI ', self.log.read_text(errors="replace"))

    def template_searches(self) -> int:
        """How many searches for a template by OID slapd has logged so far."""
        return len(re.findall(r" SRCH base=.*\(msPKI-Cert-Template-OID=", self.log.read_text(errors="replace")))

    def stop(self) -> None:
        self.process.stop()


def _kerberos_config(kerberos: KerberosRealm | None) -> str:
    """slapd.conf lines for SASL GSSAPI binds, mapping ``uid=<user>,cn=<realm>,cn=gssapi,cn=auth`` to an account."""
    if kerberos is None:
        return ""
    return (
        f"sasl-realm {kerberos.realm}\nsasl-host {KERBEROS_HOST}\n"
        f'authz-regexp "^uid=([^,]+),cn={kerberos.realm.lower()},cn=gssapi,cn=auth$" "CN=$1,CN=Users,{FOREST}"\n'
    )


def _config(directory: Path, tls: TlsFiles, kerberos: KerberosRealm | None) -> Path:
    (directory / "schema.conf").write_text(SCHEMA)
    (directory / "rootdse.ldif").write_text(f"dn:\nconfigurationNamingContext: {CONFIGURATION_NC}\n")
    (directory / "db").mkdir()
    config = directory / "slapd.conf"
    config.write_text(
        f"""\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include {directory / "schema.conf"}
pidfile {directory / "slapd.pid"}
argsfile {directory / "slapd.args"}
modulepath /usr/lib/ldap
moduleload back_mdb
rootDSE {directory / "rootdse.ldif"}
TLSCACertificateFile {tls.ca_pem}
TLSCertificateFile {tls.cert_pem}
TLSCertificateKeyFile {tls.key_pem}
loglevel stats
{_kerberos_config(kerberos)}
database mdb
suffix "{FOREST}"
directory {directory / "db"}
maxsize 16777216
access to attrs=userPassword by anonymous auth by * none
access to * by users read by * none
"""
    )
    return config


def _entries(password: str) -> str:
    def container(dn: str) -> str:
        return f"dn: {dn}\nobjectClass: container\ncn: {dn.split(',')[0][3:]}\n"

    blocks = [
        f"dn: {FOREST}\nobjectClass: domain\ndc: corp\n",
        container(f"CN=Users,{FOREST}"),
        f"dn: {BIND_DN}\nobjectClass: inetOrgPerson\ncn: svc-certlc\nsn: svc-certlc\nuserPassword: {password}\n",
        container(CONFIGURATION_NC),
        container(f"CN=Services,{CONFIGURATION_NC}"),
        container(f"CN=Public Key Services,CN=Services,{CONFIGURATION_NC}"),
        container(TEMPLATES_DN),
    ]
    for cn, display, oid, version in TEMPLATES:
        blocks.append(
            f"dn: CN={cn},{TEMPLATES_DN}\nobjectClass: pKICertificateTemplate\ncn: {cn}\ndisplayName: {display}\n"
            f"msPKI-Cert-Template-OID: {oid}\nmsPKI-Template-Schema-Version: {version}\n"
        )
    return "\n".join(blocks)


def start_slapd(directory: Path, *, password: str, kerberos: KerberosRealm | None = None) -> Slapd:
    """Builds the configuration and the database (``slapadd``), with ``BIND_DN`` reading the templates with
    ``password`` (or, with ``kerberos``, with a ticket for its principal), then starts slapd on two free loopback
    ports. The realm's settings go to slapd's environment only."""
    slapd = tools.ensure_slapd_gssapi() if kerberos else tools.ensure_slapd()
    tls = write_loopback_tls(directory / "tls", "slapd")
    config = _config(directory, tls, kerberos)
    (directory / "entries.ldif").write_text(_entries(password))
    with (directory / "slapadd.log").open("wb") as log:
        result = subprocess.run(
            [str(slapd.with_name("slapadd")), "-f", str(config), "-l", str(directory / "entries.ldif")],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if result.returncode != 0:
        raise ServerStartError(f"slapadd failed (log {directory / 'slapadd.log'})")
    env = None  # slapd's own environment: the realm's settings reach no other process
    if kerberos:
        env = {**os.environ, "KRB5_CONFIG": str(kerberos.krb5_conf), "KRB5_KTNAME": f"FILE:{kerberos.keytab}"}

    def start() -> Slapd:
        ldaps, ldap = free_port(), free_port()
        urls = f"ldaps://{LOOPBACK}:{ldaps}/ ldap://{LOOPBACK}:{ldap}/"
        command = (str(slapd), "-f", str(config), "-h", urls, "-d", "stats")
        process = ManagedProcess("slapd", command, directory / "slapd.log", env=env)
        process.wait_ready(lambda: port_open(ldaps) and port_open(ldap), timeout=20)
        return Slapd(directory, ldaps, ldap, tls.ca_pem, process, KERBEROS_HOST if kerberos else LOOPBACK)

    return start_with_retry(start)
