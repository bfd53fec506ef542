"""Azure Functions entry point: wiring only. The work lives in the packages."""

import azure.functions as func

from ingestion.blueprint import bp as ingestion_bp
from renewal.blueprint import bp as renewal_bp

app = func.FunctionApp()
app.register_functions(renewal_bp)
app.register_functions(ingestion_bp)
