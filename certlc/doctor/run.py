"""Which checks a deployment's settings call for, and running them side by side, each under a deadline."""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from certlc.doctor.result import CheckResult, failed

DEFAULT_TIMEOUT = 5.0


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[], CheckResult]


def plan(env: Mapping[str, str], timeout: float) -> list[Check]:
    """The checks, in the order they are shown. Settings the app cannot start with raise ``ConfigError``."""
    from certlc.doctor.bundles import bundle_checks
    from certlc.doctor.cas import adapters_to_check, check_ca
    from certlc.doctor.deployment import deployment_checks
    from certlc.doctor.heartbeat import CHECK_NAME, check_heartbeat
    from certlc.doctor.locks import check_lock_container, lock_container_name
    from certlc.doctor.logs import judge_logs, probe_logs
    from certlc.doctor.queues import judge_queue, probe_queue
    from certlc.doctor.vaults import judge_vault, probe_vault
    from renewal.settings import settings_from_env

    settings = settings_from_env(env)
    checks = [
        Check(f"vault {vault.name}", lambda vault=vault: judge_vault(probe_vault(vault, env, timeout)))
        for vault in settings.vaults.values()
    ]
    for queue in (settings.queue_name, settings.failed_queue_name, settings.poison_queue_name):
        checks.append(
            Check(f"queue {queue}", lambda queue=queue: judge_queue(queue, *probe_queue(env, queue, timeout)))
        )
    lock = lock_container_name(env)
    checks.append(Check(f"lock container {lock}", lambda: check_lock_container(env, lock, timeout)))
    checks.append(Check(CHECK_NAME, lambda: check_heartbeat(env, timeout)))
    checks.append(Check("logs ingestion", lambda: judge_logs(probe_logs(env, timeout))))
    for adapter in adapters_to_check(env):
        checks.append(Check(f"ca {adapter}", lambda adapter=adapter: check_ca(adapter, env, timeout)))
    checks.extend(bundle_checks(env))
    checks.extend(deployment_checks(env, timeout))  # the Function App itself, when its id is known
    return checks


# What the checks import lazily; imported once before the threads start, since threads that import the same
# packages for the first time at once can trip over the import locks (an ImportError "deadlock detected").
CHECK_MODULES = (
    "requests",
    "cryptography.x509",
    "azure.core.rest",
    "azure.identity",
    "azure.mgmt.core",
    "azure.keyvault.certificates",
    "azure.storage.queue",
    "azure.storage.blob",
    "azure.monitor.ingestion",
    "renewal.clients",
    "ingestion.upload",
)


def preload(modules: tuple[str, ...] = CHECK_MODULES) -> None:
    """Import what the checks need; a module that is missing is left to fail inside its own check."""
    for module in modules:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)


def run_checks(checks: list[Check], deadline_seconds: float) -> list[CheckResult]:
    """Every check in its own daemon thread; one still running at the deadline is reported, never waited on."""
    preload()
    results: dict[int, CheckResult] = {}

    def worker(index: int, check: Check) -> None:
        started = time.monotonic()
        try:
            result = check.run()
        except Exception as exc:  # a bug in a check must not hide the other checks' lines
            result = failed(check.name, f"the check itself failed: {type(exc).__name__}: {exc}", "report this bug")
        results[index] = replace(result, seconds=time.monotonic() - started)

    threads = [
        threading.Thread(target=worker, args=(i, c), name=f"certlc-doctor-{c.name}", daemon=True)
        for i, c in enumerate(checks)
    ]
    for thread in threads:
        thread.start()
    end = time.monotonic() + deadline_seconds
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
    return [
        results.get(i)
        or replace(
            failed(c.name, f"no answer within {deadline_seconds:g} s", "check the network path to it"),
            seconds=deadline_seconds,
        )
        for i, c in enumerate(checks)
    ]


def guard_seconds(timeout: float) -> float:
    """The deadline for a whole check: a few calls of ``timeout`` each (the vault check makes three)."""
    return 4 * timeout + 2
