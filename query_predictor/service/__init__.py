"""Serving-time code: :mod:`.predictor` loads the model bundle and answers one query (or a
batch); :mod:`.routing` turns its answers into Trino Gateway's routing decisions,
:mod:`.app` serves them over HTTP (ASGI) with :mod:`.metrics`, and :mod:`.server` runs the
app on uvicorn with workers, signals and limits (``query-predictor serve``)."""
