"""What certlc last saw at each target, and since when: one JSON blob per vault and prober in the lock container.

The app's target check (after each sweep) writes its own, and each on-premises prober (``certlc targets --check``
with ``CERTLC_PROBER_NAME``) its own, each holding only the targets it probes, so none overwrites another's view.
``certlc status``, ``certlc targets --no-probe`` and the ingest read them all together (``load_all``): the SERVED
column and "since when" need no probe of their own, at one listing and a read per prober per vault.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from renewal.clock import iso_utc
from renewal.targets.decide import TargetState, served_summary

log = logging.getLogger("certlc.targets")

SCHEMA = "certlc.targets/1"
PREFIX = "_targets/"  # beside the renewal records (vault/name): no Key Vault name has an underscore


@dataclass(frozen=True)
class Seen:
    """One target as the last check left it."""

    key: str
    kind: str
    name: str
    hosts: tuple[str, ...]
    served: str
    reason: str
    message: str
    since: datetime | None
    thumbprint: str | None = None
    not_after: datetime | None = None
    pickup: str = "unknown"
    pinned_version: str | None = None
    alerted: str = ""  # the UTC day its last alert went out: one a day

    @classmethod
    def of(cls, state: TargetState, alerted: str = "") -> Seen:
        t = state.target
        return cls(
            t.key,
            t.kind,
            t.name,
            t.hosts,
            state.served,
            str(state.reason),
            state.message,
            state.since,
            state.thumbprint,
            state.not_after,
            t.pickup,
            t.pinned_version,
            alerted,
        )

    def to_dict(self) -> dict[str, Any]:
        body = {k: getattr(self, k) for k in self.__dataclass_fields__}
        body["hosts"] = list(self.hosts)
        body["since"] = iso_utc(self.since) if self.since else None
        body["not_after"] = iso_utc(self.not_after) if self.not_after else None
        return body

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> Seen:
        fields = {k: body.get(k) for k in cls.__dataclass_fields__}
        fields["hosts"] = tuple(body.get("hosts") or ())
        for key in ("since", "not_after"):
            fields[key] = datetime.fromisoformat(body[key].replace("Z", "+00:00")) if body.get(key) else None
        fields["alerted"] = body.get("alerted") or ""
        fields["pickup"] = body.get("pickup") or "unknown"
        return cls(**fields)


@dataclass
class VaultTargets:
    """Every certificate of one vault with targets: its SERVED summary and what each target served."""

    vault: str
    at: datetime | None = None
    summaries: dict[str, str] = field(default_factory=dict)  # certificate name (lower case) -> SERVED
    seen: dict[str, list[Seen]] = field(default_factory=dict)  # certificate name (lower case) -> targets

    def to_json(self) -> str:
        return json.dumps(
            {
                "schema": SCHEMA,
                "vault": self.vault,
                "at": iso_utc(self.at) if self.at else None,
                "certificates": {
                    name: {"served": self.summaries.get(name, ""), "targets": [s.to_dict() for s in seen]}
                    for name, seen in sorted(self.seen.items())
                },
            }
        )

    @classmethod
    def from_json(cls, vault: str, text: str) -> VaultTargets:
        """What a blob holds; an empty or foreign one is no history (the next check starts afresh)."""
        try:
            body = json.loads(text)
            if body.get("schema") != SCHEMA:
                return cls(vault)
            at = datetime.fromisoformat(body["at"].replace("Z", "+00:00")) if body.get("at") else None
            found = cls(vault, at)
            for name, entry in (body.get("certificates") or {}).items():
                found.summaries[name] = entry.get("served", "")
                found.seen[name] = [Seen.from_dict(s) for s in entry.get("targets") or ()]
            return found
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("ignoring an unreadable targets record for vault %s", vault)
            return cls(vault)

    def previous(self, name: str, key: str) -> Seen | None:
        return next((s for s in self.seen.get(name.lower(), ()) if s.key == key), None)


APP = "app"  # the blob of the app's own check; a named prober's carries its name


def blob_name(vault: str, prober: str = "") -> str:
    return f"{PREFIX}{vault.lower()}@{(prober or APP).lower()}.json"


class TargetStore:
    """The blobs in a container client (``renewal.ledger.lock_container``); ``prober``: whose blob ``load`` and
    ``save`` use ("" for the app)."""

    def __init__(self, container: Any, prober: str = "") -> None:
        self._container = container
        self._prober = prober

    def load(self, vault: str) -> VaultTargets:
        """This prober's own record: what it saw, and since when."""
        return self._read(vault, blob_name(vault, self._prober))

    def load_all(self, vault: str) -> VaultTargets:
        """Every prober's record for the vault, put together: each certificate's targets and its SERVED summary."""
        from azure.core.exceptions import ResourceNotFoundError

        merged = VaultTargets(vault)
        try:
            names = [b.name for b in self._container.list_blobs(name_starts_with=f"{PREFIX}{vault.lower()}@")]
        except ResourceNotFoundError:
            return merged
        for name in sorted(names):
            part = self._read(vault, name)
            merged.at = max((t for t in (merged.at, part.at) if t is not None), default=None)
            for certificate, seen in part.seen.items():
                merged.seen.setdefault(certificate, []).extend(seen)
        merged.summaries = {
            certificate: served_summary([(s.name, s.reason, s.pinned_version) for s in seen])
            for certificate, seen in merged.seen.items()
        }
        return merged

    def _read(self, vault: str, name: str) -> VaultTargets:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            text = self._container.get_blob_client(name).download_blob().readall().decode()
        except ResourceNotFoundError:
            return VaultTargets(vault)
        return VaultTargets.from_json(vault, text)

    def save(self, found: VaultTargets) -> None:
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

        blob = self._container.get_blob_client(blob_name(found.vault, self._prober))
        data = found.to_json().encode()
        try:
            blob.upload_blob(data, overwrite=True)
        except ResourceNotFoundError:  # the first write ever: the container is made on first use
            with contextlib.suppress(ResourceExistsError):
                self._container.create_container()
            blob.upload_blob(data, overwrite=True)


def since_for(state: TargetState, before: Seen | None) -> datetime | None:
    """A target serving what it served at the last check keeps that check's "since"; anything new starts now."""
    if before is not None and before.served == state.served and before.thumbprint == state.thumbprint:
        return before.since
    return state.since


def still_serving(store: TargetStore, vault: str, name: str, thumbprint: str) -> tuple[str, ...]:
    """The targets the last check saw serving the certificate with ``thumbprint`` (every prober's record)."""
    seen = store.load_all(vault).seen.get(name.lower(), [])
    return tuple(sorted({s.name for s in seen if (s.thumbprint or "").upper() == thumbprint.upper()}))
