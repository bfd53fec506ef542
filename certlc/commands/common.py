"""What every command that reaches a service shares: a deadline, one line when something does not answer,
the runtime built and its settings checked before any work, and a dry run that changes nothing.

The Azure storage SDK retries a refused connection for about 80 s before it gives up, so before a command
builds its clients every endpoint the settings name (the queues, the lock container, the vaults, the
emulated clock) is dialled once with a short deadline. Nothing is sent: a TCP connection is opened and
closed. An endpoint reached through a proxy is left to the SDK.
"""

from __future__ import annotations

import logging
import socket
import sys
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

REACH_TIMEOUT_SECONDS = 3.0
LOCAL_STACK_HINT = "run certlc local up"


class Unreachable(Exception):
    """A service the command needs does not answer; one line, exit code 1."""


@dataclass(frozen=True)
class Endpoint:
    what: str  # "the renewal queue", "vault kv1"...
    url: str
    setting: str  # the app setting that names it


def storage_endpoints(env: Mapping[str, str], settings: Any) -> list[Endpoint]:
    """The queues' and the lock container's endpoints, from the same client builders the runtime uses."""
    from renewal.clients import QUEUE_CONNECTION_DEFAULT, blob_container_client, queue_client
    from renewal.errors import ConfigError
    from renewal.ledger import CONTAINER_DEFAULT

    connection = env.get("CERTLC_QUEUE_CONNECTION", QUEUE_CONNECTION_DEFAULT)
    found = [
        Endpoint("the renewal queue", _storage_url(queue_client, env, settings.queue_name, connection), connection)
    ]
    try:
        container = env.get("CERTLC_LOCK_CONTAINER") or CONTAINER_DEFAULT
        url = _storage_url(blob_container_client, env, container, connection)
        found.append(Endpoint("the renewal lock container", url, connection))
    except ConfigError:  # no blob connection: building the runtime says so
        pass
    return found


def _storage_url(client: Callable[..., Any], env: Mapping[str, str], name: str, connection: str) -> str:
    """The client's URL. The storage SDK checks the connection string with a plain ValueError (malformed, or
    endpoints without a key or SAS): a setting to fix, so a ``ConfigError`` naming it, never a traceback."""
    from renewal.errors import ConfigError

    try:
        return client(env, name).url
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(
            f"{connection} cannot be used: {str(exc).rstrip('.')}; set the storage account's connection string "
            "(with AccountKey or SharedAccessSignature), or UseDevelopmentStorage=true for the local stack"
        ) from None


def service_endpoints(env: Mapping[str, str], settings: Any) -> list[Endpoint]:
    """Everything a renewal talks to except the CA: storage, every vault, the local stack's clock."""
    found = storage_endpoints(env, settings)
    found += [Endpoint(f"vault {v.name}", v.url, "CERTLC_VAULTS") for v in settings.vaults.values()]
    if env.get("CERTLC_CLOCK_URL"):
        found.append(Endpoint("the clock", env["CERTLC_CLOCK_URL"], "CERTLC_CLOCK_URL"))
    return found


def _dial(endpoint: Endpoint, timeout: float) -> str | None:
    """Why ``endpoint`` cannot be reached, or None when a TCP connection opens (or a proxy is in the way)."""
    parts = urlsplit(endpoint.url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return f"{endpoint.url} has no valid port"
    if parts.scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(host):
        return None
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except ConnectionRefusedError:
        return "connection refused"
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except socket.gaierror:
        return f"{host} does not resolve"
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def require_reachable(endpoints: list[Endpoint], timeout: float = REACH_TIMEOUT_SECONDS) -> None:
    """Dial every endpoint at once; the first that does not answer becomes one ``Unreachable`` line."""
    from renewal.clients import is_loopback_url

    if not endpoints:
        return
    with ThreadPoolExecutor(max_workers=len(endpoints)) as pool:
        answers = list(pool.map(lambda e: _dial(e, timeout), endpoints))
    for endpoint, why in zip(endpoints, answers, strict=True):
        if why:
            parts = urlsplit(endpoint.url)
            where = f"{parts.scheme}://{parts.netloc}"
            hint = (
                f"is the local stack running? {LOCAL_STACK_HINT}"
                if is_loopback_url(endpoint.url)
                else f"check {endpoint.setting} and the network"
            )
            raise Unreachable(f"cannot reach {endpoint.what} at {where} ({why}): {hint}")


SDK_LOGGERS = ("azure", "urllib3")  # the SDKs log every HTTP request and its headers at INFO
DETAILED = "%(asctime)s %(levelname)s %(name)s %(message)s"


class OneLine(logging.Formatter):
    """A record as one ``certlc:`` line, never a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        lines = record.getMessage().strip().splitlines()
        return f"certlc: {lines[0] if lines else record.levelname.lower()}"


def command_logging(*, one_shot: bool, verbose: bool = False, debug: bool = False) -> None:
    """Quiet by default: a command that prints its own outcome (``one_shot``) logs errors only, one line each on
    stderr (the warnings the library code logs on the way, a vault skipped..., would only say it twice); the
    long-running ones (``dev``, ``worker``) set up their own lines. ``verbose``: also certlc's INFO lines;
    ``debug``: everything at DEBUG, the SDKs' HTTP requests and headers included, with tracebacks."""
    root = logging.getLogger()
    if (one_shot or verbose or debug) and not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(OneLine() if one_shot and not debug else logging.Formatter(DETAILED))
        root.addHandler(handler)
        root.setLevel(logging.DEBUG if debug else logging.ERROR if one_shot else logging.INFO)
    if verbose or debug:
        logging.getLogger("certlc").setLevel(logging.DEBUG if debug else logging.INFO)
    sdk_logging(debug=debug, floor=logging.ERROR if one_shot else logging.WARNING)


def sdk_logging(*, debug: bool = False, floor: int = logging.WARNING) -> None:
    """The SDKs' loggers at ``floor`` (their warnings and errors still show), or at DEBUG with ``--debug``: an idle
    host would otherwise print hundreds of request lines a minute and drown the functions' own."""
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else floor)


def checked_runtime(
    env: Mapping[str, str],
    *,
    dry_run: bool = False,
    storage_only: bool = False,
    timeout: float = REACH_TIMEOUT_SECONDS,
) -> Any:
    """The runtime, built once every setting parses and every service answers, with the default CA adapter built.

    ``ConfigError`` (exit 2) for a setting that cannot work, ``Unreachable`` (exit 1) for a service that
    does not answer. ``storage_only``: only the queues and the lock container are dialled (``certlc failed``)."""
    from renewal.clock import clock_from_env
    from renewal.ledger import ledger_from_env
    from renewal.runtime import build_runtime
    from renewal.settings import settings_from_env

    settings = settings_from_env(env)  # ConfigErrors before any network: none of these dials anything
    clock_from_env(env)
    endpoints = storage_endpoints(env, settings) if storage_only else service_endpoints(env, settings)
    if not dry_run:
        ledger_from_env(env)
    require_reachable(endpoints, timeout)
    runtime = build_runtime(env, dry_run=dry_run)
    runtime.workflow.ca_for(runtime.settings.window.default_ca)  # CaConfigError (a ConfigError): unknown adapter
    if dry_run:
        runtime.workflow = dry_run_workflow(runtime.workflow)
    return runtime


# -- a dry run that changes nothing -----------------------------------------------------------------------------


class _NoRetries:
    def send(self, request: Any, delay_seconds: int = 0) -> None:
        pass


class _NoFailedStore:
    def add(self, *args: Any, **kwargs: Any) -> None:
        pass


class _NoReports:
    def audit(self, *args: Any, **kwargs: Any) -> None:
        pass

    def renewed(self, *args: Any, **kwargs: Any) -> None:
        pass

    def failed(self, *args: Any, **kwargs: Any) -> None:
        pass


class ReadOnlyKeyVault:
    """A ``KeyVault`` whose reads go to the vault and whose writes (new version, merge, tags, pending
    deletes) do nothing."""

    WRITES = frozenset({"create_pending", "delete_pending", "merge", "update_tags"})

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name in self.WRITES:
            return lambda *args, **kwargs: None
        return getattr(self._inner, name)


def dry_run_workflow(workflow: Any) -> Any:
    """The workflow with every side effect removed: no retry message, no failed-store entry, no audit record
    or notification, no write to a vault. The runtime's dry run already takes no lock (``DryRunLedger``)."""
    keyvault_for = workflow.keyvault_for
    return replace(
        workflow,
        retries=_NoRetries(),
        failed_store=_NoFailedStore(),
        reporter=_NoReports(),
        keyvault_for=lambda vault: ReadOnlyKeyVault(keyvault_for(vault)),
        dry_run=True,
    )


def chosen_vault(vaults: Mapping[str, Any], name: str | None) -> Any:
    """The vault ``--vault`` names; without it, the only one in ``CERTLC_VAULTS``. A usage mistake (exit 2) when
    the name is not configured, or when several are and none was named."""
    from certlc.cli import UserError

    known = ", ".join(v.name for v in vaults.values())
    if name is None:
        if len(vaults) == 1:
            return next(iter(vaults.values()))
        raise UserError(f"name the vault with --vault: CERTLC_VAULTS has several ({known})")
    if name.lower() not in vaults:
        raise UserError(f"vault {name!r} is not in CERTLC_VAULTS ({known})")
    return vaults[name.lower()]
