"""Serving-time code: :mod:`.predictor` loads the model bundle and answers one query (or a
batch); :mod:`.server` answers Trino Gateway's routing requests over HTTP."""
