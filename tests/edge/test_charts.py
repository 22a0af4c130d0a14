"""Server-side SVG charts: well-formed, escaped, deterministic, honest about empty data."""

import re
import xml.etree.ElementTree as ET

import pytest

from edge.charts import Series, lines, nice_scale, stacked_bars

SVG = "{http://www.w3.org/2000/svg}"
MONTHS = [f"T{m}" for m in range(1, 13)]


def bars(categories, series, **kw):
    options = {"x_label": "Tháng", "y_label": "Hồ sơ", "description": "Số liệu ở bảng dưới."}
    options.update(kw)
    return stacked_bars("c", "Hồ sơ theo tháng", categories, series, **options)


def line(categories, series, **kw):
    options = {"x_label": "Tháng", "y_label": "Tỷ lệ", "description": "Số liệu ở bảng dưới."}
    options.update(kw)
    return lines("l", "Tỷ lệ số hóa", categories, series, **options)


def parse(svg):
    return ET.fromstring(svg)


def groups(root, cls):
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == cls]


def texts(root):
    return [t.text for t in root.iter(f"{SVG}text")]


def test_a_chart_is_an_accessible_image_with_title_description_and_axis_labels():
    root = parse(bars(MONTHS, [Series("Đúng hạn", [1] * 12, "#1f7a33")]))
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "c-title c-desc"
    assert root.find(f"{SVG}title").text == "Hồ sơ theo tháng"
    assert root.find(f"{SVG}title").get("id") == "c-title"
    assert root.find(f"{SVG}desc").text == "Số liệu ở bảng dưới."
    labels = texts(root)
    assert {"Tháng", "Hồ sơ", "T1", "T12", "Đúng hạn"} <= set(labels)
    assert "style" not in bars(MONTHS, [Series("a", [1], "#000")])  # the CSP forbids inline styles


def test_empty_data_draws_axes_and_says_there_is_nothing():
    root = parse(bars(MONTHS, [Series("a", [], "#000")], empty="Không có hồ sơ"))
    assert groups(root, "bar") == []
    assert "Không có hồ sơ" in texts(root)
    root = parse(bars([], []))
    assert "No data" in texts(root)
    root = parse(line(MONTHS, [Series("a", [None] * 12, "#000")], maximum=100, suffix="%"))
    assert groups(root, "series") == []
    assert "No data" in texts(root)


def test_one_month_gives_one_bar_stacked_bottom_up():
    values = [0] * 12
    values[3] = 5
    overdue = [0] * 12
    overdue[3] = 2
    root = parse(bars(MONTHS, [Series("ok", values, "#0a0"), Series("late", overdue, "#a00")]))
    [bar] = groups(root, "bar")
    assert bar.find(f"{SVG}title").text == "T4: ok: 5, late: 2"
    ok, late = bar.findall(f"{SVG}rect")
    assert (ok.get("fill"), late.get("fill")) == ("#0a0", "#a00")
    # The overdue part sits on top of the on-time part and is 2/5 of its height.
    assert float(late.get("y")) + float(late.get("height")) == pytest.approx(float(ok.get("y")), abs=0.1)
    assert float(late.get("height")) / float(ok.get("height")) == pytest.approx(2 / 5, abs=0.01)


def test_all_twelve_months_give_twelve_bars_left_to_right():
    root = parse(bars(MONTHS, [Series("n", list(range(1, 13)), "#000")]))
    found = groups(root, "bar")
    assert len(found) == 12
    xs = [float(g.find(f"{SVG}rect").get("x")) for g in found]
    assert xs == sorted(xs)
    heights = [float(g.find(f"{SVG}rect").get("height")) for g in found]
    assert heights == sorted(heights)


def test_zero_and_negative_values_draw_no_bar_part():
    root = parse(bars(["T1", "T2"], [Series("a", [0, 3], "#000"), Series("b", [-4, 0], "#111")]))
    [bar] = groups(root, "bar")
    assert len(bar.findall(f"{SVG}rect")) == 1


def test_lines_leave_gaps_where_a_month_has_no_share():
    shares = [None, 50.0, None, 100.0, 0.0] + [None] * 7
    root = parse(line(MONTHS, [Series("Số hóa", shares, "#00a")], maximum=100, suffix="%"))
    [series] = groups(root, "series")
    points = series.findall(f"{SVG}circle")
    assert [p.find(f"{SVG}title").text for p in points] == [
        "Số hóa, T2: 50%",
        "Số hóa, T4: 100%",
        "Số hóa, T5: 0%",
    ]
    assert len(series.find(f"{SVG}polyline").get("points").split()) == 3
    assert "100%" in texts(root)  # the fixed percentage scale


def test_a_second_series_uses_another_marker_shape():
    root = parse(line(["T1"], [Series("a", [10], "#00a"), Series("b", [20], "#a00")]))
    first, second = groups(root, "series")
    assert first.find(f"{SVG}circle") is not None
    assert second.find(f"{SVG}rect") is not None
    assert first.find(f"{SVG}polyline") is None  # one point is a marker, not a line


def test_every_text_is_escaped():
    evil = "<script>alert(\"x\")</script> & 'q'"
    svg = stacked_bars(
        'id"x',
        evil,
        [evil],
        [Series(evil, [1], "#000")],
        x_label=evil,
        y_label=evil,
        description=evil,
    )
    assert "<script>" not in svg
    root = parse(svg)  # still well-formed XML
    assert root.find(f"{SVG}title").text == evil
    assert texts(root).count(evil) >= 4
    svg = lines("l", evil, [evil], [Series(evil, [1], "#000")], x_label=evil, y_label=evil, description=evil)
    assert "<script>" not in svg
    parse(svg)


def test_output_is_deterministic():
    data = [Series("a", [1.23456, 2, 3], "#000"), Series("b", [0.5, None, 7], "#111")]
    assert bars(["x", "y", "z"], data) == bars(["x", "y", "z"], data)
    assert line(["x", "y", "z"], data) == line(["x", "y", "z"], data)
    assert "1.23456" not in line(["x", "y", "z"], data)  # coordinates rounded


@pytest.mark.parametrize(
    ("highest", "whole", "expected"),
    [
        (0, True, (1, 1)),
        (1, True, (1, 1)),
        (5, True, (6, 2)),
        (10, True, (10, 5)),
        (99, True, (100, 25)),
        (1234, True, (1500, 500)),
        (0.3, False, (0.3, 0.1)),
    ],
)
def test_scales_step_by_round_numbers(highest, whole, expected):
    top, step = nice_scale(highest, whole=whole)
    assert (top, step) == pytest.approx(expected)
    assert top >= highest


def test_axes_use_the_vietnamese_decimal_comma():
    from edge import i18n

    token = i18n.current_language.set("vi")
    try:
        svg = lines(
            "c", "t", ["a", "b"], [Series("s", [0.3, 1.2], "#000")], x_label="x", y_label="y", description="d"
        )
    finally:
        i18n.current_language.reset(token)
    ticks = re.findall(r'text-anchor="end">([^<]+)<', svg)
    assert "0,5" in ticks
    assert not [t for t in ticks if "." in t]
    assert "s, b: 1,2" in svg
