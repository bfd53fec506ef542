"""The renewal lock's container: created by the template, named in the app settings, and the only scope on which
the app's identity gets Storage Blob Data Contributor (lease, read and write blobs)."""

import pytest

from tests.infra.template import MAIN, app_principal, app_settings, evaluated, scope

BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
CONTAINER = "Microsoft.Storage/storageAccounts/blobServices/containers"


def container_scope(outer, name: str) -> str:
    storage = outer.parameter("storageAccountName")
    return f"Microsoft.Storage/storageAccounts/{storage}/blobServices/default/containers/{name}"


def app_assignments(outer) -> list[dict]:
    assignments = evaluated("Microsoft.Authorization/roleAssignments", outer)
    return [a for a in assignments if str(a["properties"]["principalId"]) == app_principal(outer)]


@pytest.mark.parametrize("name", [None, "renewal-locks"], ids=["default", "parameter"])
def test_the_container_the_settings_name_is_created_private(name):
    outer = scope(**({"lockContainerName": name} if name else {}))
    expected = name or "certlc-locks"
    storage = outer.parameter("storageAccountName")
    (config,) = evaluated("Microsoft.Web/sites/config", outer)
    settings = config["properties"]

    assert settings["CERTLC_LOCK_CONTAINER"] == expected
    assert settings["CertlcStorage__blobServiceUri"] == f"https://{storage}.blob.core.windows.net"
    containers = {c["name"]: c for c in evaluated(CONTAINER, outer)}
    assert containers[f"{storage}/default/{expected}"]["properties"] == {"publicAccess": "None"}


def test_the_blob_endpoint_sits_beside_the_queue_endpoint():
    """One connection name, CertlcStorage, for queues and blobs: both endpoints of the same account."""
    settings = app_settings()
    assert settings["CertlcStorage__blobServiceUri"] == settings["CertlcStorage__queueServiceUri"].replace(
        ".queue.", ".blob."
    )
    assert "CertlcStorage" not in settings  # no connection string: the identity only


@pytest.mark.parametrize("name", [None, "renewal-locks"], ids=["default", "parameter"])
def test_the_app_gets_blob_data_contributor_on_the_lock_container_only(name):
    outer = scope(**({"lockContainerName": name} if name else {}))
    on_containers = [a for a in app_assignments(outer) if "/containers/" in a["scope"]]

    (lock,) = on_containers
    assert lock["scope"] == container_scope(outer, name or "certlc-locks")
    assert lock["properties"]["roleDefinitionId"].rsplit("/", 1)[1] == BLOB_DATA_CONTRIBUTOR
    assert lock["properties"]["principalType"] == "ServicePrincipal"
    contributor_scopes = [
        a["scope"]
        for a in app_assignments(outer)
        if a["properties"]["roleDefinitionId"].endswith(BLOB_DATA_CONTRIBUTOR)
    ]
    assert contributor_scopes == [lock["scope"]]  # not on the storage account, nor on any other container


def test_the_lock_role_waits_for_its_container_and_the_settings_too():
    """A role assignment on a container that does not exist yet fails, and the app would start without its lock."""
    lock_container = (
        "[resourceId('Microsoft.Storage/storageAccounts/blobServices/containers', "
        "parameters('storageAccountName'), 'default', parameters('lockContainerName'))]"
    )
    (deployment,) = [r for r in MAIN["resources"] if r["name"] == "[variables('lockRoleDeploymentName')]"]
    (config,) = [r for r in MAIN["resources"] if r["type"] == "Microsoft.Web/sites/config"]
    assert lock_container in deployment["dependsOn"]
    assert lock_container in config["dependsOn"]


def test_the_lock_container_name_is_one_blob_storage_accepts():
    spec = MAIN["parameters"]["lockContainerName"]
    assert spec["defaultValue"] == "certlc-locks"
    assert (spec["minLength"], spec["maxLength"]) == (3, 63)  # Blob Storage's limits for a container name
