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
from collections.abc import Collection
from itertools import filterfalse

from query_predictor.core._textscan import normalize_identifier  # the same Python code

from query_predictor.core.sql_tokens import MAX_CHARS, as_text  # noqa: F401 (unchanged)

# Leading whitespace is consumed with each token (one regex step instead of a failed
# alternation per blank), and the token itself is the one group findall returns. Possessive
# repeats (``*+``, ``++``) never give characters back: no token needs them to, and the
# engine saves no state for it. The frequent one-character symbols come right after words;
# none of them starts a longer token.
_TOKEN = re.compile(
    r"\s*+("
    r"[a-z_][a-z0-9_$@]*+"  # word
    r"|[(),;*]|\.(?!\d)"  # frequent single symbols ('.5' is a number, below)
    r"|'[^']*+(?:''[^']*+)*+'?"  # string literal ('' escapes; unterminated runs to the end)
    r'|"[^"]*+(?:""[^"]*+)*+"?'  # quoted identifier
    r"|0x[0-9a-f_]++|0b[01_]++|0o[0-7_]++"  # hex / binary / octal integer literals
    r"|\d[\d_]*(?:\.[\d_]*)?(?:e[-+]?\d+)?|\.\d+"  # number (1_000_000 allowed)
    r"|--[^\n]*+|/\*.*?(?:\*/|\Z)"  # comments
    r"|<>|!=|<=|>=|\|\||->|=>"  # two-character operators
    r"|[^\s\w])",  # any other single symbol
    re.DOTALL,
)
_LITERAL_PREFIX = frozenset({"date", "timestamp", "time", "interval"})


def tokenize(sql: str | bytes | None) -> list[str]:
    """Lowercased tokens of ``sql`` in order; whitespace is dropped."""
    return _TOKEN.findall(as_text(sql).lower())


def names_normalized(tokens: list[str]) -> list[str]:
    """``tokens`` with the dates, versions and counters stamped in identifiers replaced."""
    return [normalize_identifier(t) if t[0] in _NAME_START else t for t in tokens]


_NAME_START = frozenset('abcdefghijklmnopqrstuvwxyz_"')
_COMMENT_STARTS = ("--", "/*")


def is_comment(token: str) -> bool:
    return token[0] in "-/" and token[:2] in _COMMENT_STARTS


def is_literal(token: str) -> bool:
    first = token[0]
    return first == "'" or first.isdigit() or (first == "." and len(token) > 1)


def without_comments(tokens: list[str]) -> list[str]:
    """``tokens`` minus comments, so that neighbours are syntax neighbours."""
    comments = {t for t in set(tokens) if t[:2] in _COMMENT_STARTS}  # distinct tokens only
    return list(filterfalse(comments.__contains__, tokens) if comments else tokens)


def unquoted(token: str) -> str:
    """A quoted identifier as the normalised text writes it: without its quotes."""
    return token.strip('"') or '""'


def normalized_tokens(tokens: list[str]) -> list[str]:
    """Token texts with literals as ``?``, IN-lists as ``in ( ? )``, comments dropped."""
    tokens = without_comments(tokens)
    distinct = set(tokens)
    literals = [t for t in distinct if is_literal(t)]
    quoted = {t: unquoted(t) for t in distinct if t[0] == '"'}
    listed = {",", "+", "-", *literals}
    in_lists = []
    if "in" in distinct:
        for i in positions(tokens, "in"):
            end = in_list_end(tokens, i, listed)
            if end:
                in_lists.append((i, end + 1))
    return normalized_from(
        tokens, distinct=distinct, literals=literals, quoted=quoted, in_lists=in_lists
    )


def in_list_end(tokens: list[str], i: int, listed: set[str]) -> int:
    """Index of the ``)`` closing ``in ( ... )`` at ``i`` if the list is not empty and every
    token in it is in ``listed`` (literals, commas and signs), else 0."""
    if tokens[i + 1 : i + 2] != ["("]:
        return 0
    try:
        close = tokens.index(")", i + 2)
    except ValueError:  # never closed
        return 0
    return close if close > i + 2 and listed.issuperset(tokens[i + 2 : close]) else 0


def normalized_from(
    tokens: list[str],
    *,
    distinct: Collection[str],
    literals: list[str],
    quoted: dict[str, str],
    in_lists: list[tuple[int, int]],
) -> list[str]:
    """:func:`normalized_tokens` of comment-free ``tokens``, from what a caller already knows
    of them: their distinct tokens, the literals among those, the :func:`unquoted` form of
    each quoted identifier and the spans (start, stop) of the IN lists of literals (see
    :func:`in_list_end`).

    Only the spans that change length are found in Python: an IN list of literals becomes
    ``in ( ? )``, and a string literal after DATE / TIMESTAMP / TIME / INTERVAL makes one
    ``?`` with it. The tokens between them are replaced in C.
    """
    replace = dict.fromkeys(literals, "?")
    replace.update(quoted)
    spans = [(start, stop, ("in", "(", "?", ")")) for start, stop in in_lists]
    for word in _LITERAL_PREFIX:
        written = [word] if word in distinct else []
        written += [q for q, name in quoted.items() if name == word]  # "date" is date too
        for i in [i for w in written for i in positions(tokens, w)]:
            if i + 1 < len(tokens) and tokens[i + 1][0] == "'":
                spans.append((i, i + 2, ("?",)))
    out: list[str] = []
    done = 0
    for start, stop, new in sorted(spans):
        between = tokens[done:start]
        out += map(replace.get, between, between)
        out += new
        done = stop
    rest = tokens[done:]
    out += map(replace.get, rest, rest)
    return out


def positions(tokens: list[str], token: str) -> list[int]:
    """Every index of ``token`` in ``tokens``, found by C scans."""
    found: list[int] = []
    i = -1
    for _ in range(tokens.count(token)):
        i = tokens.index(token, i + 1)
        found.append(i)
    return found


def normalize(sql: str | bytes | None) -> str:
    """Normalised text of ``sql`` (see the module docstring)."""
    return " ".join(normalized_tokens(names_normalized(tokenize(sql))))


def fingerprint(normalized: str) -> str:
    """Stable 16-hex-digit fingerprint of a normalised statement (BLAKE2b)."""
    return hashlib.blake2b(normalized.encode("utf-8"), digest_size=8).hexdigest()
