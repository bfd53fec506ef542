"""``certlc dashboard`` as a newcomer runs it, each command in its own process on a real local stack: it takes a new
snapshot first, so a certificate just added is on the page; the page and the command say when the snapshot was taken
and how old it is, on the local stack's clock when that was moved; with the stack down it says so in one line, still
writes the page from the stored snapshot with its age, and exits 1 (0 with ``--no-ingest``)."""

from __future__ import annotations

import contextlib
import html
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.cli import run_certlc

pytestmark = pytest.mark.timeout(300)
DAYS_MOVED = 30


@pytest.fixture
def stack_dir(tmp_path: Path, azurite) -> Path:  # azurite: installs it (or fails loudly in CI)
    return tmp_path / "stack"


def read(page_file: Path) -> str:
    """The page as text a person reads (entities decoded: the stack's, not the stack&#x27;s)."""
    return html.unescape(page_file.read_text())


def snapshot_time(page: str) -> datetime:
    (when,) = re.findall(r'<time class="snapshot" datetime="([^"]+)"', page)
    return datetime.fromisoformat(when.replace("Z", "+00:00"))


def certificates(page: str) -> set[str]:
    """The names in the certificate table (its second column)."""
    return {re.findall(r"<td[^>]*>(.*?)</td>", row)[1] for row in re.findall(r'<tr class="cert[^"]*".*?</tr>', page)}


def move_clock(stack_dir: Path, days: int) -> datetime:
    """The local stack's Key Vault clock moved forward, as ``certlc demo`` moves it; its new now."""
    from localazure.emulators.keyvault.control import EmulatorControl

    info = json.loads((stack_dir / "stack.json").read_text())
    now = EmulatorControl(info["keyvault_admin_url"], info["ca_bundle"]).advance(days * 86400)
    return datetime.fromisoformat(now.replace("Z", "+00:00"))


@contextlib.contextmanager
def ingested_stack(stack_dir: Path) -> Iterator[None]:
    """``certlc local up`` (seeded), ``certlc ingest`` (a first snapshot), then ``certlc local add web --days 5``:
    the newcomer's steps; ``certlc local down`` afterwards."""
    up = run_certlc("local", "up", "--dir", str(stack_dir), "--json", timeout=120)
    try:
        assert up.returncode == 0, up.stderr
        first = run_certlc("--settings", str(stack_dir / "local.settings.json"), "ingest", timeout=120)
        assert first.returncode == 0, first.stderr
        added = run_certlc("local", "add", "web", "--days", "5", "--dir", str(stack_dir), timeout=120)
        assert added.returncode == 0, added.stderr
        yield
    finally:
        down = run_certlc("local", "down", "--dir", str(stack_dir), timeout=120)
        assert down.returncode == 0, down.stderr


def test_dashboard_takes_a_new_snapshot_and_says_how_old_it_is_on_the_stacks_clock(stack_dir):
    page_file = stack_dir / "dashboard.html"
    with ingested_stack(stack_dir):
        # 1. a new snapshot first: the certificate just added is on the page, and its age is said
        shown = run_certlc("dashboard", "--state-dir", str(stack_dir), timeout=120)
        assert shown.returncode == 0, shown.stderr
        page = read(page_file)
        assert "web" in certificates(page)
        taken = snapshot_time(page)
        assert abs(datetime.now(UTC) - taken) < timedelta(minutes=2)
        said = f"Snapshot taken {taken:%Y-%m-%d %H:%M} UTC, less than a minute ago"
        assert shown.stdout.splitlines() == [said, str(page_file.resolve())], shown.stdout
        assert "less than a minute ago" in page and "moved forward" not in page

        # 2. the stack's clock moved forward: the snapshot is taken on it, and the page says so
        moved_to = move_clock(stack_dir, DAYS_MOVED)
        shown = run_certlc("dashboard", "--state-dir", str(stack_dir), timeout=120)
        assert shown.returncode == 0, shown.stderr
        page = read(page_file)
        taken = snapshot_time(page)
        assert timedelta(seconds=-1) <= taken - moved_to < timedelta(minutes=2)  # the stack's time (to the second)
        moved = f"by the local stack's clock, which was moved forward {DAYS_MOVED} days"
        assert moved in shown.stdout and moved in page, shown.stdout
        assert "less than a minute ago" in shown.stdout  # young on the clock it was taken on
        ahead = int(re.findall(r'data-clock-ahead-seconds="(\d+)"', page)[0])
        assert abs(ahead - DAYS_MOVED * 86400) < 120


def test_dashboard_with_the_stack_down_says_so_and_shows_the_stored_snapshots_age(stack_dir):
    page_file = stack_dir / "dashboard.html"
    with ingested_stack(stack_dir):
        move_clock(stack_dir, DAYS_MOVED)
        stored = json.loads((stack_dir / "logs" / "rows" / "Custom-CertlcStatus_CL.jsonl").read_text().splitlines()[-1])
        taken = datetime.fromisoformat(stored["TimeGenerated"].replace("Z", "+00:00"))
    moved = f"by the local stack's clock, which was moved forward {DAYS_MOVED} days"

    # 3. the stack is down: one line says so, the page still shows the stored snapshot with its age; exit 1
    stale = run_certlc("dashboard", "--state-dir", str(stack_dir), timeout=120)
    assert stale.returncode == 1, stale.stdout + stale.stderr
    lines = stale.stderr.strip().splitlines()
    assert len(lines) == 1 and "the local stack is not running: run certlc local up" in lines[0], stale.stderr
    assert f"the page shows the stored snapshot taken {taken:%Y-%m-%d %H:%M} UTC" in lines[0]
    page = read(page_file)
    assert snapshot_time(page) == taken and "web" not in certificates(page)  # the stored snapshot, as it was
    assert moved in page and moved in stale.stdout  # its age on the stack's clock, which it keeps while down
    age = int(re.findall(r'data-age-seconds="(\d+)"', page)[0])
    assert abs(age - DAYS_MOVED * 86400) < 600 and f"{DAYS_MOVED} d ago" in stale.stdout

    # 4. --no-ingest: the stored snapshot as it is, by choice: no complaint, exit 0
    as_is = run_certlc("dashboard", "--state-dir", str(stack_dir), "--no-ingest", timeout=120)
    assert as_is.returncode == 0 and as_is.stderr == "", as_is.stderr
    said, path = as_is.stdout.splitlines()
    assert said.startswith(f"Snapshot taken {taken:%Y-%m-%d %H:%M} UTC, ") and path == str(page_file.resolve())
