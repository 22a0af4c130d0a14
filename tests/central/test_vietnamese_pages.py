"""Every page, rendered in Vietnamese, reads in Vietnamese: no English word that a catalog missed.

The English words are the ones our own msgids use (what leaks when a translation is missing or a
text skips the catalog) and a list of common English words (what leaks when a text was never
written for a catalog: "hello", "pull", "push", "feed position"). Words that are Vietnamese as
well, without accents ("in", "an", "tin"), are those of the Vietnamese translations and are not
counted. Codes, names and abbreviations that are the same in both languages are allowed below,
by name: the list is short on purpose.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx
import pytest
from centralkit import CAI_KHE, NINH_KIEU, PASSWORD, sync_round
from edgekit import csrf_of, receive_sample
from starlette.testclient import TestClient

from central.registry import revoke_node
from edge.accounts import add_account
from edge.app import create_app
from edge.i18n import LOCALE_DIR
from edge.settings import load
from sync.errors import RevokedNode

COMMON_ENGLISH = set(
    [
        "about",
        "after",
        "again",
        "all",
        "also",
        "and",
        "any",
        "are",
        "back",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "can",
        "cannot",
        "could",
        "did",
        "does",
        "done",
        "down",
        "each",
        "either",
        "error",
        "errors",
        "every",
        "failed",
        "feed",
        "first",
        "for",
        "found",
        "from",
        "had",
        "has",
        "have",
        "hello",
        "here",
        "how",
        "into",
        "its",
        "just",
        "last",
        "later",
        "least",
        "less",
        "more",
        "most",
        "must",
        "never",
        "next",
        "none",
        "not",
        "now",
        "off",
        "once",
        "one",
        "only",
        "other",
        "our",
        "out",
        "over",
        "page",
        "please",
        "position",
        "pull",
        "push",
        "read",
        "refused",
        "request",
        "result",
        "same",
        "sent",
        "should",
        "since",
        "some",
        "still",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "under",
        "until",
        "upon",
        "very",
        "via",
        "waiting",
        "was",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "why",
        "will",
        "with",
        "within",
        "without",
        "would",
        "yet",
        "you",
        "your",
    ]
)

ALLOWED = {
    # Same in both languages: file formats, abbreviations, product names, the language switch.
    "PDF", "JPEG", "PNG", "JSON", "USB", "CCCD", "VNeID", "motcua", "English",
}  # fmt: skip


_SYLLABLE = re.compile(
    r"(?:ngh|ng|nh|ch|gh|gi|kh|ph|qu|th|tr|[bcdghklmnprstvx])?"
    r"(?:oai|oay|uya|uyu|ai|ao|au|ay|eo|eu|ia|iu|oa|oe|oi|ua|ue|ui|uo|uy|a|e|i|o|u|y)"
    r"(?:ch|ng|nh|[cmnpt])?"
)


def vietnamese_syllable(word: str) -> bool:
    """Could be a Vietnamese syllable written without its accents ("An", "Long", "may", "the"):
    names of people and places are full of them, so such a word alone is not counted."""
    return _SYLLABLE.fullmatch(word.lower()) is not None


def _words(text: str) -> set[str]:
    # ASCII words not glued to accented letters, digits or hyphens (codes, ids, hashes).
    return set(re.findall(r"(?<![\w\-./])[A-Za-z]{2,}(?![\w\-])", text))


def _catalog_words() -> tuple[set[str], set[str]]:
    from babel.messages.pofile import read_po

    with (LOCALE_DIR / "vi" / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po, locale="vi")
    english: set[str] = set()
    vietnamese: set[str] = set()
    for message in catalog:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for text in ids:
            english |= _words(re.sub(r"\{\w+\}", " ", text))
        for text in strings:
            vietnamese |= _words(re.sub(r"\{\w+\}", " ", text))
    return english, vietnamese


OUR_ENGLISH, VIETNAMESE_ASCII = _catalog_words()
ENGLISH = {w.lower() for w in OUR_ENGLISH | COMMON_ENGLISH if not vietnamese_syllable(w)} - {
    w.lower() for w in VIETNAMESE_ASCII
}


class _Visible(HTMLParser):
    """The text a person reads: text nodes (SVG's too) and the attributes shown as text."""

    SHOWN = ("title", "placeholder", "aria-label", "alt")

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "code"):  # <code>: commands and ids, the same in any language
            self._skip += 1
        values = dict(attrs)
        for name in self.SHOWN:
            if values.get(name):
                self.parts.append(str(values[name]))
        if tag == "input" and values.get("type") in ("submit", "button") and values.get("value"):
            self.parts.append(str(values["value"]))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "code") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def english_in(html: str) -> list[str]:
    parser = _Visible()
    parser.feed(html)
    found = []
    for part in parser.parts:
        words = {w for w in _words(part) if w.lower() in ENGLISH and w not in ALLOWED}
        if words:
            found.append(f"{' '.join(sorted(words))}  ←  {part.strip()[:120]!r}")
    return found


class Pages:
    """Reads pages and collects every leak, so that one run lists them all."""

    def __init__(self) -> None:
        self.leaks: list[str] = []
        self.read = 0

    def check(self, client: httpx.Client | TestClient, path: str, status: int = 200) -> None:
        response = client.get(path)
        assert response.status_code == status, (path, response.status_code)
        assert '<html lang="vi">' in response.text or "<html" not in response.text, path
        self.read += 1
        self.leaks += [f"{path}: {leak}" for leak in english_in(response.text)]

    def assert_vietnamese(self) -> None:
        assert not self.leaks, "English in Vietnamese pages:\n" + "\n".join(self.leaks)


def login(client: httpx.Client, username: str) -> None:
    page = client.get("/login")
    form = {"username": username, "password": PASSWORD, "csrf": csrf_of(page.text), "next": "/"}
    assert client.post("/login", data=form).status_code == 303


def test_the_checker_finds_english():
    assert english_in("<p>Page not found.</p>")
    assert english_in('<td title="feed position">12</td>')
    assert english_in("<td>hello/pull/push</td>")
    assert not english_in("<p>Không tìm thấy trang. In giấy tiếp nhận (PDF, 2 MiB).</p>")
    assert not english_in("<td>31135-9f2c4e0b7a1d5e33</td><td>2.000720</td>")


@pytest.fixture
def lived_in(world):
    """A city after a day of work: dossiers, syncs, a revoked box knocking, refusals."""
    add_account(world.city.node, "canbo01", "Nguyễn Thị Lan", "clerk", PASSWORD, NINH_KIEU)
    add_account(world.city.node, "lanhdao", "Lê Văn Cường", "leader", PASSWORD, NINH_KIEU)
    for unit in (NINH_KIEU, CAI_KHE):
        sync_round(world.edges[unit], world.peer(unit))
    received = receive_sample(world.edges[NINH_KIEU])
    sync_round(world.edges[NINH_KIEU], world.peer(NINH_KIEU))
    revoke_node(world.city, world.edges[CAI_KHE].identity.node)
    with pytest.raises(RevokedNode):
        sync_round(world.edges[CAI_KHE], world.peer(CAI_KHE))
    with httpx.Client(base_url=world.url, timeout=30) as stranger:
        page = stranger.get("/login")
        wrong = {"username": "quantri", "password": "sai-mat-khau", "csrf": csrf_of(page.text)}
        stranger.post("/login", data=wrong)
    return world, received.id


def test_every_city_page_reads_in_vietnamese(lived_in):
    world, dossier = lived_in
    node = world.edges[NINH_KIEU].identity.node
    pages = Pages()
    check = pages.check
    with httpx.Client(base_url=world.url, timeout=30) as client:
        check(client, "/login")
        check(client, "/no-such-page", 404)
        login(client, "quantri")
        # A file that is not a scan, refused: the refusals page shows it.
        token = csrf_of(client.get(f"/dossiers/{dossier}").text)
        client.post(
            f"/dossiers/{dossier}/attachments",
            data={"csrf": token},
            files=[("scans", ("to-khai.pdf", b"not a pdf at all", "application/pdf"))],
        )
        for path in (
            "/",
            "/dossiers",
            "/dossiers?q=khong-co-ai",
            "/dossiers/new",
            f"/dossiers/{dossier}",
            f"/dossiers/{dossier}/receipt",
            f"/dossiers/{dossier}/record",
            "/reports",
            "/audit",
            "/account/password",
            "/fleet",
            "/fleet/table",
            "/fleet/routing",
            "/fleet/indicators",
            "/fleet/indicators?by=handling",
            f"/fleet/nodes/{node}",
            f"/fleet/nodes/{world.edges[CAI_KHE].identity.node}",
        ):
            check(client, path)
        check(client, "/dossiers/" + "0" * 32, 404)
        check(client, "/fleet/nodes/31135-0000000000000000", 404)
    pages.assert_vietnamese()


def test_every_box_page_reads_in_vietnamese(lived_in, tmp_path):
    world, dossier = lived_in
    edge = world.edges[NINH_KIEU]
    receive_sample(edge)  # not sent yet
    app = create_app(load(edge.data_dir), edge, background=False)
    pages = Pages()
    check = pages.check
    for username in ("canbo01", "lanhdao"):
        with TestClient(app, follow_redirects=False) as client:
            login(client, username)
            for path in ("/", "/dossiers", "/dossiers/new", f"/dossiers/{dossier}", "/reports", "/audit"):
                if path == "/audit" and username == "canbo01":
                    check(client, path, 403)
                    continue
                check(client, path)
            check(client, f"/dossiers/{dossier}/receipt")
            check(client, f"/dossiers/{dossier}/record")
    pages.assert_vietnamese()
