"""The box over HTTPS on the office LAN, with the certificate its kit carried (decision 0010).

A city makes a kit for Phường Ninh Kiều with a certificate for 127.0.0.1 issued by its own CA;
the box is made from that kit and served by ``motcua edge serve`` (a real process). Chromium
(Debian's) trusts the city's CA the way an office browser does once the CA is installed: here
by ``--ignore-certificate-errors-spki-list`` naming the CA's key, which accepts a chain that
carries that key and nothing else (an NSS database would need certutil, which the machine has
not; the flag is Chromium's own offline way). A browser that does not trust the CA refuses
the box; plain HTTP answers with a redirect only; HSTS and Secure cookies are on.
"""

from __future__ import annotations

import base64
import hashlib
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from playwright.sync_api import Browser, BrowserContext, Error
from servers import Server as Process
from servers import free_port, motcua

from central.city import init_central
from edge.accounts import add_account
from ops import kit

PASSWORD = "Matkhau123"
TIMEOUT_MS = 10_000
UNIT = "31135"
CLERK = "canbo_https"
KIT_PASSPHRASE = "cum tu bi mat cua bo kit"


@dataclass(frozen=True)
class Box:
    url: str
    redirect_url: str
    ca: Path
    log: Path


def ca_spki_hash(ca_pem: bytes) -> str:
    key = x509.load_pem_x509_certificate(ca_pem).public_key()
    spki = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    root = tmp_path_factory.mktemp("https")
    city, _ = init_central(root / "city", "92", PASSWORD)
    try:
        add_account(city.node, CLERK, "Lê Thị Mai", "clerk", PASSWORD, UNIT)
        kit.create_kit(
            city, UNIT, "https://127.0.0.1:9", root / "kit", KIT_PASSPHRASE, lan_names=["127.0.0.1"]
        )
    finally:
        city.close()
    data = root / "box"
    kit.apply_kit(kit.verify_kit(root / "kit"), data, KIT_PASSPHRASE)
    port, redirect = free_port(), free_port()
    (data / "edge.toml").write_text(f"http_redirect_port = {redirect}\n", encoding="utf-8")
    command = motcua("edge", "serve", "--data", str(data), "--host", "127.0.0.1", "--port", str(port))
    process = Process("edge https", command, port, root / "serve.log", ready_path="/login", scheme="https")
    process.start()
    try:
        yield Box(process.url, f"http://127.0.0.1:{redirect}", data / "tls" / "city-ca.pem", process.log_path)
    finally:
        process.stop()


@pytest.fixture(scope="module")
def trusting_browser(launch: Callable[..., Browser], box: Box) -> Browser:
    """A Chromium that trusts the city's CA (and only that beyond its own store)."""
    return launch(f"--ignore-certificate-errors-spki-list={ca_spki_hash(box.ca.read_bytes())}")


@pytest.fixture
def contexts() -> Iterator[Callable[[Browser], BrowserContext]]:
    made: list[BrowserContext] = []

    def make(browser: Browser) -> BrowserContext:
        context = browser.new_context(locale="vi-VN")
        context.set_default_timeout(TIMEOUT_MS)
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()


def test_a_browser_that_trusts_the_city_ca_logs_in_over_https_with_a_secure_cookie(
    box: Box, trusting_browser: Browser, contexts: Callable[[Browser], BrowserContext]
) -> None:
    context = contexts(trusting_browser)
    page = context.new_page()
    page.goto(f"{box.url}/login")
    form = page.locator('form[action="/login"]')
    form.locator('input[name="username"]').fill(CLERK)
    form.locator('input[name="password"]').fill(PASSWORD)
    form.locator('[type="submit"]').click()
    page.wait_for_url(f"{box.url}/")
    assert "Lê Thị Mai" in page.content()
    session = next(c for c in context.cookies() if c["name"] == "motcua_session")
    assert session["secure"] is True
    assert session["httpOnly"] is True
    # Typed on the plain-HTTP port, the address ends on the HTTPS page.
    page.goto(f"{box.redirect_url}/dossiers")
    assert page.url == f"{box.url}/dossiers"


def test_a_browser_that_does_not_trust_the_city_ca_refuses_the_box(
    box: Box, browser: Browser, contexts: Callable[[Browser], BrowserContext]
) -> None:
    page = contexts(browser).new_page()
    with pytest.raises(Error, match="ERR_CERT_AUTHORITY_INVALID"):
        page.goto(f"{box.url}/login")


def test_plain_http_answers_only_with_a_redirect_and_https_sends_hsts(box: Box) -> None:
    with httpx.Client(timeout=30) as plain:
        answer = plain.post(f"{box.redirect_url}/login?next=/dossiers", data={"username": CLERK})
    assert answer.status_code == 308
    assert answer.headers["location"] == f"{box.url}/login?next=/dossiers"
    assert answer.content == b""
    assert "set-cookie" not in answer.headers
    with httpx.Client(timeout=30, verify=ssl.create_default_context(cafile=box.ca)) as secure:
        login = secure.get(f"{box.url}/login")
    assert login.status_code == 200
    assert login.headers["strict-transport-security"] == "max-age=31536000"
    assert "secure" in login.headers["set-cookie"].lower()
