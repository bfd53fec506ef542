"""A small evaluator of ARM template expressions, enough to hold infra/main.json to the code offline.

It parses ``[function(args).property[index]]`` strings and implements the functions the templates use.
``reference()`` of a nested deployment evaluates that deployment's outputs; any other ``reference()``
gives a placeholder (``https://reference.invalid/...``) because only a deployment knows the real value.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

SUBSCRIPTION_ID = "00000000-0000-0000-0000-000000000001"
RESOURCE_GROUP = "rg-certlc"
_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+)|(?P<name>[A-Za-z_][\w]*)|(?P<op>[().,\[\]]))")


class ArmError(ValueError):
    """An expression the evaluator cannot read, or a reference to something that does not exist."""


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("[") and not value.startswith("[[") and value.endswith("]")


def tokens(text: str) -> list[tuple[str, str]]:
    found, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            if text[position:].strip():
                raise ArmError(f"cannot read {text[position:]!r}")
            break
        found.append(next((kind, value) for kind, value in match.groupdict().items() if value is not None))
        position = match.end()
    return found


# Abstract syntax: ("lit", value) | ("call", name, [args]) | ("prop", node, name) | ("index", node, node)
def parse(expression: str) -> tuple:
    items = tokens(expression[1:-1] if is_expression(expression) else expression)
    node, rest = _parse(items, 0)
    if rest != len(items):
        raise ArmError(f"unexpected {items[rest][1]!r} in {expression!r}")
    return node


def _peek(items: list[tuple[str, str]], at: int) -> tuple[str, str]:
    if at >= len(items):
        raise ArmError("the expression ends too early (a missing ')' or ']'?)")
    return items[at]


def _parse(items: list[tuple[str, str]], at: int) -> tuple[tuple, int]:
    kind, text = _peek(items, at)
    if kind == "str":
        node: tuple = ("lit", text[1:-1].replace("''", "'"))
        at += 1
    elif kind == "num":
        node, at = ("lit", int(text)), at + 1
    elif kind == "name" and at + 1 < len(items) and items[at + 1][1] == "(":
        args, at = [], at + 2
        while _peek(items, at)[1] != ")":
            arg, at = _parse(items, at)
            args.append(arg)
            if _peek(items, at)[1] == ",":
                at += 1
        node, at = ("call", text.lower(), args), at + 1
    else:
        raise ArmError(f"unexpected {text!r}")
    while at < len(items) and items[at][1] in (".", "["):
        if items[at][1] == ".":
            node, at = ("prop", node, items[at + 1][1]), at + 2
        else:
            index, at = _parse(items, at + 1)
            if _peek(items, at)[1] != "]":
                raise ArmError("an index is missing its ']'")
            node, at = ("index", node, index), at + 1
    return node, at


def calls(node: tuple) -> list[tuple]:
    """Every function call in a parsed expression, outermost first."""
    if node[0] == "call":
        return [node] + [c for arg in node[2] for c in calls(arg)]
    if node[0] in ("prop", "index"):
        return calls(node[1]) + (calls(node[2]) if node[0] == "index" else [])
    return []


def expressions(node: Any) -> list[str]:
    """Every expression string in a template fragment (not descending into inner-scope templates)."""
    if is_expression(node):
        return [node]
    if isinstance(node, dict):
        return [e for key, value in node.items() if key != "template" for e in expressions(value)]
    if isinstance(node, list):
        return [e for value in node for e in expressions(value)]
    return []


def resource_id(subscription: str, group: str, kind: str, *names: str) -> str:
    namespace, *types = kind.split("/")
    if len(types) != len(names):
        raise ArmError(f"resourceId({kind!r}) needs {len(types)} name segments, got {list(names)}")
    path = "/".join(f"{t}/{n}" for t, n in zip(types, names, strict=True))
    return f"/subscriptions/{subscription}/resourceGroups/{group}/providers/{namespace}/{path}"


def _guid(*parts: Any) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "|".join(map(str, parts))))


def _unique_string(*parts: Any) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:13]


@dataclass
class Placeholder:
    """The value of ``reference()`` for a resource only Azure knows: any property path, read as a URL."""

    path: str

    def get(self, name: str) -> Placeholder:
        return Placeholder(f"{self.path}/{name}")

    def __str__(self) -> str:
        return f"https://reference.invalid{self.path}"


@dataclass
class Scope:
    """One template with its parameter values; nested inner-scope deployments get their own Scope."""

    template: Mapping[str, Any]
    parameters: Mapping[str, Any] = field(default_factory=dict)
    copy_index: int | None = None
    lambdas: Mapping[str, Any] = field(default_factory=dict)
    _variables: dict[str, Any] = field(default_factory=dict)

    def parameter(self, name: str) -> Any:
        specs = self.template.get("parameters", {})
        if name not in specs:
            raise ArmError(f"parameters({name!r}) is not declared")
        if name in self.parameters:
            return self.parameters[name]
        if "defaultValue" not in specs[name]:
            raise ArmError(f"parameter {name!r} has no value and no default")
        return self.value(specs[name]["defaultValue"])

    def variable(self, name: str) -> Any:
        if name not in self.template.get("variables", {}):
            raise ArmError(f"variables({name!r}) is not declared")
        if name not in self._variables:
            self._variables[name] = self.value(self.template["variables"][name])
        return self._variables[name]

    def at(self, index: int | None) -> Scope:
        return Scope(self.template, self.parameters, index, self.lambdas, self._variables)

    def value(self, node: Any) -> Any:
        """Evaluate a template fragment: expressions inside it are replaced by their values."""
        if is_expression(node):
            return self.evaluate(parse(node))
        if isinstance(node, str) and node.startswith("[["):
            return node[1:]
        if isinstance(node, dict):  # a property name may be an expression too (a user-assigned identity's id)
            return {self.value(key): self.value(item) for key, item in node.items()}
        if isinstance(node, list):
            return [self.value(item) for item in node]
        return node

    def evaluate(self, node: tuple) -> Any:
        kind = node[0]
        if kind == "lit":
            return node[1]
        if kind == "prop":
            return _property(self.evaluate(node[1]), node[2])
        if kind == "index":
            return self.evaluate(node[1])[self.evaluate(node[2])]
        name, args = node[1], node[2]
        if name == "if":  # lazy, as in ARM: the branch not taken is not evaluated
            return self.evaluate(args[1] if self.evaluate(args[0]) else args[2])
        if name == "lambda":
            return ("lambda", [self.evaluate(a) for a in args[:-1]], args[-1], self)
        if name == "reference":
            return self.reference(*(self.evaluate(a) for a in args))
        function = FUNCTIONS.get(name)
        if function is None:
            raise ArmError(f"function {name}() is not known to the test evaluator")
        return function(self, *(self.evaluate(a) for a in args))

    def reference(self, target: str, *_: Any) -> Any:
        for resource in self.template.get("resources", []):
            if resource["type"].lower() != "microsoft.resources/deployments":
                continue
            for index in copy_indexes(self, resource):
                scope = self.at(index)
                if str(scope.value(resource["name"])).lower() == target.rsplit("/", 1)[-1].lower():
                    return {"outputs": deployment_outputs(scope, resource)}
        return Placeholder("/" + target.split("/providers/", 1)[-1])


def _property(value: Any, name: str) -> Any:
    if isinstance(value, Placeholder):
        return value.get(name)
    if isinstance(value, Mapping):
        if name not in value:
            raise ArmError(f"no property {name!r} in {sorted(value)}")
        return value[name]
    raise ArmError(f"cannot read .{name} of {type(value).__name__}")


def _call_lambda(function: tuple, *values: Any) -> Any:
    _, names, body, scope = function
    inner = Scope(
        scope.template, scope.parameters, scope.copy_index, {**scope.lambdas, **dict(zip(names, values, strict=True))}
    )
    inner._variables = scope._variables
    return inner.evaluate(body)


def _format(_: Scope, text: str, *args: Any) -> str:
    return re.sub(r"\{(\d+)\}", lambda m: str(args[int(m.group(1))]), text)


def _union(_: Scope, *items: Any) -> Any:
    if all(isinstance(i, list) for i in items):
        return list(dict.fromkeys(x for i in items for x in i))
    merged: dict[str, Any] = {}
    for item in items:
        merged.update(item)
    return merged


def _string(_: Scope, value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "parameters": lambda s, n: s.parameter(n),
    "variables": lambda s, n: s.variable(n),
    "copyindex": lambda s, *a: s.copy_index + (a[-1] if a and isinstance(a[-1], int) else 0),
    "lambdavariables": lambda s, n: s.lambdas[n],
    "map": lambda s, items, f: [_call_lambda(f, item) for item in items],
    "filter": lambda s, items, f: [item for item in items if _call_lambda(f, item)],
    "toobject": lambda s, items, key, value=None: {
        _call_lambda(key, item): _call_lambda(value, item) if value else item for item in items
    },
    "split": lambda s, text, separator: str(text).split(separator),
    "replace": lambda s, text, old, new: str(text).replace(str(old), str(new)),
    "startswith": lambda s, text, prefix: str(text).lower().startswith(str(prefix).lower()),
    "first": lambda s, v: (v[0] if v else None) if isinstance(v, list) else str(v)[:1],
    "or": lambda s, *v: any(v),
    "format": _format,
    "concat": lambda s, *a: [x for i in a for x in i] if a and isinstance(a[0], list) else "".join(map(str, a)),
    "union": _union,
    "createobject": lambda s, *a: dict(zip(a[::2], a[1::2], strict=True)),
    "createarray": lambda s, *a: list(a),
    "join": lambda s, items, sep: sep.join(map(str, items)),
    "string": _string,
    "length": lambda s, v: len(v),
    "empty": lambda s, v: not v,
    "contains": lambda s, container, item: item in container,
    "not": lambda s, v: not v,
    "equals": lambda s, a, b: a == b,
    "null": lambda s: None,
    "tolower": lambda s, v: str(v).lower(),
    "take": lambda s, v, n: v[:n],
    "guid": lambda s, *a: _guid(*a),
    "uniquestring": lambda s, *a: _unique_string(*a),
    "subscription": lambda s: {"subscriptionId": SUBSCRIPTION_ID, "id": f"/subscriptions/{SUBSCRIPTION_ID}"},
    "resourcegroup": lambda s: {
        "name": RESOURCE_GROUP,
        "location": "westeurope",
        "id": f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{RESOURCE_GROUP}",
    },
    "environment": lambda s: {"suffixes": {"storage": "core.windows.net", "keyvaultDns": ".vault.azure.net"}},
    "resourceid": lambda s, *a: _resource_id(a),
    "subscriptionresourceid": lambda s, kind, *names: (
        f"/subscriptions/{SUBSCRIPTION_ID}/providers/{kind}/" + "/".join(names)
    ),
}


def _resource_id(args: tuple) -> str:
    """resourceId([subscriptionId], [resourceGroupName], type, names...): the type is the first ``A.B/c`` argument."""
    type_at = next(i for i, a in enumerate(args) if isinstance(a, str) and "/" in a and "." in a.split("/")[0])
    subscription, group = {0: (SUBSCRIPTION_ID, RESOURCE_GROUP), 1: (SUBSCRIPTION_ID, args[0]), 2: args[:2]}[type_at]
    return resource_id(subscription, group, args[type_at], *args[type_at + 1 :])


def copy_indexes(scope: Scope, resource: Mapping[str, Any]) -> list[int | None]:
    if "copy" not in resource:
        return [None]
    return list(range(scope.value(resource["copy"]["count"])))


def nested_scope(scope: Scope, deployment: Mapping[str, Any]) -> Scope:
    """The inner scope of a nested deployment, its parameters evaluated in the outer scope."""
    properties = deployment["properties"]
    if properties.get("expressionEvaluationOptions", {}).get("scope") != "inner":
        raise ArmError(f"nested deployment {deployment['name']} is not evaluated in the inner scope")
    values = {name: scope.value(spec["value"]) for name, spec in properties.get("parameters", {}).items()}
    return Scope(properties["template"], values)


def deployment_outputs(scope: Scope, deployment: Mapping[str, Any]) -> dict[str, Any]:
    inner = nested_scope(scope, deployment)
    return {name: {"value": inner.value(spec["value"])} for name, spec in inner.template.get("outputs", {}).items()}
