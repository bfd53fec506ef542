"""Which Azure services serve each Key Vault certificate, found with the official management SDKs.

gather: per subscription, one list per resource type (each page one call):

- Application Gateways: ``application_gateways.list_all`` (1);
- Front Door Standard/Premium: ``profiles.list`` (1), then per Front Door profile ``secrets.list_by_profile`` and
  ``afd_custom_domains.list_by_profile`` (2 per profile; classic CDN profiles are skipped);
- App Service: ``certificates.list`` and ``web_apps.list`` (2: the sites' SNI bindings name certificates by
  thumbprint);
- API Management: ``api_management_service.list`` (1);
- Container Apps: ``managed_environments.list_by_subscription`` and ``container_apps.list_by_subscription`` (2),
  then per environment ``certificates.list`` (1 per environment).

So a subscription costs at most 7 + 2·P + E calls (P Front Door profiles, E Container Apps environments), plus one
per extra page (the sites are listed only when a certificate from Key Vault exists, the apps only when an environment
does: 5 for a subscription with none of these); ``Discovery.calls`` counts what was sent. A request has ``timeout``
seconds to connect and to read, and is not retried.

decide: each reference to a Key Vault secret becomes a ``Target`` under the certificate's key (vault name, certificate
name, both lower case): ``versionless`` when it names no version (or Front Door's ``useLatestVersion``), else
``pinned`` with ``pinned_version``; ``pickup_within`` from ``pickup.PICKUP``; ``resource_id`` the ARM id of what holds
the reference (a gateway's ``sslCertificates/NAME``, a Front Door secret, a Web certificate, an API Management
service's ``hostnameConfigurations/HOST``, a Container Apps environment certificate), which ``rollout`` writes.

Errors never spread: a type the identity may not list, or a subscription that fails, becomes a ``Problem`` for that
(subscription, type), naming the role that would let it read, and the rest goes on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from renewal.errors import ConfigError
from renewal.targets.azure.pickup import pickup_within
from renewal.targets.model import Target
from renewal.vaults import Vault

ARM_ENDPOINT = "https://management.azure.com"
SUBSCRIPTIONS_SETTING = "CERTLC_TARGET_SUBSCRIPTIONS"
ENDPOINT_SETTING = "CERTLC_TARGET_ARM_ENDPOINT"
CA_BUNDLE_SETTING = "CERTLC_TARGET_ARM_CA_BUNDLE"
CONNECT_SETTING = "CERTLC_TARGET_CONNECT"
TIMEOUT_DEFAULT = 30.0
READ_ROLE = "Reader"
KEYVAULT_SUFFIXES = ("vault.azure.net", "vault.azure.cn", "vault.usgovcloudapi.net", "vault.microsoftazure.de")
FRONT_DOOR_SKUS = ("standard_azurefrontdoor", "premium_azurefrontdoor")
_SUBSCRIPTION = re.compile(r"^[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$")  # a subscription id is a GUID
_SECRET_PATH = re.compile(r"^/secrets/(?P<name>[0-9A-Za-z-]{1,127})(?:/(?P<version>[0-9A-Za-z]{1,64}))?/?$")
_SECRET_ID = re.compile(
    r"/providers/Microsoft\.KeyVault/vaults/(?P<vault>[^/]+)/secrets/(?P<name>[^/]+)/?$", re.IGNORECASE
)
_VAULT_ID = re.compile(r"/providers/Microsoft\.KeyVault/vaults/(?P<vault>[^/]+)/?$", re.IGNORECASE)

Key = tuple[str, str]  # (vault name, certificate name), lower case


class TargetConfigError(ConfigError):
    """A target discovery setting cannot be used as written."""


@dataclass(frozen=True)
class Problem:
    """A (subscription, resource type) that could not be read, and why."""

    subscription: str
    resource_type: str
    message: str


@dataclass(frozen=True)
class Discovery:
    targets: Mapping[Key, tuple[Target, ...]] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()
    calls: int = 0

    def of(self, vault: str, name: str) -> tuple[Target, ...]:
        return self.targets.get((vault.lower(), name.lower()), ())


@dataclass(frozen=True)
class Reference:
    """A Key Vault secret a service names: the certificate's key and the version (empty: versionless)."""

    vault: str
    name: str
    version: str = ""

    @property
    def key(self) -> Key:
        return self.vault.lower(), self.name.lower()


@dataclass(frozen=True)
class TargetSettings:
    subscriptions: tuple[str, ...]
    endpoint: str = ARM_ENDPOINT
    ca_bundle: str | None = None
    connect: tuple[str, int] | None = None  # where every discovered target is probed (the local stack's TLS front)


def settings_from_env(env: Mapping[str, str]) -> TargetSettings:
    """``CERTLC_TARGET_SUBSCRIPTIONS`` (comma-separated; none: no discovery), ``CERTLC_TARGET_ARM_ENDPOINT`` (default
    Azure's public ARM), ``CERTLC_TARGET_ARM_CA_BUNDLE`` (a local emulator's CA) and ``CERTLC_TARGET_CONNECT``
    (``host:port`` on loopback where every discovered target is probed instead of its host names' addresses: the
    local stack's TLS front, which serves them all by SNI)."""
    from renewal.trust import ca_bundle

    subscriptions = tuple(s.strip() for s in re.split(r"[,\s;]+", env.get(SUBSCRIPTIONS_SETTING, "")) if s.strip())
    for subscription in subscriptions:
        if not _SUBSCRIPTION.match(subscription):
            raise TargetConfigError(f"{SUBSCRIPTIONS_SETTING}: {subscription!r} is not a subscription id")
    endpoint = (env.get(ENDPOINT_SETTING) or ARM_ENDPOINT).strip().rstrip("/")
    parts = urlsplit(endpoint)
    if parts.scheme != "https" or not parts.hostname or parts.path:
        raise TargetConfigError(f"{ENDPOINT_SETTING}={endpoint!r} must be https://host[:port] with no path")
    return TargetSettings(subscriptions, endpoint, ca_bundle(env, CA_BUNDLE_SETTING, TargetConfigError), _connect(env))


def _connect(env: Mapping[str, str]) -> tuple[str, int] | None:
    import ipaddress

    value = (env.get(CONNECT_SETTING) or "").strip()
    if not value:
        return None
    host, _, port = value.rpartition(":")
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
        number = int(port)
    except ValueError:
        loopback, number = False, 0
    if not loopback or not 0 < number < 65536:
        raise TargetConfigError(
            f"{CONNECT_SETTING}={value!r} must be a loopback address and port (127.0.0.1:8443): it sends every "
            "discovered target's probe to one local front, which only an emulator is"
        )
    return host.strip("[]"), number


def discover_from_env(env: Mapping[str, str], vaults: Mapping[str, Vault], *, timeout: float) -> Discovery | None:
    """Discovery as the app settings say, with the managed identity (or the local token for an emulator on loopback);
    None when no subscription is set."""
    from renewal.clients import credential_for

    settings = settings_from_env(env)
    if not settings.subscriptions:
        return None
    credential = credential_for(settings.endpoint, env)
    found = discover(
        settings.subscriptions,
        credential,
        base_url=settings.endpoint,
        timeout=timeout,
        vaults=vaults,
        connection_verify=settings.ca_bundle,
    )
    if settings.connect is None:
        return found
    host, port = settings.connect
    moved = {key: tuple(replace(t, connect=host, port=port) for t in items) for key, items in found.targets.items()}
    return replace(found, targets=moved)


def client_options(base_url: str | None, timeout: float, connection_verify: str | None, **extra: Any) -> dict[str, Any]:
    """What every management SDK client here is built with: the ARM endpoint and its token scope, a deadline on each
    call and no retries (the next sweep is the retry), and the CA of a local emulator."""
    endpoint = (base_url or ARM_ENDPOINT).rstrip("/")
    options: dict[str, Any] = {
        "base_url": endpoint,
        "credential_scopes": [f"{endpoint}/.default"],
        "connection_timeout": timeout,
        "read_timeout": timeout,
        "retry_total": 0,
        **extra,
    }
    if connection_verify:
        options["connection_verify"] = connection_verify
    return options


def parse_reference(value: str, vaults: Mapping[str, Vault] | None = None) -> Reference | None:
    """A Key Vault secret URL (``https://{vault}.vault.azure.net/secrets/{name}[/{version}]``, or a URL of a vault on
    the allow-list such as the local emulator's) or a Key Vault secret's resource id; None for anything else."""
    value = (value or "").strip()
    if value.startswith("/"):
        match = _SECRET_ID.search(value)
        return Reference(match["vault"], match["name"]) if match else None
    parts = urlsplit(value)
    path = _SECRET_PATH.match(parts.path or "")
    if parts.scheme != "https" or not parts.hostname or path is None:
        return None
    host = parts.hostname.lower()
    origin = f"https://{parts.netloc}".lower()
    vault = next((v.name for v in (vaults or {}).values() if v.url.rstrip("/").lower() == origin), None)
    if vault is None:
        label, _, suffix = host.partition(".")
        if suffix not in KEYVAULT_SUFFIXES:
            return None
        vault = label
    return Reference(vault, path["name"], path["version"] or "")


def discover(
    subscriptions: Sequence[str],
    credential: Any,
    *,
    base_url: str | None = None,
    timeout: float = TIMEOUT_DEFAULT,
    vaults: Mapping[str, Vault] | None = None,
    connection_verify: str | None = None,
) -> Discovery:
    """Every service in ``subscriptions`` that references a Key Vault certificate; see the module for the cost."""
    counter = [0]

    def count(_request: Any) -> None:
        counter[0] += 1

    options = client_options(base_url, timeout, connection_verify, raw_request_hook=count)
    found: dict[Key, list[Target]] = {}
    problems: list[Problem] = []
    for subscription in subscriptions:
        for type_name, finder in FINDERS:
            try:
                for key, target in finder(subscription, credential, options, vaults or {}):
                    found.setdefault(key, []).append(target)
            except Exception as exc:  # one type or subscription never stops the others
                problems.append(Problem(subscription, type_name, _problem(subscription, type_name, exc)))
    targets = {key: tuple(sorted(items, key=lambda t: (t.kind, t.name))) for key, items in found.items()}
    return Discovery(targets, tuple(problems), counter[0])


def _problem(subscription: str, type_name: str, exc: Exception) -> str:
    from azure.core.exceptions import AzureError, HttpResponseError

    if isinstance(exc, HttpResponseError):
        error = getattr(exc, "error", None)
        code = getattr(error, "code", None) or ""
        if exc.status_code == 403 or code == "AuthorizationFailed":
            return (
                f"the identity may not list {type_name} in subscription {subscription} (HTTP 403 {code}): grant it "
                f"{READ_ROLE} on the subscription, or a role with {type_name}/read"
            )
        if exc.status_code == 401:
            return f"ARM refused the identity's token for subscription {subscription} (HTTP 401 {code})"
        if code in ("SubscriptionNotFound", "InvalidSubscriptionId"):
            return (
                f"subscription {subscription} was not found, or the identity has no role in it (HTTP "
                f"{exc.status_code} {code}): grant it {READ_ROLE} on the subscription"
            )
        return f"listing {type_name} in subscription {subscription} failed: HTTP {exc.status_code} {code}".rstrip()
    if isinstance(exc, AzureError):
        return f"listing {type_name} in subscription {subscription} failed: {type(exc).__name__}: {exc}"[:300]
    return f"listing {type_name} in subscription {subscription} failed: {type(exc).__name__}: {exc}"[:300]


def _target(
    kind: Any, name: str, hosts: Iterable[str], reference: Reference, resource_id: str, port: int = 443
) -> tuple[Key, Target]:
    unique = tuple(dict.fromkeys(h.lower().rstrip(".") for h in hosts if h))
    target = Target(
        kind=kind,
        name=name,
        hosts=unique,
        port=port,
        pickup="pinned" if reference.version else "versionless",
        pinned_version=reference.version or None,
        pickup_within=pickup_within(kind),
        resource_id=resource_id,
        source="discovered",
    )
    return reference.key, target


def _name_of(resource_id: str) -> str:
    return resource_id.rstrip("/").split("/")[-1]


def _parent_id(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 2)[0]


def _group_of(resource_id: str) -> str:
    return resource_id.split("/")[4]


def _app_gateways(subscription: str, credential: Any, options: dict[str, Any], vaults: Mapping[str, Vault]):
    from azure.mgmt.network import NetworkManagementClient

    with NetworkManagementClient(credential, subscription, **options) as client:
        for gateway in client.application_gateways.list_all():
            ports = {(p.id or "").lower(): p.port or 443 for p in gateway.frontend_ports or ()}
            listeners: dict[str, list[Any]] = {}
            for listener in gateway.http_listeners or ():
                if listener.ssl_certificate is not None and listener.ssl_certificate.id:
                    listeners.setdefault(listener.ssl_certificate.id.lower(), []).append(listener)
            for certificate in gateway.ssl_certificates or ():
                reference = parse_reference(certificate.key_vault_secret_id or "", vaults)
                certificate_id = certificate.id or f"{gateway.id}/sslCertificates/{certificate.name}"
                using = listeners.get(certificate_id.lower(), [])
                if reference is None or not using:
                    continue
                hosts = [h for listener in using for h in (listener.host_names or [listener.host_name])]
                name = f"{gateway.name}/{'+'.join(listener.name for listener in using)}"
                port = ports.get(((using[0].frontend_port.id if using[0].frontend_port else "") or "").lower(), 443)
                yield _target("app_gateway", name, [h for h in hosts if h], reference, certificate_id, port)


def _front_doors(subscription: str, credential: Any, options: dict[str, Any], vaults: Mapping[str, Vault]):
    from azure.mgmt.cdn import CdnManagementClient

    with CdnManagementClient(credential, subscription, **options) as client:
        for profile in client.profiles.list():
            if (profile.sku.name or "").lower() not in FRONT_DOOR_SKUS:
                continue
            group = _group_of(profile.id)
            secrets = {secret.id.lower(): secret for secret in client.secrets.list_by_profile(group, profile.name)}
            domains: dict[str, list[Any]] = {}
            for domain in client.afd_custom_domains.list_by_profile(group, profile.name):
                secret = domain.tls_settings.secret if domain.tls_settings is not None else None
                if secret is not None and secret.id:
                    domains.setdefault(secret.id.lower(), []).append(domain)
            for secret_id, secret in secrets.items():
                parameters = secret.parameters
                if getattr(parameters, "type", None) != "CustomerCertificate" or secret_id not in domains:
                    continue
                source = parse_reference(parameters.secret_source.id if parameters.secret_source else "", vaults)
                if source is None:
                    continue
                version = "" if parameters.use_latest_version else (parameters.secret_version or "")
                using = domains[secret_id]
                name = f"{profile.name}/{'+'.join(domain.name for domain in using)}"
                reference = Reference(source.vault, source.name, version)
                yield _target("front_door", name, [d.host_name for d in using], reference, secret.id)


def _app_services(subscription: str, credential: Any, options: dict[str, Any], vaults: Mapping[str, Vault]):
    from azure.mgmt.web import WebSiteManagementClient

    with WebSiteManagementClient(credential, subscription, **options) as client:
        certificates = [c for c in client.certificates.list() if c.key_vault_id and c.key_vault_secret_name]
        if not certificates:
            return
        bound: dict[str, list[str]] = {}
        for site in client.web_apps.list():
            for state in site.host_name_ssl_states or ():
                if state.thumbprint and (state.ssl_state or "Disabled") != "Disabled":
                    bound.setdefault(state.thumbprint.upper(), []).append(state.name)
        for certificate in certificates:
            vault = _VAULT_ID.search(certificate.key_vault_id)
            hosts = bound.get((certificate.thumbprint or "").upper(), [])
            if vault is None or not hosts:
                continue
            reference = Reference(vault["vault"], certificate.key_vault_secret_name)  # always the newest version
            yield _target("app_service", certificate.name, hosts, reference, certificate.id)


def _api_managements(subscription: str, credential: Any, options: dict[str, Any], vaults: Mapping[str, Vault]):
    from azure.mgmt.apimanagement import ApiManagementClient

    with ApiManagementClient(credential, subscription, **options) as client:
        for service in client.api_management_service.list():
            for configuration in service.hostname_configurations or ():
                reference = parse_reference(configuration.key_vault_id or "", vaults)
                if reference is None:
                    continue
                resource_id = f"{service.id}/hostnameConfigurations/{configuration.host_name}"
                name = f"{service.name}/{configuration.host_name}"
                yield _target("api_management", name, [configuration.host_name], reference, resource_id)


def _container_apps(subscription: str, credential: Any, options: dict[str, Any], vaults: Mapping[str, Vault]):
    from azure.mgmt.appcontainers import ContainerAppsAPIClient

    with ContainerAppsAPIClient(credential, subscription, **options) as client:
        environments = list(client.managed_environments.list_by_subscription())
        if not environments:
            return
        bound: dict[str, list[str]] = {}
        for app in client.container_apps.list_by_subscription():
            ingress = app.configuration.ingress if app.configuration is not None else None
            for domain in (ingress.custom_domains if ingress is not None else None) or ():
                if domain.certificate_id and (domain.binding_type or "SniEnabled") != "Disabled":
                    bound.setdefault(domain.certificate_id.lower(), []).append(domain.name)
        for environment in environments:
            for certificate in client.certificates.list(_group_of(environment.id), environment.name):
                properties = certificate.properties
                vault_properties = properties.certificate_key_vault_properties if properties is not None else None
                reference = parse_reference(vault_properties.key_vault_url if vault_properties else "", vaults)
                hosts = bound.get(certificate.id.lower(), [])
                if reference is None or not hosts:
                    continue
                name = f"{environment.name}/{certificate.name}"
                yield _target("container_apps", name, hosts, reference, certificate.id)


Finder = Callable[[str, Any, dict[str, Any], Mapping[str, Vault]], Iterable[tuple[Key, Target]]]
FINDERS: tuple[tuple[str, Finder], ...] = (
    ("Microsoft.Network/applicationGateways", _app_gateways),
    ("Microsoft.Cdn/profiles", _front_doors),
    ("Microsoft.Web/certificates", _app_services),
    ("Microsoft.ApiManagement/service", _api_managements),
    ("Microsoft.App/managedEnvironments", _container_apps),
)
