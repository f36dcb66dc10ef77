"""Pipeline-only code: loading, labelling, filtering (never imported by serving)."""
