from schema.search import fts_query


def test_fts_query_folds_and_quotes_every_word():
    assert fts_query("Nguyễn Văn") == '"nguyen"* "van"*'
    assert fts_query("Đặng") == '"dang"*'
    assert fts_query("31135-260217-0001") == '"31135"* "260217"* "0001"*'


def test_fts_syntax_in_input_is_just_words():
    assert fts_query('an OR "x" NEAR(b) code:1') == '"an"* "or"* "x"* "near"* "b"* "code"* "1"*'


def test_nothing_to_search_for():
    assert fts_query("") is None
    assert fts_query(" - * ") is None
