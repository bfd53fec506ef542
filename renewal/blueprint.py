"""Triggers and bindings of the renewal functions; each body hands over to ``renewal.handlers``.

Binding values are app settings (``%NAME%``) so one build serves every environment;
``local.settings.sample.json`` and the ARM template give their defaults.
"""

import typing

import azure.functions as func

from renewal import handlers

bp = func.Blueprint()


@bp.function_name("event")
@bp.event_grid_trigger(arg_name="event")
@bp.queue_output(arg_name="out", queue_name="%CERTLC_QUEUE_NAME%", connection="CertlcStorage")
def event(event: func.EventGridEvent, out: func.Out[typing.List[str]]) -> None:  # noqa: UP006
    # typing.List, not list[str]: the Python worker refuses a PEP 585 alias inside Out and then loads no function.
    # For a CloudEvents 1.0 delivery the worker passes a func.CloudEvent whatever the annotation says.
    messages = handlers.on_event_grid_event(event)
    if messages:
        out.set(messages)


@bp.function_name("renew")
@bp.queue_trigger(arg_name="msg", queue_name="%CERTLC_QUEUE_NAME%", connection="CertlcStorage")
def renew(msg: func.QueueMessage) -> None:
    handlers.on_queue_message(msg.get_body(), dequeue_count=msg.dequeue_count or 1, message_id=msg.id)


@bp.function_name("sweep")
@bp.timer_trigger(arg_name="timer", schedule="%CERTLC_SWEEP_SCHEDULE%", run_on_startup=False)
def sweep(timer: func.TimerRequest) -> None:
    handlers.on_sweep_timer(past_due=timer.past_due)
