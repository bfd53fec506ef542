"""The README's commands, as a newcomer types them: `make demo` from "The two commands", and every line of "A tour",
each in a shell from a fresh state folder, from the repository root and from another folder (with the path the
README says to give there). Each must exit as the README says: 0."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from certlc.stack_files import pid_of, process_alive
from tests.environment import without_certlc_settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
RELATIVE_CERTLC = ".venv/bin/certlc"

pytestmark = pytest.mark.timeout(900)


def section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def commands(title: str) -> list[str]:
    """The command lines of a section's first ``sh`` block, without their comments."""
    block = re.search(r"```sh\n(.*?)```", section(title), re.S)
    assert block, f"README's {title!r} has no sh block"
    lines = [shlex.split(line, comments=True) for line in block.group(1).splitlines()]
    return [shlex.join(words) for words in lines if words]


def fresh_environment(state: Path) -> dict[str, str]:
    """The user's shell without certlc's settings, its stack and demo in a folder of their own."""
    folders = {"CERTLC_STACK_DIR": str(state / "stack"), "CERTLC_DEMO_DIR": str(state / "demo")}
    return without_certlc_settings() | folders


def shell(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    deadline = 300 if " demo" in f" {command}" else 120
    return subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=deadline,
        stdin=subprocess.DEVNULL,
    )


def test_the_readme_names_the_commands_this_test_runs() -> None:
    assert commands("The two commands") == ["make demo", "make test"]
    tour = commands("A tour")
    assert [c.split()[:2] for c in tour[:2]] == [[RELATIVE_CERTLC, "demo"], [RELATIVE_CERTLC, "local"]], tour
    assert tour[-1] == f"{RELATIVE_CERTLC} local down", tour
    assert all(c.startswith(f"{RELATIVE_CERTLC} ") for c in tour), tour
    assert {"status", "renew", "ingest", "dashboard"} <= {c.split()[1] for c in tour}


def test_make_demo_as_written(tmp_path: Path) -> None:
    """`make test` made the virtualenv: `make demo` then installs Azurite when missing and runs the demo."""
    run = shell("make demo", ROOT, fresh_environment(tmp_path))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (tmp_path / "demo" / "dashboard.html").is_file()


@pytest.mark.parametrize("where", ["repository root", "another folder"])
def test_the_tour_as_written(tmp_path: Path, where: str) -> None:
    env = fresh_environment(tmp_path / "state")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cwd = ROOT if where == "repository root" else elsewhere
    absolute = shlex.quote(str(ROOT / RELATIVE_CERTLC))
    tour = [c if cwd == ROOT else absolute + c.removeprefix(RELATIVE_CERTLC) for c in commands("A tour")]
    info = tmp_path / "state" / "stack" / "stack.json"
    outputs = {}
    try:
        for command in tour:
            run = shell(command, cwd, env)
            said = f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
            assert run.returncode == 0, f"{command} exited {run.returncode}:\n{said}"
            outputs[" ".join(command.split()[1:3])] = run.stdout
    finally:
        shell(f"{absolute} local down", ROOT, env)
    assert "shop-expiring" in outputs["status"] and "intranet-unwatched" in outputs["status"]
    assert "shop-expiring" in outputs["status shop-expiring"]
    page = Path(outputs["dashboard"].strip().splitlines()[-1])
    assert page.is_absolute() and page.is_file() and "api-healthy" in page.read_text(encoding="utf-8")
    assert not process_alive(pid_of(info)), "local down returned while the stack still ran"
    assert list(elsewhere.iterdir()) == [], "a command wrote into the folder it was run from"
