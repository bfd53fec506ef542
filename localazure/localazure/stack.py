"""The whole local stack: Azurite, the Key Vault, Logs Ingestion and App Service emulators, the local CA and a
Functions host running function_app.py, wired together the way Azure wires the real ones.

``LocalStack`` runs in the calling process (the demo and tests use it directly); ``certlc local``
(``certlc/commands/local.py``) runs one in a background process. A library: nothing here imports certlc's command
line (``tests/localazure/test_layering.py``).
"""

from __future__ import annotations

import datetime
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from certlc.stack_files import DEFAULT_DIR, REPO_ROOT
from renewal.atomic import write_atomically
from renewal.eventgrid.schema import CERTIFICATE_EXPIRED, CERTIFICATE_NEAR_EXPIRY, EVENT_GRID_SCHEMA

QUEUE_NAME = "certlc-renewals"
# The stack's Function App as the App Service emulator serves it, so certlc doctor checks the app as in Azure.
LOCAL_APP = ("00000000-0000-0000-0000-000000000000", "rg-certlc-local", "certlc-local")


class LocalStack:
    def __init__(
        self,
        directory: Path = DEFAULT_DIR,
        *,
        vaults: Sequence[str] = ("kv1",),
        extra_settings: Mapping[str, str] | None = None,
        schedule_timers: bool = False,
        max_polling_interval: float = 0.5,
        pending_version: str = "placeholder",
    ) -> None:
        self.directory = Path(directory).resolve()
        self.pending_version = pending_version  # the Key Vault emulator's pending-version mode
        self.vault_names = tuple(vaults)
        self.extra_settings = dict(extra_settings or {})
        self.schedule_timers = schedule_timers
        self.max_polling_interval = max_polling_interval
        self._started: list[Any] = []
        self._saved_env: dict[str, str] | None = None
        self.settings: dict[str, str] = {}

    def start(self) -> LocalStack:
        from certlc.host.host import FunctionsHost, load_app
        from localazure.ca_publisher import CaPublisher
        from localazure.emulators import keyvault, logs
        from localazure.emulators.appservice import AppServiceEmulator
        from localazure.emulators.consumers import ConsumersEmulator
        from localazure.emulators.keyvault.control import EmulatorControl
        from localazure.servers import start_azurite
        from renewal.ca.local import LocalCA

        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self.azurite = self._keep(start_azurite(self.directory / "azurite"))
            self.keyvault = self._keep(
                keyvault.start(
                    self.directory / "keyvault", vaults=self.vault_names, pending_version=self.pending_version
                )
            )
            self.control = EmulatorControl(self.keyvault.admin_url, self.keyvault.ca_bundle)
            self.logs = self._keep(logs.start(self.directory, REPO_ROOT / "infra" / "monitoring.json"))
            self.appservice = self._keep(
                AppServiceEmulator(
                    self.directory / "appservice",
                    vaults=self.keyvault.vault_urls,
                    keyvault_ca_bundle=self.keyvault.ca_bundle,
                )
            )
            self.app = self.appservice.add_app(*LOCAL_APP)
            self.consumers = self._keep(
                ConsumersEmulator(
                    self.directory / "consumers",
                    vaults=self.keyvault.vault_urls,
                    keyvault_ca_bundle=self.keyvault.ca_bundle,
                )
            )
            self.consumers.add_subscription(LOCAL_APP[0])  # the services certlc discovers live beside the app
            LocalCA(self.directory / "ca", create=True)  # the functions refuse a folder without a CA
            self.ca_publisher = self._keep(CaPublisher(LocalCA(self.directory / "ca", clock=self.now)))
            self.settings = self._app_settings()
            self.app.settings = dict(self.settings)  # what the app's Key Vault references are read from
            self.appservice.publish(self.app, REPO_ROOT)  # the code the host below runs
            self.settings_path = self._write_settings()
            self._saved_env = dict(os.environ)
            os.environ.update(self.settings)  # the functions read app settings from the environment
            from renewal import handlers

            handlers.reset_runtime()
            self.host = FunctionsHost(
                load_app(REPO_ROOT),
                self.settings,
                REPO_ROOT / "host.json",
                port=0,
                schedule_timers=self.schedule_timers,
                max_polling_interval=self.max_polling_interval,
            )
            self._keep(self.host.start())
            self._create_deployed_queues()
            self.subscribe_events()
        except BaseException:
            self.stop()
            raise
        return self

    def _create_deployed_queues(self) -> None:
        """The queues infra/main.json creates: the host makes its trigger's and the poison queue only, and the
        failed store would be missing until the first permanent failure (``certlc doctor`` rightly says so)."""
        from renewal.clients import queue_client
        from renewal.queue import ensure_queue
        from renewal.settings import settings_from_env

        settings = settings_from_env(self.settings)
        for name in (settings.queue_name, settings.failed_queue_name, settings.poison_queue_name):
            ensure_queue(queue_client(self.settings, name))

    def subscribe_events(self, schema: str = EVENT_GRID_SCHEMA) -> None:
        """Point Key Vault's Event Grid at the host's webhook, as an Event Grid subscription does."""
        self.control.subscribe(self.host.eventgrid_url("event"), schema, [CERTIFICATE_NEAR_EXPIRY, CERTIFICATE_EXPIRED])

    def certificate_client(self, vault: str | None = None) -> Any:
        """An SDK client for one of the stack's vaults, as an operator's script would make it."""
        url = self.keyvault.vault_urls[vault or self.vault_names[0]]
        return certificate_client(url, self.keyvault.token, self.keyvault.ca_bundle)

    def now(self) -> datetime.datetime:
        """Key Vault's (emulated) time, which the functions share through CERTLC_CLOCK_URL."""
        return emulated_now(self.control)

    def settle(self, timeout: float = 120.0) -> int:
        """Wait until Event Grid has delivered everything and the queue is drained; messages processed."""
        self.control.flush_events(timeout=30)
        return self.host.drain(timeout=timeout)

    def stop(self) -> None:
        """Stop everything started, newest first, and give the process its environment back. The renewal history
        this process buffered goes to the Logs emulator first, while it still answers."""
        from renewal.audit import flush_sinks

        flush_sinks()
        while self._started:
            part = self._started.pop()
            try:
                part.stop()
            except Exception as exc:  # keep stopping the rest
                print(f"certlc: stopping {type(part).__name__} failed: {exc}", file=sys.stderr)
        if self._saved_env is not None:
            os.environ.clear()
            os.environ.update(self._saved_env)
            self._saved_env = None
            from renewal import handlers

            handlers.reset_runtime()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def info(self) -> dict[str, Any]:
        return {
            "keyvault_url": self.keyvault.url,
            "keyvault_vaults": self.keyvault.vault_urls,
            "keyvault_admin_url": self.keyvault.admin_url,
            "keyvault_token": self.keyvault.token,
            "ca_bundle": self.keyvault.ca_bundle,
            "queue_connection_string": self.azurite.connection_string,
            "queue_name": QUEUE_NAME,
            "eventgrid_url": self.host.eventgrid_url("event"),
            "logs_endpoint": self.logs.endpoint,
            "local_ca": str(self.directory / "ca" / "ca.pem"),
            "settings_file": str(self.settings_path),
        }

    def _keep(self, part: Any) -> Any:
        self._started.append(part)
        return part

    def _app_settings(self) -> dict[str, str]:
        vaults = ",".join(f"{name}={url}" for name, url in self.keyvault.vault_urls.items())
        settings = {
            "AzureWebJobsStorage": self.azurite.connection_string,
            "CertlcStorage": self.azurite.connection_string,
            "CERTLC_QUEUE_NAME": QUEUE_NAME,
            "CERTLC_VAULTS": vaults,
            "CERTLC_KEYVAULT_CA_BUNDLE": self.keyvault.ca_bundle,
            "CERTLC_LOCAL_TOKEN": self.keyvault.token,
            "CERTLC_CLOCK_URL": f"{self.keyvault.admin_url}/clock",
            "CERTLC_CA": "local",
            "CERTLC_CA_PROFILE": "server",
            "CERTLC_LOCAL_CA_DIR": str(self.directory / "ca"),
            "CERTLC_LOCAL_CA_CRL_URL": self.ca_publisher.crl_url,
            "CERTLC_SWEEP_SCHEDULE": "0 0 * * * *",
            "CERTLC_INGEST_SCHEDULE": "0 30 * * * *",
            "CERTLC_AUDIT_FILE": str(self.directory / "audit.jsonl"),
            "CERTLC_INGEST_CACHE": str(self.directory / "ingest-cache.json"),
            **self.logs.settings(),
            "CERTLC_FUNCTION_APP_ID": self.app.arm_id,
            "CERTLC_ARM_ENDPOINT": self.appservice.url,
            "CERTLC_ARM_CA_BUNDLE": str(self.appservice.ca_bundle),
            "CERTLC_TARGET_SUBSCRIPTIONS": LOCAL_APP[0],
            "CERTLC_TARGET_ARM_ENDPOINT": self.consumers.url,
            "CERTLC_TARGET_ARM_CA_BUNDLE": str(self.consumers.ca_bundle),
            "CERTLC_TARGET_CONNECT": "{}:{}".format(*self.consumers.tls_address),
        }
        return settings | self.extra_settings

    def _write_settings(self) -> Path:
        path = self.directory / "local.settings.json"
        body = {"IsEncrypted": False, "Values": self.settings}
        write_atomically(path, json.dumps(body, indent=2))
        return path


def emulated_now(control: Any) -> datetime.datetime:
    """The Key Vault emulator's clock, read through its control API."""
    return datetime.datetime.fromisoformat(control.now().replace("Z", "+00:00"))


def certificate_client(url: str, token: str, ca_bundle: str) -> Any:
    """An SDK client for an emulated vault: the emulator's token and its own CA, with the renewal's client options."""
    from renewal.clients import certificate_client as keyvault_certificate_client

    return keyvault_certificate_client(url, {"CERTLC_LOCAL_TOKEN": token, "CERTLC_KEYVAULT_CA_BUNDLE": ca_bundle})
