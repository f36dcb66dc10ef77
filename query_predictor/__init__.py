"""Trino Query Predictor: predict, before a Trino query runs, whether it will be heavy."""

__version__ = "0.1.0"
