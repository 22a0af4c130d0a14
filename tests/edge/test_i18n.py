"""Vietnamese first: every string a clerk can read has a Vietnamese translation."""

import re
from datetime import date

import pytest
from babel.messages.pofile import read_po

from edge import i18n
from ops.i18n import extract, po_path

PLACEHOLDER = re.compile(r"\{(\w+)\}")


@pytest.fixture(scope="module")
def extracted():
    return extract()


@pytest.fixture(scope="module")
def vietnamese():
    with po_path("vi").open("rb") as handle:
        return read_po(handle, locale="vi")


def test_every_msgid_in_the_code_has_a_vietnamese_translation(extracted, vietnamese):
    missing = sorted(
        m.id for m in extracted if m.id and not (vietnamese.get(m.id) and vietnamese[m.id].string)
    )
    assert missing == [], "run `make i18n` and translate these in edge/locale/vi:\n" + "\n".join(missing)


def test_translations_keep_the_placeholders_of_their_msgid(vietnamese):
    for message in vietnamese:
        if message.id and message.string:
            assert set(PLACEHOLDER.findall(message.id)) == set(PLACEHOLDER.findall(message.string)), (
                message.id
            )


def test_pages_default_to_vietnamese_and_fall_back_to_english():
    token = i18n.current_language.set("vi")
    try:
        assert i18n.gettext_("Log in") == "Đăng nhập"
    finally:
        i18n.current_language.reset(token)
    token = i18n.current_language.set("en")
    try:
        assert i18n.gettext_("Log in") == "Log in"
    finally:
        i18n.current_language.reset(token)


def test_dates_and_money_use_vietnamese_conventions():
    assert i18n.format_date(date(2026, 2, 17)) == "17/02/2026"
    assert i18n.format_date("2026-09-02") == "02/09/2026"
    assert i18n.format_money(1250000) == "1.250.000 ₫"
    assert i18n.parse_date("05/01/2026") == date(2026, 1, 5)
    assert i18n.parse_date("2026-01-05") == date(2026, 1, 5)


def test_the_data_models_cccd_reasons_are_all_in_the_catalog():
    from edge.dossiers import CCCD_REASONS
    from schema.errors import CitizenIdProblem

    assert set(CCCD_REASONS) == {p.value for p in CitizenIdProblem}
