"""The Azure Functions Python worker's load-time rules and converters, for hosts that are not Azure's.

After a publish, Azure indexes ``function_app.py`` with the Python worker, which checks every function's
parameters against its bindings and the ``azure.functions`` binding registry; one function that fails
loads *no* function at all. At invocation the worker turns the host's wire data into trigger values, and
output values back into wire data, with the same registry's ``decode``/``encode``. The worker itself does
not install here (the PyPI package is years old), so these rules follow its indexing code
(``azure_functions_worker/functions.py``, ``Registry.add_indexed_function`` and
``validate_function_params``; ``bindings/meta.py``; ``bindings/generic.py``) and call ``azure.functions``
exactly as it does. Transport and scheduling stay the local host's.

Standalone on purpose (the standard library and ``azure.functions`` only): run as a script, it indexes an
unpacked deployment package in a virtualenv that has nothing but the package's requirements::

    python workerrules.py SCRIPT_ROOT   # prints the indexed functions as JSON; exit 1 and the error if any fails
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions import meta
from azure.functions._thirdparty import typing_inspect  # the helper the worker uses for the same checks

GENERIC = "generic"
RETURN = "$return"


class FunctionLoadError(RuntimeError):
    """The worker would refuse this function, and with it the whole app."""

    def __init__(self, function_name: str, message: str) -> None:
        super().__init__(f"cannot load the {function_name} function: {message}")
        self.function_name = function_name


class GenericBinding:
    """The worker's fallback for a ``str``/``bytes`` parameter on a binding without implicit output."""

    @classmethod
    def check_input_type_annotation(cls, pytype: type) -> bool:
        return issubclass(pytype, str | bytes)

    @classmethod
    def check_output_type_annotation(cls, pytype: type) -> bool:
        return issubclass(pytype, str | bytes | bytearray)

    @classmethod
    def encode(cls, obj: Any, *, expected_type: type | None) -> meta.Datum:
        if isinstance(obj, str):
            return meta.Datum(type="string", value=obj)
        if isinstance(obj, bytes | bytearray):
            return meta.Datum(type="bytes", value=bytes(obj))
        if obj is None:
            return meta.Datum(type=None, value=None)
        raise NotImplementedError

    @classmethod
    def decode(cls, data: meta.Datum, *, trigger_metadata: Any) -> Any:
        return data.value


def converter(binding_type: str) -> Any:
    """The registry's converter for a binding type, or the generic one, as the worker's ``get_binding``."""
    if binding_type == GENERIC:
        return GenericBinding
    return func.get_binding_registry().get(binding_type) or GenericBinding


@dataclass(frozen=True)
class Parameter:
    """One bound parameter as the worker resolved it at load time."""

    name: str
    binding_type: str  # the converter's binding type: the binding's own, or "generic"
    pytype: Any  # the annotation, or the T of func.Out[T]; None when not annotated
    binding: Mapping[str, Any]


@dataclass(frozen=True)
class LoadedFunction:
    """A function the worker accepted: its bindings and how each parameter is converted."""

    name: str
    user_function: Any
    bindings: tuple[Mapping[str, Any], ...]
    inputs: Mapping[str, Parameter] = field(default_factory=dict)
    outputs: Mapping[str, Parameter] = field(default_factory=dict)

    @property
    def trigger(self) -> Parameter:
        return next(p for p in self.inputs.values() if p.binding["type"].endswith("Trigger"))

    def decode_trigger(self, datum: meta.Datum, trigger_metadata: Mapping[str, meta.Datum]) -> Any:
        """The trigger value the worker would pass, built by the registry's own converter."""
        trigger = self.trigger
        return converter(trigger.binding_type).decode(datum, trigger_metadata=dict(trigger_metadata))

    def encode_output(self, name: str, value: Any) -> meta.Datum:
        """An output value as the worker sends it to the host; TypeError when the converter cannot."""
        output = self.outputs[name]
        try:
            return converter(output.binding_type).encode(value, expected_type=output.pytype)
        except NotImplementedError:
            raise TypeError(
                f"function {self.name!r}, output {name!r}: unable to encode outgoing TypedData: unsupported type "
                f"{output.binding_type!r} for Python type {type(value).__name__!r}"
            ) from None


def _is_generic(annotation: Any) -> bool:
    """``typing`` generics (``typing.List[str]``, ``func.Out[str]``); PEP 585 aliases (``list[str]``) are not."""
    return bool(typing_inspect.is_generic_type(annotation))


def _is_out(annotation: Any) -> bool:
    origin = typing_inspect.get_origin(annotation) if _is_generic(annotation) else None
    target = origin if origin is not None else annotation
    return isinstance(target, type) and target.__name__ == "Out"


def _out_type(name: str, function_name: str, annotation: Any) -> Any:
    args = typing_inspect.get_args(annotation)
    if len(args) != 1:
        raise FunctionLoadError(function_name, f"binding {name} has invalid Out annotation {annotation!r}")
    return args[0]


def _has_implicit_output(binding_type: str) -> bool:
    conv = converter(binding_type)
    if conv is GenericBinding:
        return binding_type != "durableClient"
    return bool(getattr(conv, "has_implicit_output", lambda: False)())


def _check_parameter(function_name: str, name: str, annotation: Any, binding: Mapping[str, Any]) -> Parameter:
    direction = str(binding.get("direction", "in")).lower()
    out_annotation = annotation is not None and _is_out(annotation)
    pytype = _out_type(name, function_name, annotation) if out_annotation else annotation
    if annotation is not None and not isinstance(pytype, type) and not _is_generic(pytype):
        raise FunctionLoadError(function_name, f"binding {name} has invalid non-type annotation {annotation!r}")
    if direction == "out" and annotation is not None and not out_annotation:
        raise FunctionLoadError(
            function_name,
            f'binding {name} is declared to have the "out" direction, but its annotation in Python is not '
            "a subclass of azure.functions.Out",
        )
    if direction != "out" and out_annotation:
        raise FunctionLoadError(
            function_name,
            f'binding {name} is declared to have the "in" direction, but its annotation is azure.functions.Out',
        )
    binding_type = binding["type"]
    if annotation is not None and pytype in (str, bytes) and not _has_implicit_output(binding_type):
        binding_type = GENERIC
    if annotation is not None:
        conv = converter(binding_type)
        check = conv.check_output_type_annotation if out_annotation else conv.check_input_type_annotation
        try:
            accepted = bool(check(pytype))
        except TypeError:  # issubclass() on a generic: the worker fails the same way
            accepted = False
        if not accepted:
            shown = getattr(pytype, "__name__", repr(pytype))
            raise FunctionLoadError(
                function_name,
                f'type of {name} binding "{binding["type"]}" does not match its Python annotation "{shown}"',
            )
    return Parameter(name, binding_type, pytype, binding)


def load_function(function: Any) -> LoadedFunction:
    """Apply the worker's load rules to one indexed function; raise FunctionLoadError as the worker would."""
    name = function.get_function_name()
    user_function = function.get_user_function()
    bindings = tuple(json.loads(raw) for raw in function.get_raw_bindings())
    bound: dict[str, Mapping[str, Any]] = {}
    for binding in bindings:
        direction = str(binding.get("direction", "in")).lower()
        if direction == "inout":
            raise FunctionLoadError(name, '"inout" bindings are not supported')
        if binding["name"] == RETURN:
            if direction != "out":
                raise FunctionLoadError(name, '"$return" binding must have direction set to "out"')
            continue
        bound[binding["name"]] = binding
    params = dict(inspect.signature(user_function).parameters)
    try:
        hints = typing.get_type_hints(user_function)
    except Exception as exc:  # the worker's typing.get_type_hints fails the same way
        raise FunctionLoadError(name, f"cannot resolve its annotations: {exc}") from None
    if "context" in params and "context" not in bound:
        params.pop("context")
        context = hints.get("context")
        if context is not None and (not isinstance(context, type) or context.__name__ != "Context"):
            raise FunctionLoadError(
                name, f'the "context" parameter is expected to be of type azure.functions.Context, got {context!r}'
            )
    if set(params) - set(bound):
        raise FunctionLoadError(
            name,
            f"the following parameters are declared in Python but not in function.json: {set(params) - set(bound)!r}",
        )
    if set(bound) - set(params):
        raise FunctionLoadError(
            name,
            f"the following parameters are declared in function.json but not in Python: {set(bound) - set(params)!r}",
        )
    inputs: dict[str, Parameter] = {}
    outputs: dict[str, Parameter] = {}
    for param in params:
        parameter = _check_parameter(name, param, hints.get(param), bound[param])
        target = outputs if str(bound[param].get("direction", "in")).lower() == "out" else inputs
        target[param] = parameter
    loaded = LoadedFunction(name, user_function, bindings, inputs, outputs)
    if not any(p.binding["type"].endswith("Trigger") for p in inputs.values()):
        raise FunctionLoadError(name, "it has no trigger binding")
    return loaded


def index_app(app: func.FunctionApp) -> list[LoadedFunction]:
    """Index ``app`` (``get_functions()``, once per app object) and load every function, or raise the first error."""
    return [load_function(function) for function in app.get_functions()]


def import_app(script_root: Path) -> func.FunctionApp:
    """Import ``script_root/function_app.py`` and return its FunctionApp (the worker's default script file).

    The module is registered as ``function_app``, unless a different file already holds that name (a test
    process hosting two apps), in which case it gets a name of its own; importing the same file again
    returns the app already loaded.
    """
    path = (script_root / "function_app.py").resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no function_app.py in {script_root.resolve()}")
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    name = "function_app"
    loaded = sys.modules.get(name)
    if loaded is not None and Path(loaded.__file__ or "").resolve() != path:
        name = f"function_app_{abs(hash(str(path))):x}"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    for value in vars(module).values():
        if isinstance(value, func.FunctionApp):
            return value
    raise ImportError(f"{path} defines no azure.functions.FunctionApp")


def describe(functions: list[LoadedFunction]) -> dict[str, Any]:
    return {
        "functions": [
            {
                "name": f.name,
                "trigger": f.trigger.binding["type"],
                "bindings": [dict(b) for b in f.bindings],
                "converters": {p.name: p.binding_type for p in (*f.inputs.values(), *f.outputs.values())},
            }
            for f in functions
        ]
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: workerrules.py SCRIPT_ROOT", file=sys.stderr)
        return 2
    try:
        functions = index_app(import_app(Path(args[0])))
    except FunctionLoadError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(json.dumps(describe(functions), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
