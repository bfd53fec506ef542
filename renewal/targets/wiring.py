"""The target check's settings and adapters, from app settings (the composition root for ``renewal.targets``).

| Setting | Default | Meaning |
|---|---|---|
| `CERTLC_ROLLOUT` | `report` | `update` moves an Azure reference pinned to the replaced version to the new one |
| `CERTLC_PICKUP_GRACE_HOURS` | `4` | a versionless target serving the old version this long past its interval alerts |
| `CERTLC_RETIRE_AFTER_DAYS` | `0` (off) | disable the replaced version once every target served the new one this long |
| `CERTLC_PROBE_TIMEOUT` | `5` | seconds for one TLS handshake (connect included) |
| `CERTLC_PROBE_WORKERS` | `16` | handshakes at once |
| `CERTLC_PROBE_DEADLINE` | `120` | seconds for all of one check's handshakes; what is left is reported not probed |
| `CERTLC_PROBER_NAME` | (the app) | this `certlc worker`'s name in `CERTLC_PROBER`: it probes those endpoints only |
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from renewal.errors import ConfigError
from renewal.messages import FIELD_LIMITS, RenewalRequest
from renewal.setting_values import number_setting, seconds_setting, whole_number_setting
from renewal.targets.model import Target
from renewal.targets.run import Actors, TargetSettings, TargetsReport, check_targets

if TYPE_CHECKING:
    from renewal.keyvault import CertificateSummary

log = logging.getLogger("certlc.targets")

ROLLOUT_MODES = ("report", "update")


def target_settings_from_env(env: Mapping[str, str], escalate_within: timedelta) -> TargetSettings:
    mode = (env.get("CERTLC_ROLLOUT") or "report").strip().lower()
    if mode not in ROLLOUT_MODES:
        raise ConfigError(f"CERTLC_ROLLOUT is {mode!r}; it must be report or update")
    grace = number_setting(env, "CERTLC_PICKUP_GRACE_HOURS", 4, low=0, high=24 * 30, unit="hours")
    retire = whole_number_setting(env, "CERTLC_RETIRE_AFTER_DAYS", 0, low=0, high=365, unit="days")
    return TargetSettings(
        rollout=mode,  # type: ignore[arg-type]
        grace=timedelta(hours=grace),
        retire_after=timedelta(days=retire) if retire else None,
        escalate_within=escalate_within,
        prober=(env.get("CERTLC_PROBER_NAME") or "").strip(),
    )


def check_target_settings(env: Mapping[str, str]) -> None:
    """Every target setting read once, as the app starts: ``ConfigError`` naming the first that cannot be used."""
    from renewal.targets.azure.discover import settings_from_env
    from renewal.targets.declared import prober_rules, shared_endpoints

    target_settings_from_env(env, timedelta(0))
    probe_limits(env)
    shared_endpoints(env)
    prober_rules(env)
    settings_from_env(env)


def probe_limits(env: Mapping[str, str]) -> dict[str, float]:
    return {
        "timeout": seconds_setting(env, "CERTLC_PROBE_TIMEOUT", 5),
        "workers": whole_number_setting(env, "CERTLC_PROBE_WORKERS", 16, low=1, high=256),
        "deadline": seconds_setting(env, "CERTLC_PROBE_DEADLINE", 120),
    }


def targets_finder(env: Mapping[str, str], discovered: Mapping[tuple[str, str], list[Target]]) -> Any:
    """A certificate's targets: declared (tag and ``CERTLC_ENDPOINTS``) and discovered in Azure."""
    from renewal.targets.declared import declared_targets

    def targets_of(vault: str, name: str, tags: Mapping[str, str]) -> list[Target]:
        declared = declared_targets(vault, name, tags, env)  # logs a tag it cannot read
        return [*declared.targets, *discovered.get((vault.lower(), name.lower()), ())]

    return targets_of


DISCOVERY_TIMEOUT_SECONDS = 30.0


def discovered_targets(
    env: Mapping[str, str], vaults: Mapping[str, Any]
) -> tuple[dict[tuple[str, str], list[Target]], list[str]]:
    """The Azure services referencing Key Vault certificates, when ``CERTLC_TARGET_SUBSCRIPTIONS`` names
    subscriptions (``renewal.targets.azure``); nothing otherwise. A type or subscription that cannot be read is a
    problem reported, never a failed check."""
    if not (env.get("CERTLC_TARGET_SUBSCRIPTIONS") or "").strip():
        return {}, []
    from renewal.targets.azure.discover import discover_from_env

    found = discover_from_env(env, vaults, timeout=DISCOVERY_TIMEOUT_SECONDS)
    if found is None:
        return {}, []
    problems = [f"{p.subscription} {p.resource_type}: {p.message}" for p in found.problems]
    return {key: list(value) for key, value in found.targets.items()}, problems


def reference_updater(env: Mapping[str, str]) -> Any:
    """The rollout write for ``CERTLC_ROLLOUT=update`` (``renewal.targets.azure.rollout``), with the identity and
    ARM endpoint discovery uses."""
    from renewal.clients import credential_for
    from renewal.targets.azure.discover import settings_from_env
    from renewal.targets.azure.rollout import update_reference

    arm = settings_from_env(env)
    credential = credential_for(arm.endpoint, env)

    def update(target: Target, new_version: str) -> None:
        update_reference(
            target,
            new_version,
            credential,
            base_url=arm.endpoint,
            timeout=DISCOVERY_TIMEOUT_SECONDS,
            connection_verify=arm.ca_bundle,
        )

    return update


def run_target_check(
    rt: Any, now: datetime, listed: Mapping[str, Sequence[CertificateSummary]] | None = None
) -> TargetsReport:
    """The check after a sweep, with the runtime's vaults, Key Vault adapters, reporter and settings; ``listed``: the
    vaults' listings the sweep read (a vault not in it is listed here)."""
    from renewal.ledger import lock_container
    from renewal.targets.probe import probe_all
    from renewal.targets.store import TargetStore

    env = rt.env
    settings = target_settings_from_env(env, rt.settings.window.escalate_within)
    discovered, problems = discovered_targets(env, rt.settings.vaults)
    limits = probe_limits(env)

    def audit(event: str, vault: str, name: str, correlation_id: str | None = None, **fields: Any) -> None:
        """A target check's record; ``correlation_id``: the renewal it belongs to (a merged version names it)."""
        request = RenewalRequest(vault=vault, name=name, trigger="sweep")
        if correlation_id and len(correlation_id) <= FIELD_LIMITS["correlation_id"]:
            request = replace(request, correlation_id=correlation_id)
        rt.reporter.audit(event, request, **fields)

    actors = Actors(
        probe_all=partial(
            probe_all, timeout=limits["timeout"], workers=int(limits["workers"]), deadline=limits["deadline"]
        ),
        alert=rt.reporter.serving,
        audit=audit,
        update_reference=reference_updater(env) if settings.rollout == "update" else None,
    )
    report = check_targets(
        rt.settings.vaults, rt.keyvault, targets_finder(env, discovered),
        TargetStore(lock_container(env), settings.prober), actors, settings, now, listed,
    )  # fmt: skip
    report.problems[:0] = problems
    return report
