"""One tokenisation pass over a SQL statement, and the normalised text built from it.

:func:`tokenize` splits a lowercased statement into tokens with one compiled regex (C speed):
words (keywords and identifiers), quoted identifiers, string literals, numbers, comments,
operators and punctuation. A token's kind is told by its first character, so tokens stay
plain strings. Comments are single tokens (features count them, nothing reads inside them);
string literals are opaque. Nothing raises on bad input: an unterminated literal or comment
runs to the end, bytes that are not UTF-8 are replaced, and a statement longer than
:data:`MAX_CHARS` is cut, which keeps every call bounded in time.

:func:`normalized_tokens` gives the tokens TF-IDF and the fingerprint use: comments dropped,
string / number / date literals replaced by ``?``, IN-lists of literals collapsed to
``in ( ? )``, quoted identifiers unquoted. No literal value, secret or e-mail address survives.
"""

from __future__ import annotations

import hashlib
import re

MAX_CHARS = 256 * 1024

# Leading whitespace is consumed with each token (one regex step instead of a failed
# alternation per blank), and the token itself is the one group findall returns.
_TOKEN = re.compile(
    r"\s*("
    r"[a-z_][a-z0-9_$@]*"  # word
    r"|'[^']*(?:''[^']*)*'?"  # string literal ('' escapes; unterminated runs to the end)
    r'|"[^"]*(?:""[^"]*)*"?'  # quoted identifier
    r"|0x[0-9a-f_]+|0b[01_]+|0o[0-7_]+"  # hex / binary / octal integer literals
    r"|\d[\d_]*(?:\.[\d_]*)?(?:e[-+]?\d+)?|\.\d+"  # number (1_000_000 allowed)
    r"|--[^\n]*|/\*.*?(?:\*/|\Z)"  # comments
    r"|<>|!=|<=|>=|\|\||->|=>"  # two-character operators
    r"|[^\s\w])",  # any other single symbol
    re.DOTALL,
)
_LITERAL_PREFIX = {"date", "timestamp", "time", "interval"}


def as_text(sql: str | bytes | None) -> str:
    """The statement as text: None -> "", bytes decoded (invalid UTF-8 replaced), cut at
    :data:`MAX_CHARS`."""
    if sql is None:
        return ""
    if isinstance(sql, bytes):
        sql = sql.decode("utf-8", errors="replace")
    return sql[:MAX_CHARS]


def tokenize(sql: str | bytes | None) -> list[str]:
    """Lowercased tokens of ``sql`` in order; whitespace is dropped."""
    return _TOKEN.findall(as_text(sql).lower())


def is_comment(token: str) -> bool:
    return token[0] in "-/" and token[:2] in ("--", "/*")


def is_literal(token: str) -> bool:
    first = token[0]
    return first == "'" or first.isdigit() or (first == "." and len(token) > 1)


def without_comments(tokens: list[str]) -> list[str]:
    """``tokens`` minus comments, so that neighbours are syntax neighbours."""
    return [t for t in tokens if not is_comment(t)]


def normalized_tokens(tokens: list[str]) -> list[str]:
    """Token texts with literals as ``?``, IN-lists as ``in ( ? )``, comments dropped."""
    tokens = without_comments(tokens)
    out: list[str] = []
    i, n = 0, len(tokens)
    while i < n:
        tok = tokens[i]
        first = tok[0]
        if first == "'" or first.isdigit() or (first == "." and len(tok) > 1):
            if first == "'" and out and out[-1] in _LITERAL_PREFIX:
                out[-1] = "?"  # DATE '2025-06-01' is one literal
            else:
                out.append("?")
        elif tok == "in" and i + 1 < n and tokens[i + 1] == "(":
            j = i + 2
            while j < n and (tokens[j] == "," or tokens[j] in "+-" or is_literal(tokens[j])):
                j += 1
            if j < n and tokens[j] == ")" and j > i + 2:
                out.extend(("in", "(", "?", ")"))
                i = j
            else:
                out.append(tok)
        elif first == '"':
            out.append(tok.strip('"') or '""')
        else:
            out.append(tok)
        i += 1
    return out


def normalize(sql: str | bytes | None) -> str:
    """Normalised text of ``sql`` (see the module docstring)."""
    return " ".join(normalized_tokens(tokenize(sql)))


def fingerprint(normalized: str) -> str:
    """Stable 16-hex-digit fingerprint of a normalised statement (BLAKE2b)."""
    return hashlib.blake2b(normalized.encode("utf-8"), digest_size=8).hexdigest()
