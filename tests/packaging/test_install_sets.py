"""What each install set brings is what its code imports: `make demo`'s virtualenv (certlc with the extras the
Makefile names, and localazure) holds every module certlc and the stand-ins import, so the demo never meets a
``ModuleNotFoundError`` that the test virtualenv, with its dev requirements, hides."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import cache
from importlib.metadata import PackageNotFoundError, distribution, distributions
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"certlc", "renewal", "ingestion", "localazure", "function_app", "tests", "bench"}
# The on-premises worker's Kerberos extra (requirements-kerberos.txt): imported only with Kerberos settings, which
# otherwise answer with what to install.
KERBEROS_ONLY = {"requests_kerberos", "gssapi"}


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", Requirement(requirement).name).lower()


def _requirements(path: Path) -> set[str]:
    lines = (line.split(" #")[0].strip() for line in path.read_text().splitlines())
    return {_name(line) for line in lines if line and not line.startswith(("#", "-r"))}


def demo_install() -> set[str]:
    """The distributions `make demo` asks pip for, read from the Makefile, pyproject.toml and requirements.txt."""
    recipe = (ROOT / "Makefile").read_text().split("$(VENV)/.demo-installed:", 1)[1].split("\n\n", 1)[0]
    extras = set(re.findall(r"-e '?\.\[([a-z,]+)\]'?", recipe))
    assert "-e localazure" in recipe, recipe
    certlc = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    localazure = tomllib.loads((ROOT / "localazure" / "pyproject.toml").read_text())["project"]
    wanted = _requirements(ROOT / "requirements.txt")
    for extra in ",".join(extras).split(","):
        wanted |= {_name(r) for r in certlc.get("optional-dependencies", {}).get(extra, [])} if extra else set()
    return closure(wanted | {_name(r) for r in localazure["dependencies"]} - {"certlc"})


def closure(names: set[str]) -> set[str]:
    """``names`` and what they require in turn, as pip resolves it here (markers evaluated, no extras)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            continue
        for text in requires:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(_name(text))
    return seen


@cache
def module_owners() -> dict[str, str]:
    """Every installed module path (``azure/keyvault/secrets``) and the distribution whose files hold it."""
    owners = {}
    for dist in distributions():
        for file in dist.files or ():
            parts = file.parts
            if not parts or parts[0].endswith((".dist-info", ".data")) or ".." in parts:
                continue
            if parts[-1] == "__init__.py":
                owners["/".join(parts[:-1])] = _name(dist.metadata["Name"])
            elif parts[-1].endswith(".py"):
                owners["/".join((*parts[:-1], parts[-1][:-3]))] = _name(dist.metadata["Name"])
    return owners


def owner(module: str) -> str | None:
    parts = module.split(".")
    while parts:
        if (found := module_owners().get("/".join(parts))) is not None:
            return found
        parts.pop()
    return None


def imports(folders: list[str]) -> dict[str, Path]:
    """Every absolute third-party import in ``folders``, lazy ones included, with a file that makes it."""
    found: dict[str, Path] = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names | FIRST_PARTY | KERBEROS_ONLY:
                        found.setdefault(name, path)
    return found


def test_the_demo_virtualenv_installs_every_module_certlc_and_the_stand_ins_import() -> None:
    wanted = demo_install()
    missing = {
        module: (owner(module), str(path.relative_to(ROOT)))
        for module, path in imports(["certlc", "renewal", "ingestion", "localazure/localazure"]).items()
        if owner(module) not in wanted
    }
    assert missing == {}, "imported, but make demo's virtualenv does not install it (module: (distribution, file))"


def test_the_module_lookup_finds_namespace_packages_parts() -> None:
    """``azure`` is shared by many distributions: each module is found in the one that holds it."""
    assert owner("azure.keyvault.secrets") == "azure-keyvault-secrets"
    assert owner("azure.keyvault.certificates._models") == "azure-keyvault-certificates"
    assert owner("no_such_module_anywhere") is None
