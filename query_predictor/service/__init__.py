"""Serving-time code: loads the model bundle and answers routing requests."""
