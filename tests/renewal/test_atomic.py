"""Atomic file writes: the old content or the new, never a part, and no temp file left behind."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from renewal.atomic import write_atomically

ROOT = Path(__file__).resolve().parents[2]


def test_a_write_that_fails_half_way_keeps_the_old_content_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    # A real failure half-way: the kernel refuses to grow a file past the process's size limit (EFBIG).
    script = textwrap.dedent(
        """
        import resource, signal, sys
        from pathlib import Path
        from renewal.atomic import write_atomically

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
        try:
            write_atomically(Path(sys.argv[1]), b"x" * 100_000)
        except OSError as exc:
            print(exc.errno)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(target)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == str(errno.EFBIG), done.stderr
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_text_is_written_as_utf8_with_the_mode_asked_for(tmp_path: Path) -> None:
    target = tmp_path / "settings.json"
    write_atomically(target, "café")
    assert target.read_bytes() == "café".encode()
    assert target.stat().st_mode & 0o777 == 0o600
    write_atomically(target, b"public", mode=0o644)
    assert target.read_bytes() == b"public"
    assert target.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.json"]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root may give a file to another user")
def test_a_replaced_file_keeps_its_owner(tmp_path: Path) -> None:
    target = tmp_path / "server.key"
    target.write_bytes(b"old")
    os.chown(target, 65534, 65534)
    write_atomically(target, b"new")
    assert (target.stat().st_uid, target.stat().st_gid) == (65534, 65534)
