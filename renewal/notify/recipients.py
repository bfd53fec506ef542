"""Who hears about a certificate: its ``Recipient`` tag plus the configured defaults.

The tag is certlc-compatible: the key is matched case-insensitively, addresses are
separated by ``,`` or ``;``. Tags are edited by hand in the portal, so every address
is checked and a bad one is dropped (and logged) rather than failing the whole send.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from renewal.tags import RECIPIENT

log = logging.getLogger(__name__)

RECIPIENT_TAG = RECIPIENT.lower()
DEFAULT_RECIPIENTS_SETTING = "CERTLC_NOTIFY_DEFAULT_RECIPIENTS"

# Deliberately strict: one local part of common characters, a dotted domain with a letter TLD.
EMAIL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
MAX_ADDRESS_LENGTH = 254


@dataclass(frozen=True)
class ParsedRecipients:
    valid: tuple[str, ...]
    invalid: tuple[str, ...]


def is_valid_address(address: str) -> bool:
    return len(address) <= MAX_ADDRESS_LENGTH and bool(EMAIL.match(address))


def parse_recipients(values: Iterable[str]) -> ParsedRecipients:
    """Split, trim, validate and de-duplicate (case-insensitively, first spelling wins)."""
    valid: list[str] = []
    invalid: list[str] = []
    seen: set[str] = set()
    for value in values:
        for item in re.split(r"[,;]", value):
            address = item.strip()
            if not address:
                continue
            if not is_valid_address(address):
                invalid.append(address)
            elif address.lower() not in seen:
                seen.add(address.lower())
                valid.append(address)
    return ParsedRecipients(tuple(valid), tuple(invalid))


def recipient_tag(tags: Mapping[str, str] | None) -> str:
    """The ``Recipient`` tag value under any capitalisation (all such keys, if several)."""
    return ";".join(value for key, value in (tags or {}).items() if key.strip().lower() == RECIPIENT_TAG)


def recipients_from_tags(tags: Mapping[str, str] | None, env: Mapping[str, str] | None = None) -> list[str]:
    """Addresses from the certificate's tag followed by ``CERTLC_NOTIFY_DEFAULT_RECIPIENTS``."""
    settings = os.environ if env is None else env
    parsed = parse_recipients([recipient_tag(tags), settings.get(DEFAULT_RECIPIENTS_SETTING, "")])
    if parsed.invalid:
        log.warning(
            "ignored %d invalid notification address(es) from the Recipient tag or %s: %s",
            len(parsed.invalid),
            DEFAULT_RECIPIENTS_SETTING,
            ", ".join(repr(a[:80]) for a in parsed.invalid),
        )
    return list(parsed.valid)
