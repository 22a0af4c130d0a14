"""Keep the gettext catalogs in step with the code: ``python -m ops.i18n`` (``make i18n``).

Extracts every msgid from the edge's Python and templates — ``_()`` calls, the English messages
of typed errors (their first argument) and action labels — and the templates of the fold's
reasons (``schema/reasons.py``: pages show why a change was not applied), and merges them into
``edge/locale/{vi,en}/LC_MESSAGES/messages.po``, keeping existing translations. A test fails
when a msgid has no Vietnamese translation, so a page can never show an untranslated string.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir, extract_from_file
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
EDGE = ROOT / "edge"
LOCALES = EDGE / "locale"
LANGUAGES = ("vi", "en")

# ConfigError is left out on purpose: it speaks to the technician at the command line, in English.
_ERRORS = (
    "EdgeError",
    "InvalidInput",
    "NotAuthenticated",
    "Forbidden",
    "NotFound",
    "Conflict",
    "TooLarge",
    "LockedOut",
    "Unavailable",
)
KEYWORDS = {
    **DEFAULT_KEYWORDS,
    "gettext_": None,
    "ngettext_": (1, 2),
    **{name: (1,) for name in _ERRORS},
    "Action": (2,),
}
METHODS = [
    ("**/templates/**.html", "jinja2"),
    ("**.py", "python"),
]
OPTIONS = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "true"}}


SOURCES = (EDGE, ROOT / "central")
"""Where strings shown to people live: the clerks' pages and the city's dashboard."""
REASONS = ROOT / "schema" / "reasons.py"
"""The data model's words that pages show: why the fold kept an op aside (``N_`` marks only)."""


def extract(directories: tuple[Path, ...] = SOURCES) -> Catalog:
    catalog = Catalog(project="motcua", copyright_holder="motcua contributors", charset="utf-8")
    for directory in directories:
        for filename, lineno, message, comments, context in extract_from_dir(
            str(directory), METHODS, options_map=OPTIONS, keywords=KEYWORDS, comment_tags=("Translators:",)
        ):
            location = f"{directory.name}/{filename}"
            catalog.add(message, None, [(location, lineno)], auto_comments=comments, context=context)
    for lineno, message, comments, context in extract_from_file(
        "python", REASONS, keywords={"N_": None}, comment_tags=("Translators:",)
    ):
        catalog.add(message, None, [("schema/reasons.py", lineno)], auto_comments=comments, context=context)
    return catalog


def po_path(language: str) -> Path:
    return LOCALES / language / "LC_MESSAGES" / "messages.po"


def load(language: str) -> Catalog:
    path = po_path(language)
    if not path.exists():
        return Catalog(locale=language, project="motcua", charset="utf-8")
    with path.open("rb") as handle:
        return read_po(handle, locale=language)


def update() -> dict[str, int]:
    """Merge fresh msgids into every catalog; returns untranslated counts per language."""
    template = extract()
    missing = {}
    for language in LANGUAGES:
        catalog = load(language)
        catalog.update(template, no_fuzzy_matching=True)
        path = po_path(language)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            write_po(handle, catalog, width=100, sort_output=True, include_lineno=False)
        missing[language] = sum(1 for m in catalog if m.id and not m.string)
    return missing


if __name__ == "__main__":
    counts = update()
    for language, count in counts.items():
        print(f"{language}: {count} msgid(s) without a translation", file=sys.stderr)
    sys.exit(0)
