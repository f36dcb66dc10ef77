"""The tokens of a SQL statement, and the normalised text built from them.

Both come from the one compiled pass of :mod:`query_predictor.core._textscan` (its docstring
lists the token kinds). A token's kind is told by its first character, so tokens stay plain
strings. Comments are single tokens (features count them, nothing reads inside them); string
literals are opaque. Nothing raises on bad input: an unterminated literal or comment runs to
the end, bytes that are not UTF-8 are replaced, and a statement longer than
:data:`MAX_CHARS` is cut, which keeps every call bounded in time.

:func:`normalize` gives the text TF-IDF and the fingerprint use: comments dropped, string /
number / date literals replaced by ``?``, IN-lists of literals collapsed to ``in ( ? )``,
quoted identifiers unquoted. No literal value, secret or e-mail address survives.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

try:
    from . import _textscan
except ImportError as exc:  # a checkout whose extension was never built
    raise ImportError(
        "the featurizer's compiled core (query_predictor/core/_textscan.pyx) is not built: "
        "run `make setup` (or `pip install -e .`)"
    ) from exc

_SOURCE = Path(__file__).with_name("_textscan.pyx")
if _SOURCE.exists() and _SOURCE.stat().st_mtime > Path(_textscan.__file__).stat().st_mtime:
    raise ImportError(
        f"{_SOURCE} changed after {Path(_textscan.__file__).name} was built: run `make setup` "
        "(or `pip install -e .`) to rebuild the featurizer's compiled core"
    )

MAX_CHARS = 256 * 1024
_COMMENT_STARTS = ("--", "/*")


def decoded(sql: str | bytes | None) -> str | None:
    """The statement as ``str`` (bytes decoded, invalid UTF-8 replaced), whole."""
    return sql.decode("utf-8", errors="replace") if isinstance(sql, bytes) else sql


def as_text(sql: str | bytes | None) -> str:
    """The statement as the featurizer reads it: :func:`decoded`, None -> "", cut at
    :data:`MAX_CHARS`."""
    return (decoded(sql) or "")[:MAX_CHARS]


def tokenize(sql: str | bytes | None) -> list[str]:
    """Lowercased tokens of ``sql`` in order, comments included; whitespace is dropped."""
    return _textscan.tokens(as_text(sql).lower())


def is_comment(token: str) -> bool:
    return token[0] in "-/" and token[:2] in _COMMENT_STARTS


def is_literal(token: str) -> bool:
    first = token[0]
    return first == "'" or first.isdigit() or (first == "." and len(token) > 1)


def normalize(sql: str | bytes | None) -> str:
    """Normalised text of ``sql`` (see the module docstring)."""
    return _textscan.scan(as_text(sql).lower())[5]  # the normalised text


def fingerprint(normalized: str) -> str:
    """Stable 16-hex-digit fingerprint of a normalised statement (BLAKE2b)."""
    return hashlib.blake2b(normalized.encode("utf-8"), digest_size=8).hexdigest()
