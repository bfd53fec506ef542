"""The target check, after every sweep: gather each certificate's targets and versions, probe, decide, act.

Gather: for each enabled certificate in an allow-listed vault, its declared targets (``renewal.targets.declared``)
and the Azure services found referencing it (``renewal.targets.azure``, when ``CERTLC_TARGET_SUBSCRIPTIONS`` names
subscriptions), its current and replaced versions (one version listing per certificate that has a target), and
what the last check saw (``renewal.targets.store``). Probe: every host this instance probes (``CERTLC_PROBER``),
bounded in time and concurrency. Decide: ``renewal.targets.decide``. Act: move references pinned to the replaced
version under ``CERTLC_ROLLOUT=update``, alert once a day per target, retire the replaced version when allowed and
asked (``CERTLC_RETIRE_AFTER_DAYS``), and write what was seen. Key Vault cost: the vault listing, then a GET and a
version listing per certificate with a target (its tags and the settings say which); nothing for the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from renewal import tags as cert_tags
from renewal.keyvault import CertificateSnapshot, CertificateSummary, KeyVault, KeyVaultError
from renewal.targets.decide import (
    RolloutMode,
    TargetState,
    retirement_allowed,
    rollout_action,
    summary_of,
    target_alerts,
    target_state,
)
from renewal.targets.model import CertificateVersions, KnownVersion, Probe, Target
from renewal.targets.store import Seen, TargetStore, VaultTargets, since_for
from renewal.vaults import Vault
from renewal.x509info import thumbprint

log = logging.getLogger("certlc.targets")

Discovered = Mapping[tuple[str, str], Sequence[Target]]  # (vault, certificate name), both lower case
ProbeAll = Callable[[Sequence[Target]], list[Probe]]
UpdateReference = Callable[[Target, str], None]


@dataclass(frozen=True)
class TargetSettings:
    rollout: RolloutMode = "report"
    grace: timedelta = timedelta(hours=4)  # past a versionless target's pickup interval before it alerts
    retire_after: timedelta | None = None  # None: never disable the replaced version
    escalate_within: timedelta = timedelta(days=7)
    prober: str = ""  # this instance's name in CERTLC_PROBER ("" = the app)


@dataclass
class TargetsReport:
    certificates: int = 0
    targets: int = 0
    serving_current: int = 0
    updated: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    states: dict[str, list[TargetState]] = field(default_factory=dict)  # vault/name -> states


@dataclass(frozen=True)
class Actors:
    """The adapters the check acts through; each is optional where the deployment does not use it."""

    probe_all: ProbeAll
    alert: Callable[[CertificateSnapshot, Any], None]  # the certificate and a TargetAlert
    audit: Callable[..., None]  # (event, vault, name, **fields)
    update_reference: UpdateReference | None = None


def versions_of(kv: KeyVault, cert: CertificateSnapshot) -> CertificateVersions | None:
    """The current (last good) version and the newest one created before it, with their thumbprints (one listing)."""
    if not cert.cer:
        return None
    listed = [v for v in kv.versions(cert.name) if getattr(v, "x509_thumbprint", None)]
    created = next((v.created_on for v in listed if v.version == cert.version), None)
    current = KnownVersion(cert.version, thumbprint(cert.cer), cert.expires_on, created)
    older = sorted(
        (v for v in listed if v.version != cert.version and _before(v, created)),
        key=lambda v: v.created_on,
        reverse=True,
    )
    known = [KnownVersion(v.version, bytes(v.x509_thumbprint).hex().upper(), v.expires_on, v.created_on) for v in older]
    return CertificateVersions(cert.vault, cert.name, current, known[0] if known else None, tuple(known[1:]))


def _before(version: Any, created: datetime | None) -> bool:
    return created is None or version.created_on is None or version.created_on <= created


def check_certificate(
    cert: CertificateSnapshot,
    targets: Sequence[Target],
    versions: CertificateVersions,
    probes: Sequence[Probe],
    before: VaultTargets,
    now: datetime,
    settings: TargetSettings,
) -> list[TargetState]:
    """Decide each target's state from the probes of its hosts, keeping "since" from the last check."""
    by_endpoint = {(p.host.lower(), p.port): p for p in probes}
    states = []
    for target in (t for t in targets if t.prober == settings.prober):
        seen = [by_endpoint[(h.lower(), target.port)] for h in target.hosts if (h.lower(), target.port) in by_endpoint]
        state = target_state(target, seen, versions, now, None, settings.grace)
        previous = before.previous(cert.name, target.key)
        states.append(_with_since(state, since_for(state, previous) or now))
    return states


def _with_since(state: TargetState, since: datetime) -> TargetState:
    return replace(state, since=since)


@dataclass(frozen=True)
class Work:
    """One certificate with targets, read whole: what the probes are compared with."""

    cert: CertificateSnapshot
    targets: list[Target]
    versions: CertificateVersions


TargetsOf = Callable[[str, str, Mapping[str, str]], list[Target]]  # (vault, name, tags) -> targets


def gather(
    kv: KeyVault,
    vault: Vault,
    targets_of: TargetsOf,
    problems: list[str],
    only: str | None = None,
    listing: Sequence[CertificateSummary] | None = None,
) -> list[Work]:
    """The vault's certificates with targets (``only``: just that one), each read whole with its versions; the
    listing is read here unless given (the sweep's, just read)."""
    try:
        summaries = kv.list() if listing is None else listing
        listed = [s for s in summaries if s.enabled and (only is None or s.name.lower() == only.lower())]
    except KeyVaultError as exc:
        problems.append(f"{vault.name}: {exc}")
        return []
    work = []
    for summary in listed:
        found = targets_of(vault.name, summary.name, summary.tags)
        if not found:  # nothing read for a certificate without targets
            continue
        try:
            cert = kv.current(summary.name)
            versions = versions_of(kv, cert) if cert else None
        except KeyVaultError as exc:
            problems.append(f"{vault.name}/{summary.name}: {exc}")
            continue
        if cert and versions:
            work.append(Work(cert, found, versions))
    return work


def probed_states(
    work: Sequence[Work], probe_all: ProbeAll, before: VaultTargets, now: datetime, settings: TargetSettings
) -> list[list[TargetState]]:
    """Probe every host this instance probes, once, and decide each certificate's targets (those of this prober:
    the app's check leaves an on-premises prober's targets to it, and the other way round)."""
    mine = [t for w in work for t in w.targets if t.prober == settings.prober]
    probes = probe_all(mine) if mine else []
    return [check_certificate(w.cert, w.targets, w.versions, probes, before, now, settings) for w in work]


def check_targets(
    vaults: Mapping[str, Vault],
    keyvault_for: Callable[[Vault], KeyVault],
    targets_of: TargetsOf,
    store: TargetStore,
    actors: Actors,
    settings: TargetSettings,
    now: datetime,
    listed: Mapping[str, Sequence[CertificateSummary]] | None = None,
) -> TargetsReport:
    report = TargetsReport()
    for vault in vaults.values():
        kv = keyvault_for(vault)
        try:
            before = store.load(vault.name)
        except Exception as exc:  # no memory of "since": this vault waits for the next sweep
            report.problems.append(f"{vault.name}: the last check's record could not be read: {exc}")
            continue
        after = VaultTargets(vault.name, now)
        work = gather(kv, vault, targets_of, report.problems, listing=(listed or {}).get(vault.name))
        for item, states in zip(work, probed_states(work, actors.probe_all, before, now, settings), strict=True):
            if not states:  # all its targets are another prober's
                continue
            try:
                _act(kv, item.cert, item.versions, states, before, after, actors, settings, now, report)
            except Exception as exc:  # one certificate's trouble never ends the check for the others
                log.exception("target check of %s/%s failed", vault.name, item.cert.name)
                report.problems.append(f"{vault.name}/{item.cert.name}: {type(exc).__name__}: {exc}")
        try:
            store.save(after)
        except Exception as exc:
            report.problems.append(f"{vault.name}: what the check saw could not be written: {exc}")
    return report


def _act(
    kv: KeyVault,
    cert: CertificateSnapshot,
    versions: CertificateVersions,
    states: list[TargetState],
    before: VaultTargets,
    after: VaultTargets,
    actors: Actors,
    settings: TargetSettings,
    now: datetime,
    report: TargetsReport,
) -> None:
    key = f"{cert.vault}/{cert.name}"
    name = cert.name.lower()
    report.certificates += 1
    report.targets += len(states)
    report.serving_current += sum(1 for s in states if s.ok)
    report.states[key] = states
    today = now.strftime("%Y-%m-%d")
    seen: list[Seen] = []
    for state in states:
        target = state.target
        decision = rollout_action(target, versions, settings.rollout)
        moved = False
        if decision.action == "update" and actors.update_reference is not None:
            try:
                actors.update_reference(target, versions.current.version)
                actors.audit("rollout_updated", cert.vault, cert.name, target=target.name, detail=decision.message,
                             old_version=target.pinned_version, new_version=versions.current.version)  # fmt: skip
                report.updated.append(f"{key}: {target.name}")
                moved = True
            except Exception as exc:  # reported; the next sweep tries again
                report.problems.append(f"{key}: {target.name} could not be moved: {exc}")
        alerted = (before.previous(name, target.key) or Seen.of(state)).alerted
        alerts = [] if moved else target_alerts(state, now, settings.escalate_within)  # just put right: no alert
        if alerts and alerted != today:
            for alert in alerts:
                actors.alert(cert, alert)
                report.alerts.append(f"{key}: {alert.message}")
            alerted = today
        seen.append(Seen.of(state, alerted))
    after.seen[name] = seen
    after.summaries[name] = summary_of(states)
    if newly_served(states, before.seen.get(name, []), versions):
        renewal = cert_tags.tag(cert.tags, cert_tags.CORRELATION)  # the renewal that merged it: folded under it
        actors.audit("served", cert.vault, cert.name, correlation_id=renewal, new_version=versions.current.version,
                     detail=f"{len(states)} targets serve version {versions.current.version}")  # fmt: skip
    _retire(kv, cert, versions, states, actors, settings, now, report)


def newly_served(states: Sequence[TargetState], before: Sequence[Seen], versions: CertificateVersions) -> bool:
    """Every target serves the current version now, and the last check did not see them all do so: the moment a
    renewal is served everywhere (this prober's targets), recorded once."""
    current = versions.current.thumbprint.upper()

    def all_current(items: Sequence[tuple[str, str | None]]) -> bool:
        return bool(items) and all(r == "serves_current" and (t or "").upper() == current for r, t in items)

    now = [(str(s.reason), s.thumbprint) for s in states]
    return all_current(now) and not all_current([(s.reason, s.thumbprint) for s in before])


def _retire(
    kv: KeyVault,
    cert: CertificateSnapshot,
    versions: CertificateVersions,
    states: list[TargetState],
    actors: Actors,
    settings: TargetSettings,
    now: datetime,
    report: TargetsReport,
) -> None:
    """Opt-in: disable the replaced version once every known target has served the new one long enough."""
    if settings.retire_after is None or versions.previous is None:
        return
    verdict = retirement_allowed(states, now, settings.retire_after)
    if not verdict.allowed:
        return
    old = versions.previous.version
    try:
        kv.disable_version(cert.name, old)
    except KeyVaultError as exc:
        report.problems.append(f"{cert.vault}/{cert.name}: version {old} could not be disabled: {exc}")
        return
    actors.audit("retired", cert.vault, cert.name, old_version=old, detail=verdict.message)
    report.retired.append(f"{cert.vault}/{cert.name}: {old}")
