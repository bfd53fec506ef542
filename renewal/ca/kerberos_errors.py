"""What a Kerberos (GSSAPI) failure on this side means for the operator, for web enrollment and the directory alike.

No ``requests`` or gssapi import: the AD CS adapter's Negotiate authentication and the template lookup's SASL GSSAPI
bind both read GSSAPI's "minor" text here, naming the service principal (``HTTP/host`` or ``ldap/host``) they asked
for. A KDC out of reach is transient (retried); everything else is the worker's Kerberos setup and does not mend by
retrying.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_MINOR = re.compile(r"Minor \(\d+\): (.+?)(?:, Context:|$)")
_NO_TICKET = (
    "this process has no Kerberos ticket: set KRB5_CLIENT_KTNAME to the service account's keytab (MIT Kerberos "
    "then gets tickets by itself), or KRB5CCNAME to a credential cache kept fresh (kinit -k -t KEYTAB PRINCIPAL)"
)
# The first that matches wins; {spn} is the principal asked for, {setting} the setting that names its host.
_CAUSES = (
    (r"no kerberos credentials|no credentials cache|key table", _NO_TICKET),
    (r"clock skew", "this machine's clock and the KDC's differ by more than the allowed skew (5 minutes by "
                    "default): keep the clock in sync with the domain controllers (NTP)"),
    (r"^server .*not found", "no account holds the SPN {spn}: {setting} must name the host its SPN is registered "
                             "for (setspn -Q {spn}), not an IP address or an alias"),
    (r"^client .*not found", "the KDC does not know this client principal: check the keytab's principal "
                             "(klist -k) and that the account exists"),
    (r"preauthentication failed|decrypt integrity check failed|password incorrect",
     "the keytab's key is not the account's current key (its password changed since the keytab was made): make a "
     "new keytab"),
    (r"revoked", "the KDC refuses the account: it is disabled, locked out or expired"),
    (r"expired", "the ticket expired: renew it (kinit -k), or use KRB5_CLIENT_KTNAME so tickets come when needed"),
    (r"cannot find kdc", "krb5.conf names no KDC for the realm: check KRB5_CONFIG (or /etc/krb5.conf), its "
                         "[realms] and dns_lookup_kdc"),
)  # fmt: skip


@dataclass(frozen=True)
class KerberosFailure:
    transient: bool  # the KDC is out of reach: try again later
    cause: str  # GSSAPI's own words
    hint: str  # what to do, or "" when the words are all there is


def explain_kerberos_failure(error: str, *, spn: str, setting: str) -> KerberosFailure:
    """``error`` as GSSAPI reported it, for a ticket to ``spn`` whose host ``setting`` names."""
    said = _MINOR.search(error)
    cause = (said.group(1) if said else error).strip()
    if re.search(r"cannot contact any kdc", cause, re.IGNORECASE):
        return KerberosFailure(True, cause, "")
    hint = next((hint for words, hint in _CAUSES if re.search(words, cause, re.IGNORECASE)), "")
    return KerberosFailure(False, cause, hint.format(spn=spn, setting=setting))
