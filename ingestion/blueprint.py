"""Trigger of the status snapshot; the work lives in ``ingestion.run``."""

import azure.functions as func

bp = func.Blueprint()


@bp.function_name("ingest")
@bp.timer_trigger(arg_name="timer", schedule="%CERTLC_INGEST_SCHEDULE%", run_on_startup=False)
def ingest(timer: func.TimerRequest) -> None:
    import os

    from ingestion.run import ingest as run_ingest
    from renewal.clock import clock_from_env

    report = run_ingest(os.environ, now=clock_from_env(os.environ)())
    if not report.ok:  # fail the invocation so Functions monitoring shows it; the other vaults were ingested
        raise RuntimeError(f"status ingestion incomplete: {report.summary()}")
