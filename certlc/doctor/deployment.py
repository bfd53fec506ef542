"""The deployed Function App itself, read through Azure Resource Manager once its resource id is known (``--app`` or
``CERTLC_FUNCTION_APP_ID``): is the code published and indexed, and do its Key Vault references resolve?

Why: the template deploys in two passes. Event Grid refuses a subscription to a function the app does not list, so
the second pass (``createEventSubscriptions=true``) can only succeed once ``event`` is indexed; ``app functions``
says when, and what to run until then. A Key Vault reference the platform cannot resolve leaves the reference's text
where the secret should be; ``key vault references`` names each one, its status and the grant it lacks.

gather: ``GET {app}/functions`` (WebApps_ListFunctions) and ``GET {app}/config/configreferences/appsettings``
(WebApps_GetAppSettingsKeyVaultReferences), api-version 2024-04-01, following ``nextLink``, with azure-mgmt-core's
``ARMPipelineClient`` (azure-mgmt-web would add megabytes to the deployed package for two GETs): a deadline on every
call, no retries, and no provider registration (a write). The identity is ``DefaultAzureCredential``, the operator's
``az login``, or the local token for an emulator on loopback (``renewal.clients.credential_for``).
decide: ``judge_functions`` and ``judge_references``; the functions expected are those function_app.py registers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from certlc.doctor.bundles import verify_for
from certlc.doctor.net import answer_from_sdk_error, one_line, sdk_options
from certlc.doctor.result import Answer, CheckResult, failed, passed
from certlc.doctor.run import Check
from renewal.errors import ConfigError

APP_SETTING = "CERTLC_FUNCTION_APP_ID"
ENDPOINT_SETTING = "CERTLC_ARM_ENDPOINT"
CA_BUNDLE_SETTING = "CERTLC_ARM_CA_BUNDLE"
ARM_ENDPOINT = "https://management.azure.com"
API_VERSION = "2024-04-01"
READ_ROLES = "Reader (or Website Contributor)"
SECRETS_ROLE = "Key Vault Secrets User"
EVENT_GRID_TRIGGER = "eventGridTrigger"
RESOLVED = "Resolved"
APP_NOT_FOUND = ("ResourceNotFound", "ResourceGroupNotFound", "SubscriptionNotFound")
MAX_PAGES = 50  # a list that has not ended by then is a service that keeps answering nextLink
_APP_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/\s]+)/resourceGroups/(?P<rg>[^/\s]+)/providers/Microsoft\.Web/sites/(?P<name>[^/\s]+)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class FunctionApp:
    subscription: str
    resource_group: str
    name: str

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Web/sites/{self.name}"
        )


@dataclass(frozen=True)
class Listing:
    """Every item of a pageable list, or the answer that stopped the reading."""

    answer: Answer
    items: tuple[dict[str, Any], ...] = ()
    target: str = ""


def parse_app_id(value: str, source: str = APP_SETTING) -> FunctionApp:
    """The app a resource id names; anything else is a usage mistake that names ``source``."""
    match = _APP_ID.match(value.strip())
    if match is None:
        raise ConfigError(
            f"{source}={value!r} is not a Function App resource id: "
            "/subscriptions/SUBSCRIPTION/resourceGroups/GROUP/providers/Microsoft.Web/sites/NAME "
            "(az functionapp show -g GROUP -n NAME --query id -o tsv)"
        )
    return FunctionApp(match["sub"], match["rg"], match["name"])


def expected_functions() -> dict[str, str]:
    """Function name -> trigger type, indexed from the blueprints function_app.py registers (a server has the
    packages, not function_app.py; a test holds the two together)."""
    import azure.functions as func

    from certlc.host.bindings import functions_of
    from ingestion.blueprint import bp as ingestion_bp
    from renewal.blueprint import bp as renewal_bp

    app = func.FunctionApp()
    app.register_functions(renewal_bp)
    app.register_functions(ingestion_bp)
    return {function.get_function_name(): function.get_trigger().get_binding_name() for function in functions_of(app)}


def deployment_checks(env: Mapping[str, str], timeout: float) -> list[Check]:
    """The app's two checks when ``CERTLC_FUNCTION_APP_ID`` names it; none otherwise."""
    value = (env.get(APP_SETTING) or "").strip()
    if not value:
        return []
    app = parse_app_id(value)
    expected = expected_functions()
    return [
        Check("app functions", lambda: judge_functions(app, expected, read_list(env, f"{app.id}/functions", timeout))),
        Check(
            "key vault references",
            lambda: judge_references(app, read_list(env, f"{app.id}/config/configreferences/appsettings", timeout)),
        ),
    ]


def arm_endpoint(env: Mapping[str, str]) -> str:
    return (env.get(ENDPOINT_SETTING) or ARM_ENDPOINT).strip().rstrip("/")


def arm_client(endpoint: str, env: Mapping[str, str]) -> Any:
    """An ARM pipeline: bearer token for ``endpoint``, no retries, and none of the provider registration that
    azure-mgmt-core adds by default (it POSTs a registration on a 409)."""
    from azure.core.pipeline.policies import RequestIdPolicy, RetryPolicy, UserAgentPolicy
    from azure.mgmt.core import ARMPipelineClient
    from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy, ARMHttpLoggingPolicy

    from renewal.clients import credential_for

    credential = credential_for(endpoint, env)
    policies = [
        RequestIdPolicy(),
        UserAgentPolicy("certlc-doctor"),
        RetryPolicy(retry_total=0),
        ARMChallengeAuthenticationPolicy(credential, f"{endpoint}/.default"),
        ARMHttpLoggingPolicy(),
    ]
    return ARMPipelineClient(endpoint, policies=policies)


def read_list(env: Mapping[str, str], path: str, timeout: float) -> Listing:
    """Every page of the list at ``path``; a nextLink to another host is not followed (it would get the token)."""
    from azure.core.exceptions import AzureError
    from azure.core.rest import HttpRequest

    endpoint = arm_endpoint(env)
    target = f"{endpoint}{path}"
    verify = verify_for(env, CA_BUNDLE_SETTING)
    if isinstance(verify, Answer):
        return Listing(verify, target=target)
    try:
        client = arm_client(endpoint, env)
    except ConfigError as exc:
        return Listing(Answer(code="Config", message=str(exc)), target=target)
    options = {**sdk_options(timeout), "connection_verify": verify}
    items: list[dict[str, Any]] = []
    url = f"{target}?api-version={API_VERSION}"
    with client:
        for _ in range(MAX_PAGES):
            try:
                response = client.send_request(HttpRequest("GET", url), **options)
            except (AzureError, OSError) as exc:
                return Listing(answer_from_sdk_error(exc, timeout), target=target)
            try:
                body = response.json()
            except ValueError:
                body = None
            body = body if isinstance(body, dict) else {}
            if response.status_code != 200:
                error = body.get("error") if isinstance(body.get("error"), dict) else {}
                message = one_line(error.get("message") or response.text() or response.reason or "")
                answer = Answer(response.status_code, str(error.get("code") or ""), message)
                return Listing(answer, target=target)
            items.extend(item for item in body.get("value") or [] if isinstance(item, dict))
            url = str(body.get("nextLink") or "")
            if not url:
                return Listing(Answer(status=200), tuple(items), target)
            if urlsplit(url).netloc.lower() != urlsplit(endpoint).netloc.lower():
                return Listing(Answer(code="Paging", message=f"the next page is on another host: {url}"), target=target)
    return Listing(Answer(code="Paging", message=f"the list did not end after {MAX_PAGES} pages"), target=target)


def judge_functions(app: FunctionApp, expected: Mapping[str, str], seen: Listing) -> CheckResult:
    name, answer = "app functions", seen.answer
    if answer.status == 404 and answer.code not in APP_NOT_FOUND:
        detail = f"the app's Functions host listed nothing ({answer.describe()})"
        return failed(name, detail, _publish(app), seen.target)
    if not answer.ok:
        return _not_read(name, app, "its functions", seen)
    listed = {_leaf(item) for item in seen.items}
    missing = [function for function in expected if function not in listed]
    if not missing:
        return passed(
            name,
            f"all {len(expected)} functions indexed ({', '.join(expected)}): the second pass may create the Event Grid "
            "subscriptions",
            seen.target,
        )
    events = [f for f, trigger in expected.items() if trigger == EVENT_GRID_TRIGGER and f in missing]
    found = ", ".join(sorted(listed)) or "none"
    if events:
        return failed(
            name,
            f"function {' and '.join(events)} is not listed: the code is not published or not indexed yet "
            f"(listed: {found}; expected: {', '.join(expected)})",
            _publish(app),
            seen.target,
        )
    return failed(
        name,
        f"not indexed: {', '.join(missing)} (listed: {found})",
        f"publish this version of the code: func azure functionapp publish {app.name} --python, then run certlc "
        "doctor again",
        seen.target,
    )


def judge_references(app: FunctionApp, seen: Listing) -> CheckResult:
    name = "key vault references"
    if not seen.answer.ok:
        return _not_read(name, app, "its Key Vault references", seen)
    if not seen.items:
        return passed(name, "none (no app setting is a Key Vault reference)", seen.target)
    unresolved = [item for item in seen.items if _properties(item).get("status") != RESOLVED]
    if not unresolved:
        return passed(name, f"{len(seen.items)} resolved ({', '.join(map(_leaf, seen.items))})", seen.target)
    described, fixes = [], []
    for item in unresolved:
        properties = _properties(item)
        setting, status = _leaf(item), str(properties.get("status") or "no status")
        vault, secret = str(properties.get("vaultName") or "?"), str(properties.get("secretName") or "?")
        described.append(f"{setting} {status} (secret {secret} in vault {vault})")
        fix = _reference_fix(app, setting, status, vault, secret)
        if fix not in fixes:
            fixes.append(fix)
    return failed(
        name,
        f"{len(unresolved)} of {len(seen.items)} not resolved: {'; '.join(described)}",
        "; ".join(fixes),
        seen.target,
    )


def _reference_fix(app: FunctionApp, setting: str, status: str, vault: str, secret: str) -> str:
    group = f"-g {app.resource_group} -n {app.name}"
    if status in ("AccessToKeyVaultDenied", "UnauthorizedClient"):
        return (
            f"grant the app's identity '{SECRETS_ROLE}' on secret {secret}: az role assignment create "
            f'--role "{SECRETS_ROLE}" --assignee-object-id <principalId of the identity the app resolves references '
            "with (the template's principalId output)> --assignee-principal-type ServicePrincipal "
            f"--scope $(az keyvault show -n {vault} --query id -o tsv)/secrets/{secret}"
        )
    if status == "MSINotEnabled":
        return f"give the app an identity (az functionapp identity assign {group}), then grant it '{SECRETS_ROLE}'"
    if status in ("SecretNotFound", "SecretVersionNotFound"):
        return f"create secret {secret} in vault {vault} (az keyvault secret set), or correct {setting}'s reference"
    if status == "VaultNotFound":
        return f"correct the vault in {setting}'s reference, or let the app's network through vault {vault}'s firewall"
    if status == "InvalidSyntax":
        return f"write {setting} as @Microsoft.KeyVault(SecretUri=https://<vault>.vault.azure.net/secrets/<name>)"
    return f"restart the app so the platform resolves {setting} again (az functionapp restart {group})"


def _not_read(name: str, app: FunctionApp, what: str, seen: Listing) -> CheckResult:
    answer, target = seen.answer, seen.target
    endpoint = f"{urlsplit(target).scheme}://{urlsplit(target).netloc}"
    detail = f"cannot read {what}: {answer.describe()}"
    if answer.code == "Config":
        token_fix = (
            f"unset CERTLC_LOCAL_TOKEN to read the app as your az login, or point {ENDPOINT_SETTING} at the emulator"
        )
        return failed(name, answer.message, answer.fix or token_fix, target)
    if answer.no_token:
        return failed(
            name, detail, "sign in (az login) so DefaultAzureCredential gets a token for Azure Resource Manager", target
        )
    if answer.unreachable:
        return failed(
            name,
            detail,
            f"check {ENDPOINT_SETTING} ({endpoint}; {CA_BUNDLE_SETTING} for a private CA) and that this network "
            "reaches Azure Resource Manager",
            target,
        )
    if answer.status == 404:
        return failed(
            name,
            f"no Function App {app.name} in resource group {app.resource_group} of subscription {app.subscription} "
            f"({answer.describe()})",
            f"check --app / {APP_SETTING}: az functionapp show -g {app.resource_group} -n {app.name} --query id -o tsv "
            "(the template's first pass creates the app)",
            target,
        )
    if answer.status == 401:
        return failed(name, detail, "Azure Resource Manager refused the token: az login to the app's tenant", target)
    if answer.status == 403:
        return failed(
            name,
            detail,
            f"give the identity running certlc doctor {READ_ROLES} on the app: az role assignment create --role Reader "
            f"--assignee <user or principal> --scope {app.id}",
            target,
        )
    return failed(name, detail, f"Azure Resource Manager answered unexpectedly; check {ENDPOINT_SETTING}", target)


def _publish(app: FunctionApp) -> str:
    return (
        f"publish the code: func azure functionapp publish {app.name} --python (or a zip deploy with a remote build), "
        "then run certlc doctor again; only once 'app functions' is ok deploy infra/main.json again with "
        "createEventSubscriptions=true"
    )


def _leaf(item: Mapping[str, Any]) -> str:
    """The last segment of an item's name or id: ``app/event`` -> ``event``, ``.../appsettings/X`` -> ``X``."""
    return str(item.get("name") or item.get("id") or "?").rstrip("/").rsplit("/", 1)[-1]


def _properties(item: Mapping[str, Any]) -> Mapping[str, Any]:
    properties = item.get("properties")
    return properties if isinstance(properties, Mapping) else {}
