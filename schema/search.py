"""Turning what a clerk types into a safe FTS5 query over ``dossier_fts``."""

from __future__ import annotations

import re

from schema.codes import fold_text

_TOKEN = re.compile(r"\w+")


def fts_query(text: str) -> str | None:
    """A MATCH expression: every folded word of ``text`` as a quoted prefix, all required.

    ``fts_query("Nguyễn Văn") == '"nguyen"* "van"*'``; a dossier code's parts become words,
    so "31135-260217" finds the code. Returns None when there is no word to search for.
    Quoting every token means no user input is read as FTS5 syntax (AND, NEAR, column:).
    """
    words = _TOKEN.findall(fold_text(text))
    if not words:
        return None
    return " ".join(f'"{word}"*' for word in words)
