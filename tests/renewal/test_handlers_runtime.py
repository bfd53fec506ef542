"""One runtime per process, even when the first invocations arrive together (a cold start's first batch)."""

from __future__ import annotations

import threading
import time
from typing import Any

from renewal import handlers


def test_concurrent_first_invocations_build_one_runtime(monkeypatch: Any) -> None:
    import renewal.runtime

    built: list[object] = []

    def slow_build(env: Any) -> object:
        time.sleep(0.2)  # building takes a while: the other invocations arrive meanwhile
        built.append(object())
        return built[-1]

    with monkeypatch.context() as patched:
        patched.setattr(renewal.runtime, "build_runtime", slow_build)
        handlers.reset_runtime()
        try:
            seen: list[object] = []
            threads = [threading.Thread(target=lambda: seen.append(handlers.runtime())) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(10)
            assert len(built) == 1 and seen == built * 8
        finally:
            handlers.reset_runtime()
    # once the real builder is back: a session stack's poller that built a fake meanwhile must not keep it
    handlers.reset_runtime()
