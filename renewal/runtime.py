"""The composition root: builds the workflow and its adapters from app settings, once per process."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from renewal.ca.base import CaConfigError, CertificateAuthority
from renewal.clients import certificate_client, queue_client
from renewal.clock import Clock, clock_from_env
from renewal.keyvault import KeyVault
from renewal.ledger import DryRunLedger, ledger_from_env
from renewal.queue import FailedStore, RenewalQueue, ensure_queue, lenient_decode_policy
from renewal.setting_values import whole_number_setting
from renewal.settings import Settings, ca_timeout, settings_from_env
from renewal.trust import ca_bundle
from renewal.vaults import Vault
from renewal.workflow import RenewalWorkflow


@dataclass
class Runtime:
    env: Mapping[str, str]
    settings: Settings
    renewals: RenewalQueue
    failed: FailedStore
    workflow: RenewalWorkflow
    reporter: Any
    clock: Clock

    def keyvault(self, vault: Vault) -> KeyVault:
        return self.workflow.keyvault_for(vault)


def build_runtime(
    env: Mapping[str, str],
    *,
    clock: Clock | None = None,
    ca_for: Callable[[str], CertificateAuthority] | None = None,
    dry_run: bool = False,
) -> Runtime:
    from renewal.audit import audit_from_env
    from renewal.events import parse_queue_message
    from renewal.notify import notifier_from_env
    from renewal.pacing.settings import pacer_from_env
    from renewal.pacing.store import Unpaced
    from renewal.reporting import Reporter
    from renewal.revocation.watch import watch_from_env
    from renewal.targets.wiring import check_target_settings

    settings = settings_from_env(env)
    check_target_settings(env)  # a typo there must stop the app now, not silence the target check later
    clock = clock or clock_from_env(env)
    renewals = RenewalQueue(ensure_queue(queue_client(env, settings.queue_name)))
    failed = FailedStore(
        queue_client(env, settings.failed_queue_name, message_decode_policy=lenient_decode_policy()),
        queue_client(env, settings.poison_queue_name, message_decode_policy=lenient_decode_policy()),
        renewals,
        parse_body=lambda text: parse_queue_message(text, settings.vaults),
    )
    pacer = Unpaced() if dry_run else pacer_from_env(env, list(settings.vaults))
    reporter = Reporter(notifier_from_env(env), audit_from_env(env, clock=clock), env, clock)
    clients: dict[str, KeyVault] = {}

    def keyvault_for(vault: Vault) -> KeyVault:
        if vault.name not in clients:
            client = certificate_client(vault.url, env, timeouts=settings.keyvault_timeouts)
            clients[vault.name] = KeyVault(client, vault)
        return clients[vault.name]

    workflow = RenewalWorkflow(
        vaults=settings.vaults,
        keyvault_for=keyvault_for,
        ca_for=ca_for or ca_factory(env, clock, timeout=settings.ca_timeout),
        retries=renewals,
        failed_store=failed,
        reporter=reporter,
        ledger=DryRunLedger() if dry_run else ledger_from_env(env),
        settings=settings.window,
        canary=settings.canary,
        backoff=settings.backoff,
        clock=clock,
        dry_run=dry_run,
        pacer=pacer,
        serving=(lambda vault, name, thumbprint: ()) if dry_run else _serving(env),
    )
    workflow.revocation = watch_from_env(env, workflow.ca_for, clock)
    return Runtime(env, settings, renewals, failed, workflow, reporter, clock)


def _serving(env: Mapping[str, str]) -> Callable[[str, str, str], tuple[str, ...]]:
    """The targets the last target check saw serving a certificate, from its blobs beside the locks."""
    from renewal.ledger import lock_container
    from renewal.targets.store import TargetStore, still_serving

    store = TargetStore(lock_container(env, retry_total=0, connection_timeout=5, read_timeout=10))
    return lambda vault, name, thumbprint: still_serving(store, vault, name, thumbprint)


def ca_factory(
    env: Mapping[str, str], clock: Clock, *, timeout: float | None = None
) -> Callable[[str], CertificateAuthority]:
    """CA adapters by name, built on first use so an unused adapter's settings are never required.

    ``timeout`` (``CERTLC_CA_TIMEOUT``, read from ``env`` when not given) bounds each request to the CA."""
    built: dict[str, CertificateAuthority] = {}
    timeout = ca_timeout(env) if timeout is None else timeout

    def ca_for(name: str) -> CertificateAuthority:
        key = name.strip().lower()
        if key not in built:
            built[key] = _make_ca(key, env, clock, timeout)
        return built[key]

    return ca_for


def _make_ca(name: str, env: Mapping[str, str], clock: Clock, timeout: float) -> CertificateAuthority:
    if name == "local":
        from renewal.ca.local import LocalCA

        return LocalCA(
            Path(env.get("CERTLC_LOCAL_CA_DIR", ".local/ca")),
            clock=clock,
            crl_url=env.get("CERTLC_LOCAL_CA_CRL_URL") or None,
        )
    if name == "cfssl":
        from renewal.ca.cfssl import CfsslAuthority

        return CfsslAuthority(
            _required(env, "CERTLC_CFSSL_URL"),
            ca_bundle=ca_bundle(env, "CERTLC_CFSSL_CA_BUNDLE", CaConfigError),
            timeout=timeout,
        )
    if name == "acme":
        from renewal.ca.acme import AcmeAuthority, account_key_options
        from renewal.hosting import in_azure

        return AcmeAuthority(
            _required(env, "CERTLC_ACME_DIRECTORY"),
            **account_key_options(env.get("CERTLC_ACME_ACCOUNT_KEY", ""), azure=in_azure(env)),
            contact_email=env.get("CERTLC_ACME_EMAIL") or None,
            eab_kid=env.get("CERTLC_ACME_EAB_KID") or None,
            eab_hmac_key=env.get("CERTLC_ACME_EAB_HMAC_KEY") or None,
            ca_bundle=ca_bundle(env, "CERTLC_ACME_CA_BUNDLE", CaConfigError),
            solver=_acme_solver(env, timeout),
            network_timeout=timeout,
        )
    if name == "adcs":
        from renewal.ca.adcs import AdcsAuthority
        from renewal.ca.adcs_templates import template_directory_from_env

        poll_seconds = whole_number_setting(
            env, "CERTLC_ADCS_POLL_SECONDS", 3600, low=1, unit="seconds", error=CaConfigError
        )
        return AdcsAuthority(
            _required(env, "CERTLC_ADCS_SERVER"),
            auth_method=(env.get("CERTLC_ADCS_AUTH") or "ntlm").strip().lower(),
            username=env.get("CERTLC_ADCS_USERNAME") or None,
            password=env.get("CERTLC_ADCS_PASSWORD") or None,
            ca_bundle=ca_bundle(env, "CERTLC_ADCS_CA_BUNDLE", CaConfigError),
            poll_seconds=poll_seconds,
            timeout=timeout,
            templates=template_directory_from_env(env, timeout),
        )
    raise CaConfigError(f"unknown CA adapter {name!r}: use local, cfssl, acme or adcs (CERTLC_CA or tag certlc-ca)")


def _acme_solver(env: Mapping[str, str], timeout: float) -> Any:
    """``CERTLC_ACME_CHALLENGE``: dns-01 through Azure DNS, or http-01 under a web root (without one, none: only a
    pre-authorised account is issued certificates)."""
    challenge = (env.get("CERTLC_ACME_CHALLENGE") or "http-01").strip().lower()
    if challenge == "dns-01":
        from renewal.ca.dns01 import solver_from_env

        return solver_from_env(env, network_timeout=timeout)
    if challenge != "http-01":
        raise CaConfigError(f"CERTLC_ACME_CHALLENGE must be http-01 or dns-01, not {challenge!r}")
    from renewal.ca.acme import Http01FolderSolver

    webroot = env.get("CERTLC_ACME_HTTP01_WEBROOT", "").strip()
    return Http01FolderSolver(Path(webroot)) if webroot else None


def _required(env: Mapping[str, str], key: str) -> str:
    value = env.get(key, "").strip()
    if not value:
        raise CaConfigError(f"{key} is not set")
    return value
