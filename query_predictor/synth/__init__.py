"""A deterministic synthetic Trino query log that behaves like a shared cluster's."""
