"""Function bodies: read settings, gather, hand over to the workflow. Filled in by the renewal pipeline."""

from __future__ import annotations

from typing import Any


def on_event_grid_event(event: Any) -> list[str]:
    raise NotImplementedError


def on_queue_message(body: bytes, *, dequeue_count: int, message_id: str | None) -> None:
    raise NotImplementedError


def on_sweep_timer(*, past_due: bool) -> None:
    raise NotImplementedError
