"""The errors a user causes and can fix, as one family the stage runner and the CLI catch.

A :class:`PipelineError` is printed as one line, without a traceback, and ends a stage with
exit status 2; its message names the key, file, column or window at fault and says what to do.
Anything else that escapes is a bug and keeps its traceback.

The subclasses also derive from the built-in type a caller would expect (``ValueError``,
``FileNotFoundError``), so ``except ValueError`` around library code keeps working.
"""

from __future__ import annotations

__all__ = [
    "DataError",
    "EmptyWindowError",
    "MissingInputError",
    "ModelError",
    "ParityError",
    "PipelineError",
    "UnreadableFileError",
]


class PipelineError(Exception):
    """A problem with the user's params, files or data: one line, exit status 2."""


class DataError(PipelineError, ValueError):
    """The data cannot give what a stage needs (no heavy query, no history, bad contents)."""


class EmptyWindowError(DataError):
    """A date window holds no usable rows."""


class MissingInputError(PipelineError, FileNotFoundError):
    """An input file or directory is missing; the message names it and the stage to run."""


class UnreadableFileError(DataError):
    """An input file exists but cannot be read (corrupt parquet, truncated JSON)."""


class ModelError(PipelineError, ValueError):
    """The model files are missing, corrupted, or do not fit the featurizer."""


class ParityError(ModelError):
    """Two paths that must agree (batch and serving features, XGBoost and ONNX) do not."""
