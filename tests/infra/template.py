"""infra/main.json loaded once, with the walks over its nested templates that the tests share."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tests.infra.arm import Scope, copy_indexes, nested_scope

ROOT = Path(__file__).resolve().parents[2]
MAIN = json.loads((ROOT / "infra" / "main.json").read_text(encoding="utf-8"))
MONITORING = json.loads((ROOT / "infra" / "monitoring.json").read_text(encoding="utf-8"))
README = (ROOT / "infra" / "README.md").read_text(encoding="utf-8")

# Two vaults: one beside the app, one in another subscription that already has a system topic.
VAULTS = [
    {"name": "kv-payments", "resourceGroup": "rg-payments"},
    {"name": "kv-web", "resourceGroup": "rg-web", "subscriptionId": "sub-2", "systemTopicName": "kv-web-events"},
]
DEPLOYMENT = "microsoft.resources/deployments"


def scope(**parameters: Any) -> Scope:
    return Scope(MAIN, {"vaults": VAULTS, "createEventSubscriptions": True, **parameters})


def templates(template: Mapping[str, Any] = MAIN, where: str = "main.json") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The template and every template nested in it, each named by its path."""
    yield where, template
    for resource in template.get("resources", []):
        if resource["type"].lower() == DEPLOYMENT:
            yield from templates(resource["properties"]["template"], f"{where} > {resource['name']}")


def resources(template: Mapping[str, Any] = MAIN) -> Iterator[Mapping[str, Any]]:
    for _, found in templates(template):
        yield from found.get("resources", [])


def evaluated(kind: str, outer: Scope | None = None) -> list[dict[str, Any]]:
    """Every instance of one resource type with its expressions evaluated, nested deployments included."""
    outer = outer or scope()
    found = []
    for resource in outer.template.get("resources", []):
        for index in copy_indexes(outer, resource):
            here = outer.at(index)
            if not here.value(resource.get("condition", True)):
                continue
            if resource["type"].lower() == kind.lower():
                found.append(here.value(_without_template(resource)))
            if resource["type"].lower() == DEPLOYMENT:
                found.extend(evaluated(kind, nested_scope(here, resource)))
    return found


def _without_template(resource: Mapping[str, Any]) -> dict[str, Any]:
    """The resource without its copy loop and, for a nested deployment, its template (another scope)."""
    found = {k: v for k, v in resource.items() if k != "copy"}
    if "template" in found.get("properties", {}):
        found["properties"] = {k: v for k, v in found["properties"].items() if k != "template"}
    return found


def only(kind: str, template: Mapping[str, Any] = MAIN) -> Mapping[str, Any]:
    (found,) = [r for r in template["resources"] if r["type"].lower() == kind.lower()]
    return found


def app_principal(outer: Scope | None = None) -> str:
    """The app's principal id (its user-assigned identity's) as the offline evaluator renders it: only a
    deployment knows the real one."""
    app = (outer or scope()).parameter("appName")
    return f"https://reference.invalid/Microsoft.ManagedIdentity/userAssignedIdentities/{app}-identity/principalId"


def app_settings() -> dict[str, str]:
    (config,) = evaluated("Microsoft.Web/sites/config")
    return {name: str(value) for name, value in config["properties"].items()}
