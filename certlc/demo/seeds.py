"""The certificates the demo seeds and what the pipeline must record for each, per CA.

One table (``EXPECTED``) says which CA gets which certificate and how it must end, so the scenario, the CA
servers and the assessment cannot disagree on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from cryptography import x509

VAULT = "kv1"
NOT_EXAMINED = "not examined"
RENEWED = "renewed"
FAILED = "failed"
# The v2 template of the OID-only certificate: in the directory as WebServerV2, a name /certsrv offers
V2_TEMPLATE_OID = "1.3.6.1.4.1.311.21.8.5934178.1234567.1.2.3.4.101"
APPROVAL_TEMPLATE = "ApprovalV3"  # the AD CS template whose requests wait for a CA manager
REFUSED_NAME = "partner.example.com"  # the name pebble's policy refuses: ACME has no templates to retire
# Where certificates are served: shop-expiring's two names on the demo's nginx, web-expired behind a gateway
SYNCED = "shop-expiring"
KEPT_IN_STEP = "shop.example.com"  # certlc sync installs every new version here
LEFT_BEHIND = "cart.example.com"  # installed once by certlc sync, then forgotten: it keeps the replaced version
CONNECT = "127.0.0.1"  # where the endpoints are reached (the names are not in DNS)
PINNED = "web-expired"
# The two whose old key is retired: one the operator renews with --compromise, one its CA revokes behind certlc's
# back before the sweep. Each is renewed once first (--force) so that the demo's CA issued its current version: a CA
# revokes only what it issued, and only its own certificates name where it publishes their revocation.
EXPOSED = "key-exposed"
REVOKED_AT_CA = "revoked-at-ca"


@dataclass(frozen=True)
class Seed:
    name: str
    issuer: str  # "Unknown" (certlc renews) or "Self" (Key Vault renews)
    days_left: int  # at seeding time
    lifetime_days: int
    tags: dict[str, str] = field(default_factory=dict)
    sans: tuple[str, ...] = ()
    auto_renew: bool = True  # Self only: Key Vault's own AutoRenew lifetime action
    extensions: tuple[x509.ExtensionType, ...] = ()  # what the previous CA put in the certificate besides the CSR's


SEEDS = (
    Seed(PINNED, "Unknown", -2, 90, {"Recipient": "web-team@example.com"}, ("www.example.com",)),
    Seed(
        SYNCED,
        "Unknown",
        40,
        90,
        {"Recipient": "shop@example.com; oncall@example.com", "owner": "shop"},
        (KEPT_IN_STEP, LEFT_BEHIND),
    ),
    Seed("api-healthy", "Unknown", 300, 365, sans=("api.example.com",)),
    Seed("portal-selfsigned", "Self", 0, 0, sans=("portal.example.com",)),
    Seed("partner-retired", "Unknown", 38, 90, {"certlc-profile": "retired-template"}, (REFUSED_NAME,)),
    Seed("intranet-yearly", "Unknown", 110, 365, sans=("intranet.example.com",)),
    Seed(
        "legacy-v2-template",
        "Unknown",
        40,
        90,
        sans=("legacy.example.com",),
        extensions=(x509.MSCertificateTemplate(x509.ObjectIdentifier(V2_TEMPLATE_OID), 100, 4),),
    ),
    Seed("vpn-approval", "Unknown", 40, 90, {"certlc-profile": APPROVAL_TEMPLATE}, ("vpn.example.com",)),
    Seed(EXPOSED, "Unknown", 300, 365, sans=("login.example.com",)),
    Seed(REVOKED_AT_CA, "Unknown", 300, 365, sans=("mail.example.com",)),
)


@dataclass(frozen=True)
class Expect:
    """The outcome the pipeline must record for a certificate; ``status`` None: nothing is to act on it."""

    status: str | None
    reason: str = ""
    waits: bool = False  # the CA leaves the request pending first (approval), then issues
    ca_words: bool = False  # the CA's request id and its own message reach the audit trail
    served: str = ""  # the SERVED column (the snapshot's Served; "" when certlc knows no target); {port}: nginx's
    left_behind: str = ""  # a server name still serving the replaced version: its `serving` alert must arrive
    moved: bool = False  # the gateway's reference was moved to the renewed version (audit rollout_updated)
    # the trigger of a renewal that retires the old key: "compromise" (the operator's --compromise) or "revoked" (the
    # sweep saw its CA's revocation): a new key, the old version disabled, revoked at the CA, one compromise notice
    retires: str = ""
    # what its compromise notices said of the revocation, in order: AD CS cannot revoke over web enrollment, so its
    # first notice names the certutil command (awaiting) and a second one follows once the CA's CRL lists the serial
    notices: tuple[str, ...] = ("revoked",)
    versions: int = 0  # the issued versions Key Vault must hold, when not the status's usual (2 renewed, else 1)


CAS = ("local", "acme", "cfssl", "adcs")
_MERGED = Expect(RENEWED, "merged")
_UNTOUCHED = Expect(None)
_DENIED = Expect(FAILED, "ca_denied")
_MOVED = replace(_MERGED, served="1/1", moved=True)  # served everywhere once the gateway was moved
_LEFT_BEHIND = replace(
    _MERGED,
    served=f"1/2: {LEFT_BEHIND}:{{port}}@{CONNECT} serves the old version",
    left_behind=LEFT_BEHIND,
)
_REISSUED = replace(_MERGED, versions=3)  # seeded, issued by the demo's CA (--force), then renewed with a new key
# Certificate → CA → what the pipeline must record; a CA not in a row is not given that certificate.
# partner-retired is refused as each CA refuses: local and cfssl do not offer its profile "retired-template"
# (cfssl would sign with its default policy; the adapter reads cfssl's info and refuses instead), pebble's
# policy blocks its name (ACME has no templates), AD CS denies the template with its disposition message.
EXPECTED: dict[str, dict[str, Expect]] = {
    PINNED: dict.fromkeys(CAS, _MOVED),
    SYNCED: dict.fromkeys(CAS, _LEFT_BEHIND),
    "api-healthy": dict.fromkeys(CAS, _UNTOUCHED),
    "portal-selfsigned": dict.fromkeys(CAS, _UNTOUCHED),
    "partner-retired": {"local": _DENIED, "acme": _DENIED, "cfssl": _DENIED, "adcs": replace(_DENIED, ca_words=True)},
    "intranet-yearly": dict.fromkeys(CAS, _MERGED),
    "legacy-v2-template": {"adcs": _MERGED},  # its template OID looked up to a name in the directory
    "vpn-approval": {"adcs": Expect(RENEWED, "merged", waits=True, ca_words=True)},
    EXPOSED: dict.fromkeys(CAS, replace(_REISSUED, retires="compromise"))
    | {"adcs": replace(_REISSUED, retires="compromise", notices=("awaiting", "revoked"))},
    REVOKED_AT_CA: dict.fromkeys(("local", "adcs"), replace(_REISSUED, retires="revoked")),
}
# A certificate left out for a CA, and why: what the demo cannot show through it rather than a made-up outcome
LEFT_OUT: dict[str, dict[str, str]] = {
    REVOKED_AT_CA: {
        "acme": "pebble publishes no CRL or OCSP, so certlc cannot see a revocation made behind its back",
        "cfssl": "cfssl 1.2 builds no CRL from its database (OCSP only from an exported file), so certlc cannot "
        "see a revocation made behind its back",
    },
}


def seeds_for(ca: str) -> tuple[Seed, ...]:
    """The certificates the demo gives ``ca``."""
    return tuple(seed for seed in SEEDS if ca in EXPECTED[seed.name])


def left_out(ca: str) -> dict[str, str]:
    """Certificate → why the demo does not give it to ``ca``, for those it names."""
    return {name: why[ca] for name, why in LEFT_OUT.items() if ca in why}


def seed_vault(client: Any, stack: Any, seeds: tuple[Seed, ...]) -> dict[str, str]:
    """Seed the (fresh) vault; certificate → the version seeded, as Key Vault returned it."""
    from localazure.seeding import PreviousCA, seed_sample

    ca, now = PreviousCA(), stack.now()
    return {seed.name: seed_sample(client, ca, seed, now).properties.version for seed in seeds}
