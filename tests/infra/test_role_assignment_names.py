"""Role assignment names include the principal they grant.

Azure refuses a role assignment whose name exists with another principal, so a name without the principal
id breaks the next deployment once the Function App (a new system identity) or a system topic is
recreated. A name must also be known when its deployment starts, so the principal id reaches it as a
parameter of a nested deployment, never through reference().
"""

from collections.abc import Iterator, Mapping
from typing import Any

from tests.infra.arm import Placeholder, calls, is_expression, parse
from tests.infra.template import MAIN, MONITORING, evaluated, templates

ROLE_ASSIGNMENT = "microsoft.authorization/roleassignments"


def role_assignments() -> Iterator[tuple[str, Mapping[str, Any]]]:
    for where, template in [*templates(MAIN), *templates(MONITORING, "monitoring.json")]:
        for resource in template.get("resources", []):
            if resource["type"].lower() == ROLE_ASSIGNMENT:
                yield where, resource


def _contains(node: tuple, part: tuple) -> bool:
    """Whether a parsed expression has ``part`` as a sub-expression (or is it)."""
    if node == part:
        return True
    if node[0] == "call":
        return any(_contains(arg, part) for arg in node[2])
    if node[0] == "prop":
        return _contains(node[1], part)
    if node[0] == "index":
        return _contains(node[1], part) or _contains(node[2], part)
    return False


def name_problems(resource: Mapping[str, Any]) -> list[str]:
    """Why one role assignment's name could clash with an assignment of another principal (or not deploy)."""
    name, principal = resource.get("name"), resource.get("properties", {}).get("principalId")
    if not (is_expression(name) and is_expression(principal)):
        return [f"name {name!r} and principalId {principal!r} must both be expressions"]
    name_node, principal_node = parse(name), parse(principal)
    problems = []
    if name_node[0] != "call" or name_node[1] != "guid":
        problems.append(f"name {name} is not a guid()")
    if not _contains(name_node, principal_node):
        problems.append(f"name {name} does not include the principalId {principal}")
    if any(call[1] == "reference" or call[1].startswith("list") for call in calls(name_node)):
        problems.append(f"name {name} calls reference() or list*(): not known when the deployment starts")
    return problems


def test_every_role_assignment_name_includes_its_principal_id():
    found = list(role_assignments())
    assert len(found) >= 5  # vault access, host storage, lock container, dead letters, DCR publisher
    problems = [f"{where}: {problem}" for where, resource in found for problem in name_problems(resource)]
    assert problems == []


def test_the_name_check_finds_a_name_without_the_principal_and_one_that_calls_reference():
    principal = "[reference(resourceId('Microsoft.Web/sites', 'app'), '2024-04-01', 'Full').identity.principalId]"
    without = {"name": "[guid(resourceGroup().id, 'role')]", "properties": {"principalId": principal}}
    assert name_problems(without) == [f"name {without['name']} does not include the principalId {principal}"]
    with_reference = {
        "name": f"[guid(resourceGroup().id, {principal[1:-1]}, 'role')]",
        "properties": without["properties"],
    }
    assert name_problems(with_reference) == [
        f"name {with_reference['name']} calls reference() or list*(): not known when the deployment starts"
    ]
    ok = {
        "name": "[guid(resourceGroup().id, parameters('p'), 'r')]",
        "properties": {"principalId": "[parameters('p')]"},
    }
    assert name_problems(ok) == []


def test_a_recreated_identity_gets_new_assignment_names(monkeypatch):
    """Evaluated twice: the second time every identity (a reference() only Azure answers) has a new principal id."""
    before = {a["name"] for a in evaluated(ROLE_ASSIGNMENT)}
    monkeypatch.setattr(Placeholder, "__str__", lambda self: f"https://reference.invalid{self.path}?recreated")
    after = {a["name"] for a in evaluated(ROLE_ASSIGNMENT)}
    # 2 vault access, 3 host storage, 1 lock container, 2 dead-letter writers, 1 DCR publisher
    assert len(before) == len(after) == 9
    assert before.isdisjoint(after), "an assignment keeps its name for a new principal"
