"""The eventDeliverySchema parameter: Event Grid's schema or CloudEvents 1.0, on every subscription, both accepted."""

import pytest

from renewal.events import outcome, parse_event
from renewal.messages import RenewalRequest
from renewal.vaults import parse_allow_list
from tests.infra.template import MAIN, VAULTS, evaluated, scope, templates

SCHEMAS = ["EventGridSchema", "CloudEventSchemaV1_0"]
SUBSCRIPTION = "Microsoft.EventGrid/systemTopics/eventSubscriptions"


def test_the_parameter_offers_both_schemas_and_defaults_to_event_grid():
    parameter = MAIN["parameters"]["eventDeliverySchema"]
    assert parameter["type"] == "string"
    assert parameter["allowedValues"] == SCHEMAS
    assert parameter["defaultValue"] == "EventGridSchema"


@pytest.mark.parametrize("schema", [None, *SCHEMAS])
def test_every_subscription_gets_the_schema(schema):
    chosen = scope() if schema is None else scope(eventDeliverySchema=schema)
    subscriptions = evaluated(SUBSCRIPTION, chosen)
    assert len(subscriptions) == len(VAULTS)
    assert {s["properties"]["eventDeliverySchema"] for s in subscriptions} == {schema or "EventGridSchema"}


def test_no_subscription_hard_codes_its_schema():
    """Each eventDeliverySchema is an expression, so no subscription added later can miss the parameter."""
    found = [
        resource["properties"]["eventDeliverySchema"]
        for _, template in templates()
        for resource in template.get("resources", [])
        if resource["type"] == SUBSCRIPTION
    ]
    assert found and all(value == "[parameters('eventDeliverySchema')]" for value in found)


def delivered(schema: str) -> dict:
    """A CertificateNearExpiry event as Event Grid delivers it in one schema."""
    vault, version = "kv-payments", "ee059b2bb5bc48398a53b168c6cdcb10"
    source = f"/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/{vault}"
    data = {
        "Id": f"https://{vault}.vault.azure.net/certificates/web/{version}",
        "VaultName": vault,
        "ObjectType": "Certificate",
        "ObjectName": "web",
        "Version": version,
        "NBF": "1559081980",
        "EXP": "1561673980",
    }
    event_type, event_id, time = (
        "Microsoft.KeyVault.CertificateNearExpiry",
        "00eccf70-95a7-4e7c-8299-2eb17ee9ad64",
        "2025-01-01T00:00:00Z",
    )
    if schema == "CloudEventSchemaV1_0":
        return {"specversion": "1.0", "id": event_id, "source": source, "subject": "web", "type": event_type,
                "time": time, "data": data}  # fmt: skip
    return {"id": event_id, "topic": source, "subject": "web", "eventType": event_type, "eventTime": time,
            "data": data, "dataVersion": "1", "metadataVersion": "1"}  # fmt: skip


@pytest.mark.parametrize("schema", SCHEMAS)
def test_the_event_function_renews_from_either_schema(schema):
    request = outcome(parse_event(delivered(schema), parse_allow_list("kv-payments")))
    assert isinstance(request, RenewalRequest)
    assert (request.vault, request.name, request.version) == ("kv-payments", "web", "ee059b2bb5bc48398a53b168c6cdcb10")
