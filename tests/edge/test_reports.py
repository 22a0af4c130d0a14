"""The reports page: Decision 766 indicators per procedure and month, table and SVG chart."""

import re
import xml.etree.ElementTree as ET
from datetime import date, datetime, time
from html.parser import HTMLParser

import pytest
from edgekit import HOUSEHOLD_BUSINESS, OTHER_UNIT, actor, login, receive_sample

from edge.dossiers import attach, perform
from edge.i18n import TIMEZONE
from edge.uploads import Scan
from edge.views.reports import PROCEDURE_ROWS
from sync.clock import system_wall_ms

SVG = "{http://www.w3.org/2000/svg}"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def at(node, day, hour=9):
    """Move the node's clock (forward only: the HLC never goes back) to ``day`` in Vietnam."""
    moment = datetime.combine(day, time(hour), TIMEZONE)
    node.clock.offset_ms = int(moment.timestamp() * 1000) - system_wall_ms()


def set_due(node, dossier_id, due):
    with node.replica.write() as w:
        w.append("dossier", dossier_id, "set", {"due_date": due})


def process(node, dossier_id):
    leader = actor("lanhdao01")
    for step in ("accept", "start", "processed"):
        perform(node, leader, dossier_id, step)


class Tables(HTMLParser):
    """Rows of cell texts of every table with an id."""

    def __init__(self):
        super().__init__()
        self.tables, self.current, self.row, self.cell = {}, None, None, None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.current = self.tables.setdefault(dict(attrs).get("id"), [])
        elif tag == "tr" and self.current is not None:
            self.row = []
        elif tag in ("td", "th") and self.row is not None:
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.row.append(" ".join(self.cell.split()))
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.current.append(self.row)
            self.row = None
        elif tag == "table":
            self.current = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def tables(html):
    parser = Tables()
    parser.feed(html)
    return parser.tables


def month_rows(html):
    return {row[0]: row[1:] for row in tables(html)["by-month"][1:]}


def svgs(html):
    return [ET.fromstring(found) for found in re.findall(r"<svg.*?</svg>", html, re.S)]


def bars(svg):
    return [g for g in svg.iter(f"{SVG}g") if g.get("class") == "bar"]


@pytest.fixture
def year_2030(node):
    """March: one on time, one open (online, digitised), one refused. April: one processed
    late, one still open past its date. Today: 3 June 2030."""
    clerk = actor("canbo01")
    at(node, date(2030, 3, 4))
    on_time = receive_sample(node)
    process(node, on_time.id)
    online = receive_sample(node, channel="online", applicant_name="Trần Thị Bình")
    attach(node, clerk, online.id, [Scan("giay-de-nghi.png", "image/png", PNG)])
    set_due(node, online.id, "2030-12-31")
    refused = receive_sample(node)
    perform(node, clerk, refused.id, "refuse", note="Thiếu giấy tờ")
    at(node, date(2030, 4, 1))
    late = receive_sample(node)
    set_due(node, late.id, "2030-03-29")
    process(node, late.id)
    receive_sample(node)
    at(node, date(2030, 6, 3))
    return node


def test_reports_need_a_login(client):
    response = client.get("/reports")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


def test_the_table_counts_on_time_overdue_digitised_and_online_per_month(client, year_2030):
    login(client, "canbo01")
    page = client.get("/reports")
    assert page.status_code == 200
    assert "2030" in page.text
    rows = month_rows(page.text)
    assert rows["T3"] == ["3", "1", "0", "33,3 %", "33,3 %"]
    assert rows["T4"] == ["2", "0", "2", "0,0 %", "0,0 %"]
    assert rows["T5"] == ["0", "0", "0", "–", "–"]
    assert len(rows) == 13  # twelve months and the year
    year = tables(page.text)["by-month"][-1]
    assert year[1:] == ["5", "1", "2", "20,0 %", "20,0 %"]
    [procedure] = tables(page.text)["by-procedure"][1:]
    assert procedure[0].startswith(HOUSEHOLD_BUSINESS)
    assert procedure[1:] == ["5", "1", "2", "20,0 %", "20,0 %"]


def test_the_charts_are_well_formed_svg_with_one_bar_per_month_with_data(client, year_2030):
    login(client, "canbo01")
    page = client.get("/reports")
    deadlines, shares = svgs(page.text)
    assert deadlines.get("role") == "img"
    assert deadlines.find(f"{SVG}title").text
    march, april = bars(deadlines)
    assert march.find(f"{SVG}title").text.startswith("T3")
    assert april.find(f"{SVG}title").text.startswith("T4")
    assert len(march.findall(f"{SVG}rect")) == 2  # on time, and the two others
    assert len(april.findall(f"{SVG}rect")) == 1  # overdue only
    labels = [t.text for t in deadlines.iter(f"{SVG}text")]
    assert [f"T{m}" for m in range(1, 13)] == [t for t in labels if re.fullmatch(r"T\d+", t or "")]
    points = [c.find(f"{SVG}title").text for c in shares.iter(f"{SVG}circle")]
    assert len(points) == 2  # digitised share in March and April; no point for empty months
    assert "style=" not in page.text  # the CSP forbids inline styles
    assert len(page.content) < 60_000


def test_a_procedure_can_be_chosen(client, year_2030, node):
    at(node, date(2030, 6, 3), hour=10)
    receive_sample(node, procedure="1.004194", dob=None)
    login(client, "canbo01")
    page = client.get("/reports", params={"procedure": "1.004194"})
    rows = month_rows(page.text)
    assert rows["T6"][:3] == ["1", "0", "0"]
    assert rows["T3"][0] == "0"
    assert "by-procedure" not in tables(page.text)
    assert 'value="1.004194" selected' in page.text
    everything = month_rows(client.get("/reports").text)
    assert everything["T3"][0] == "3"
    assert everything["T6"][0] == "1"


def test_the_year_selector_works_without_javascript(client, year_2030):
    login(client, "canbo01")
    page = client.get("/reports")
    assert '<form method="get" action="/reports"' in page.text
    assert '<option value="2030" selected>' in page.text
    assert '<option value="2026">' in page.text
    other = client.get("/reports", params={"year": "2029"})
    assert other.status_code == 200
    assert all(row[0] == "0" for row in month_rows(other.text).values())
    assert bars(svgs(other.text)[0]) == []
    assert '<option value="2029" selected>' in other.text


@pytest.mark.parametrize("year", ["abc", "1999", "20300", "-1"])
def test_a_bad_year_is_a_clear_error(client, year):
    login(client, "canbo01")
    response = client.get("/reports", params={"year": year})
    assert response.status_code == 422


def test_a_bad_procedure_code_is_a_clear_error(client):
    login(client, "canbo01")
    assert client.get("/reports", params={"procedure": "x'; drop"}).status_code == 422


def test_a_unit_counts_what_it_received_or_what_it_handles_never_both(client, node):
    receive_sample(node)
    receive_sample(node)
    routed = receive_sample(node, handling_unit=OTHER_UNIT)
    month = f"T{datetime.fromtimestamp(node.clock.wall_ms() / 1000, TIMEZONE).month}"
    login(client, "canbo_caikhe")
    # The routed dossier was received at 31135: Cái Khế handles it, it did not receive it.
    theirs = client.get("/reports").text
    assert month_rows(theirs)[month][0] == "0"
    assert "Tiếp nhận tại" in theirs
    handled = client.get("/reports", params={"basis": "handled"}).text
    assert month_rows(handled)[month][0] == "1"
    assert "giải quyết" in handled
    client.cookies.clear()
    login(client, "canbo01")
    assert month_rows(client.get("/reports").text)[month][0] == "3"
    assert month_rows(client.get("/reports", params={"basis": "handled"}).text)[month][0] == "2"
    assert client.get("/reports", params={"basis": "elsewhere"}).status_code == 422
    assert routed.code


def test_an_admin_sees_every_unit(client, node):
    receive_sample(node)
    with node.replica.write() as w:  # a dossier of another unit only, as a merge would bring it
        w.append(
            "dossier",
            "elsewhere",
            "create",
            {
                "code": f"{OTHER_UNIT}-300101-0001",
                "procedure": HOUSEHOLD_BUSINESS,
                "receiving_unit": OTHER_UNIT,
                "handling_unit": OTHER_UNIT,
                "applicant_name": "Võ Văn Chín",
                "received_at": node.clock.wall_ms(),
                "by": "canbo_caikhe",
                "role": "clerk",
            },
        )
    month = f"T{datetime.fromtimestamp(node.clock.wall_ms() / 1000, TIMEZONE).month}"
    login(client, "quantri")
    assert month_rows(client.get("/reports").text)[month][0] == "2"
    client.cookies.clear()
    login(client, "canbo01")
    assert month_rows(client.get("/reports").text)[month][0] == "1"


def test_procedure_names_are_escaped_in_table_and_chart(client, node):
    name = 'Thủ tục <b>"thử"</b> & </svg><script>alert(1)</script>'
    with node.replica.write() as w:
        w.append("procedure", "9.999999", "upsert", {"name": name, "processing_days": 5})
    receive_sample(node, procedure="9.999999")
    login(client, "canbo01")
    page = client.get("/reports", params={"procedure": "9.999999"})
    assert page.status_code == 200
    assert "<script>" not in page.text
    assert '<b>"thử"' not in page.text
    deadlines, _ = svgs(page.text)
    assert name in deadlines.find(f"{SVG}title").text
    assert "<script>" not in client.get("/reports").text


def test_english_labels_and_decimal_point(client, year_2030):
    login(client, "canbo01")
    client.get("/lang/en")
    page = client.get("/reports")
    assert 'lang="en"' in page.text
    assert month_rows(page.text)["T3"][3] == "33.3 %"


def test_the_page_stays_under_60_kb_with_many_long_procedure_names(client, node):
    name = (
        "Cấp giấy chứng nhận đủ điều kiện an toàn thực phẩm đối với cơ sở sản xuất, kinh doanh "
        "thực phẩm thuộc thẩm quyền của Ủy ban nhân dân cấp xã số "
    )
    codes = [f"1.{200000 + i}" for i in range(PROCEDURE_ROWS + 20)]
    with node.replica.write() as w:
        for code in codes:
            w.append("procedure", code, "upsert", {"name": name + code, "processing_days": 5})
    for code in codes:
        receive_sample(node, procedure=code)
    login(client, "quantri")
    page = client.get("/reports")
    assert len(page.content) < 60_000
    assert len(tables(page.text)["by-procedure"]) == 1 + PROCEDURE_ROWS
    assert re.search(r'<p class="hint">20 [^<]+</p>', page.text)  # the 20 quietest are counted, not listed
