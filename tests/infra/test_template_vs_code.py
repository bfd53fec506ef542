"""infra/main.json held to the code: the settings it writes are the ones the functions read, and they load."""

import ast
import json
import re
from datetime import UTC, datetime, timedelta

import pytest

import function_app
from certlc.host import ncrontab
from certlc.host.bindings import functions_of, hosted_functions
from ingestion.run import expiring_days
from ingestion.schema import COLUMNS, STREAM_DEFAULT
from ingestion.upload import target_from_env
from renewal.ca.base import CaConfigError
from renewal.clients import QUEUE_NAME_DEFAULT
from renewal.events import CERTIFICATE_EVENT_TYPES, outcome, parse_event
from renewal.messages import RenewalRequest
from renewal.notify import notifier_from_env
from renewal.pacing.settings import subscriptions_of
from renewal.pacing.store import DEFAULT_SUBSCRIPTION
from renewal.runtime import ca_factory
from renewal.settings import settings_from_env
from renewal.vaults import parse_allow_list
from tests.infra.template import MAIN, MONITORING, ROOT, VAULTS, app_settings, evaluated, only, scope

# Settings the code reads that a deployed app does not set, and why.
NOT_DEPLOYED = {
    "CERTLC_KEYVAULT_CA_BUNDLE": "local emulator only (loopback)",
    "CERTLC_LOCAL_TOKEN": "local emulator only (loopback)",
    "CERTLC_CLOCK_URL": "local emulator only (loopback)",
    "CERTLC_LOGS_CA_BUNDLE": "local emulator only",
    "CERTLC_LOGS_TOKEN": "local emulator only (loopback)",
    "CERTLC_QUEUE_CONNECTION": "the default, CertlcStorage, is the connection the template sets",
    "CERTLC_LOCAL_CA_DIR": "the local CA is not offered in Azure (no private persistent disk)",
    "CERTLC_LOCAL_CA_CRL_URL": "the local CA is not offered in Azure",
    "CERTLC_REVOCATION_CHECK": "code default (on)",
    "CERTLC_REVOCATION_READS_PER_SWEEP": "code default",
    "CERTLC_REVOCATION_FETCHES_PER_SWEEP": "code default",
    "CERTLC_INGEST_CACHE": "the default, the instance's temp dir, is right in Azure",
    "CERTLC_AUDIT_FILE": "in Azure the audit trail is the certlc.audit log in Application Insights",
    "CERTLC_SMTP_PASSWORD_SETTING": "the template sets CERTLC_SMTP_PASSWORD as a Key Vault reference instead",
    "CERTLC_SMTP_TIMEOUT": "code default",
    "CERTLC_WEBHOOK_TIMEOUT": "code default",
    "CERTLC_KEYVAULT_CONNECT_TIMEOUT": "code default",
    "CERTLC_KEYVAULT_READ_TIMEOUT": "code default",
    "CERTLC_CA_TIMEOUT": "code default",
    "CERTLC_LOCK_SECONDS": "code default (60 s, the longest blob lease)",
    "CERTLC_PACING": "code default (on)",
    "CERTLC_PACING_WAIT_SECONDS": "code default",
    "CERTLC_PACING_WINDOW_SECONDS": "Key Vault's own window is the default; lower only against the emulator",
    "CERTLC_ACME_HTTP01_WEBROOT": "a web root another server serves: for the on-premises worker, not a Function App",
    "CERTLC_ACME_DNS_TIMEOUT": "code default",
    "CERTLC_ACME_DNS_NAMESERVERS": "the zone's own name servers are asked; a split view needs others: add it then",
    "CERTLC_ACME_DNS_ENDPOINT": "the default is the public cloud's Resource Manager: add it for another cloud",
    "CERTLC_ACME_DNS_CA_BUNDLE": "local emulator only (loopback)",
    "CERTLC_ARM_CA_BUNDLE": "certlc doctor's own (reading the app through ARM), never an app setting",
    "CERTLC_PROBER_NAME": "an on-premises prober's own name (certlc targets --check there); the app is the unnamed one",
    "CERTLC_PROBE_TIMEOUT": "code default",
    "CERTLC_PROBE_WORKERS": "code default",
    "CERTLC_PROBE_DEADLINE": "code default",
    "CERTLC_PICKUP_GRACE_HOURS": "code default",
    "CERTLC_TARGET_ARM_ENDPOINT": "the default is the public cloud's Resource Manager: add it for another cloud",
    "CERTLC_TARGET_ARM_CA_BUNDLE": "local emulator only (loopback)",
    "CERTLC_TARGET_CONNECT": "local emulator only (loopback)",
}
SETTING = re.compile(r"CERTLC_[A-Z0-9_]+|Certlc[A-Za-z]+(?:__\w+)?")  # not the CertlcStatus_CL table


def settings_named_in_code() -> set[str]:
    """Every whole string constant in the function packages that is a certlc setting name."""
    names = set()
    for path in [*(ROOT / "renewal").rglob("*.py"), *(ROOT / "ingestion").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SETTING.fullmatch(node.value):
                names.add(node.value)
    return names


def binding_settings() -> set[str]:
    names = set()
    for function in functions_of(function_app.app):
        names |= set(re.findall(r"%([^%]+)%", function.get_function_json()))
    return names


def test_the_code_scan_finds_the_settings_it_should():
    assert {"CERTLC_VAULTS", "CERTLC_DCE_ENDPOINT", "CERTLC_SMTP_HOST", "CertlcStorage"} <= settings_named_in_code()
    assert binding_settings() == {"CERTLC_QUEUE_NAME", "CERTLC_SWEEP_SCHEDULE", "CERTLC_INGEST_SCHEDULE"}


def test_every_setting_the_code_reads_is_set_or_known_not_to_be_needed_in_azure():
    deployed = set(app_settings())
    read = (settings_named_in_code() | binding_settings()) - {"CertlcStorage"}  # set as __queueServiceUri
    assert "CertlcStorage__queueServiceUri" in deployed
    assert read - deployed - set(NOT_DEPLOYED) == set()
    assert set(NOT_DEPLOYED) <= read, "NOT_DEPLOYED names a setting the code no longer reads"
    assert set(NOT_DEPLOYED).isdisjoint(deployed)


def test_host_settings_for_flex_consumption():
    settings = app_settings()
    assert settings["AzureWebJobsStorage__accountName"] == scope().parameter("storageAccountName")
    assert settings["APPLICATIONINSIGHTS_CONNECTION_STRING"]
    # Flex Consumption takes the runtime from functionAppConfig and rejects these settings.
    assert {"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "AzureWebJobsStorage"}.isdisjoint(settings)
    assert not any("ConnectionString" in s or "AccountKey" in v for s, v in settings.items())


def test_the_deployed_settings_load_in_the_real_code():
    env = app_settings()
    settings = settings_from_env(env)
    assert [v.name for v in settings.vaults.values()] == [v["name"] for v in VAULTS]
    assert settings.vaults == parse_allow_list("kv-payments,kv-web")
    assert settings.window.default_ca == "cfssl" and settings.backoff.max_attempts == 12
    assert notifier_from_env(env) is not None
    assert expiring_days(env) == 30
    # each vault's subscription, for Key Vault's subscription-wide ceiling: the deployment's own by default
    groups = subscriptions_of(env, list(settings.vaults))
    assert groups["kv-web"] == "sub-2" and groups["kv-payments"] not in ("sub-2", DEFAULT_SUBSCRIPTION)
    target = target_from_env(env)
    assert target.stream == STREAM_DEFAULT and target.endpoint.startswith("https://")
    hosted = hosted_functions(function_app.app, env)  # resolves every %SETTING% binding expression
    assert {f.name for f in hosted.values()} == {"event", "renew", "sweep", "ingest"}
    assert hosted["renew"].trigger["queueName"] == QUEUE_NAME_DEFAULT


def test_queues_are_the_ones_the_code_uses():
    settings = settings_from_env(app_settings())
    wanted = [QUEUE_NAME_DEFAULT, settings.failed_queue_name, settings.poison_queue_name]
    assert wanted == ["certlc-renewals", "certlc-renewals-failed", "certlc-renewals-poison"]
    storage = scope().parameter("storageAccountName")
    assert [q["name"] for q in evaluated("Microsoft.Storage/storageAccounts/queueServices/queues")] == [
        f"{storage}/default/{name}" for name in wanted
    ]


def test_schedules_are_ncrontab_the_timers_accept():
    now = datetime(2025, 1, 1, 0, 10, tzinfo=UTC)
    for name in ("sweepSchedule", "ingestSchedule"):
        schedule = ncrontab.parse(scope().parameter(name))
        assert schedule.next_occurrence(now) - now <= timedelta(hours=1)
    with pytest.raises(ncrontab.ScheduleError):
        ncrontab.parse("0 * * * *")  # five fields: what a cron habit would write


def test_event_subscriptions_target_the_event_function():
    subscriptions = evaluated("Microsoft.EventGrid/systemTopics/eventSubscriptions")
    assert [s["name"] for s in subscriptions] == ["kv-payments-certlc/certlc-renewals", "kv-web-events/certlc-renewals"]
    site_id = evaluated("Microsoft.Web/sites")[0]["name"]
    triggers = {
        f.get_function_name(): next(
            b["type"] for b in json.loads(f.get_function_json())["bindings"] if "Trigger" in b["type"]
        )
        for f in functions_of(function_app.app)
    }
    for subscription in subscriptions:
        destination = subscription["properties"]["destination"]
        assert destination["endpointType"] == "AzureFunction"
        prefix, _, function = destination["properties"]["resourceId"].rpartition("/functions/")
        assert prefix.endswith(f"/Microsoft.Web/sites/{site_id}")
        assert triggers[function] == "eventGridTrigger"


def sample_event(event_type: str) -> dict:
    vault = "kv-payments"
    return {
        "id": "00eccf70-95a7-4e7c-8299-2eb17ee9ad64",
        "topic": f"/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/{vault}",
        "subject": "web",
        "eventType": event_type,
        "eventTime": "2025-01-01T00:00:00Z",
        "data": {
            "Id": f"https://{vault}.vault.azure.net/certificates/web/ee059b2bb5bc48398a53b168c6cdcb10",
            "VaultName": vault,
            "ObjectType": "Certificate",
            "ObjectName": "web",
            "Version": "ee059b2bb5bc48398a53b168c6cdcb10",
            "NBF": "1559081980",
            "EXP": "1561673980",
        },
        "dataVersion": "1",
        "metadataVersion": "1",
    }


def test_event_types_are_exactly_those_the_event_function_renews_for():
    allow = parse_allow_list("kv-payments")
    renewing = {
        t for t in CERTIFICATE_EVENT_TYPES if isinstance(outcome(parse_event(sample_event(t), allow)), RenewalRequest)
    }
    for subscription in evaluated("Microsoft.EventGrid/systemTopics/eventSubscriptions"):
        assert set(subscription["properties"]["filter"]["includedEventTypes"]) == renewing
    assert len(renewing) == 2


def test_event_delivery_retries_then_dead_letters_to_the_container():
    (subscription, _) = evaluated("Microsoft.EventGrid/systemTopics/eventSubscriptions")
    properties = subscription["properties"]
    assert properties["retryPolicy"] == {"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1440}
    dead_letter = properties["deadLetterWithResourceIdentity"]
    assert dead_letter["identity"] == {"type": "SystemAssigned"}
    target = dead_letter["deadLetterDestination"]["properties"]
    containers = [c["name"] for c in evaluated("Microsoft.Storage/storageAccounts/blobServices/containers")]
    assert f"{target['resourceId'].rsplit('/', 1)[1]}/default/{target['blobContainerName']}" in containers


def test_event_subscriptions_wait_for_the_published_code():
    assert evaluated("Microsoft.EventGrid/systemTopics/eventSubscriptions", scope(createEventSubscriptions=False)) == []
    assert MAIN["parameters"]["createEventSubscriptions"]["defaultValue"] is False
    topics = evaluated("Microsoft.EventGrid/systemTopics", scope(createEventSubscriptions=False))
    assert [t["name"] for t in topics] == ["kv-payments-certlc"]  # kv-web's topic exists already: used, not made


def test_offered_ca_adapters_are_ones_the_runtime_builds():
    offered = MAIN["parameters"]["caAdapter"]["allowedValues"]
    build = ca_factory({}, clock=lambda: datetime.now(UTC))
    for name in offered:
        with pytest.raises(CaConfigError, match="is not set"):  # known adapter, its URL missing
            build(name)
    with pytest.raises(CaConfigError, match="unknown CA adapter"):
        build("adcs-web")
    assert "local" not in offered


def test_secrets_are_key_vault_references_never_values():
    uri = "https://kv-ops.vault.azure.net/secrets/smtp-password"
    (config,) = evaluated("Microsoft.Web/sites/config", scope(smtpPasswordSecretUri=uri, webhookUrlsSecretUri=uri))
    settings = config["properties"]
    assert settings["CERTLC_SMTP_PASSWORD"] == f"@Microsoft.KeyVault(SecretUri={uri})"
    assert settings["CERTLC_WEBHOOK_URLS"] == f"@Microsoft.KeyVault(SecretUri={uri})"
    assert app_settings()["CERTLC_SMTP_PASSWORD"] == ""  # no secret URI: no password, never a default one
    for name, spec in MAIN["parameters"].items():
        named_secret = re.search(r"password|secret|token|key$", name, re.I)
        assert not named_secret or name.endswith("SecretUri") or name == "secretVaults", name
        assert spec.get("defaultValue") in (None, "", [], {}, False) or spec["type"] != "securestring"


def test_the_embedded_monitoring_template_is_monitoring_json_and_matches_the_schema():
    from infra.embed import main as embed

    assert embed(["--check"]) == 0
    (deployment,) = [r for r in MAIN["resources"] if r.get("comments", "").startswith("infra/monitoring.json")]
    assert deployment["properties"]["template"] == MONITORING
    rule = only("Microsoft.Insights/dataCollectionRules", deployment["properties"]["template"])
    columns = rule["properties"]["streamDeclarations"][STREAM_DEFAULT]["columns"]
    assert [(c["name"], c["type"]) for c in columns] == [(n, t) for n, t, _ in COLUMNS]
    assert set(deployment["properties"]["parameters"]) <= set(MONITORING["parameters"])
