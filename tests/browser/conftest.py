"""A real ``motcua edge serve`` on loopback and Debian's Chromium driven by Playwright.

The server is a subprocess made with the CLI a technician uses (``edge init``, ``user add``,
``edge serve``), on a free port of 127.0.0.1: the browser talks to nothing else. Chromium is
``/usr/bin/chromium`` from Debian (``make browsers``), never a browser Playwright downloads.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, Route, sync_playwright
from servers import Server as Process
from servers import free_port, motcua

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    # Without these Chromium calls home at start; the machine's closed network refuses it.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 10_000


@dataclass(frozen=True)
class Account:
    username: str
    full_name: str
    role: str


@dataclass(frozen=True)
class Server:
    """What a test needs of the running node: where it answers, who may log in, its log."""

    url: str
    log: Path
    clerk: Account
    leader: Account
    password: str

    def log_in(self, page: Page, username: str) -> None:
        """Log ``username`` in through the real form and wait for the home page."""
        page.goto(f"{self.url}/login")
        form = page.locator('form[action="/login"]')
        form.locator('input[name="username"]').fill(username)
        form.locator('input[name="password"]').fill(self.password)
        form.locator('[type="submit"]').click()
        page.wait_for_url(f"{self.url}/")

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


UNIT = "31135"  # Phường Ninh Kiều, Cần Thơ
PASSWORD = "Matkhau123"
CLERK = Account("canbo01", "Nguyễn Thị Lan", "clerk")
LEADER = Account("lanhdao01", "Trần Văn Hùng", "leader")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("edge")
    data = root / "node"
    secret = root / "password.txt"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    init = motcua("edge", "init", "--data", str(data), "--unit", UNIT)
    subprocess.run(init, check=True, capture_output=True)
    for account in (CLERK, LEADER):
        subprocess.run(
            motcua(
                "user", "add", "--data", str(data), "--username", account.username,
                "--full-name", account.full_name, "--role", account.role, "--password-file", str(secret),
            ),
            check=True,
            capture_output=True,
        )  # fmt: skip
    port = free_port()
    log = root / "serve.log"
    command = motcua("edge", "serve", "--data", str(data), "--host", "127.0.0.1", "--port", str(port))
    process = Process("edge", command, port, log, ready_path="/login").start()
    try:
        yield Server(process.url, log, CLERK, LEADER, PASSWORD)
    finally:
        process.stop()


# Module scope, not session: while Playwright's sync API is running it owns an asyncio loop in
# this thread, and the in-process tests that follow on the same worker (anyio.run, TestClient)
# would fail with "Already running asyncio in this thread".
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's Chromium is missing: run `make browsers` (apt-get install chromium)")
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def launch(playwright: Playwright) -> Iterator[Callable[..., Browser]]:
    """Launch Debian's Chromium with flags of the test's own beside the usual ones; every
    browser launched is closed at the end of the module."""
    launched: list[Browser] = []

    def start(*extra: str) -> Browser:
        launched.append(
            playwright.chromium.launch(executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *extra])
        )
        return launched[-1]

    yield start
    for browser in launched:
        browser.close()


class Watch:
    """What the browser did that a clerk's box must never do: reach past the box (every
    request but those to 127.0.0.1 is aborted and noted), throw a script error, or break its
    own content-security policy (Chromium reports both on the console)."""

    def __init__(self) -> None:
        self.foreign: list[str] = []
        self.errors: list[str] = []

    def attach(self, context: BrowserContext) -> None:
        context.route("**/*", self._route)
        context.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        context.on("weberror", lambda e: self.errors.append(str(e.error)))

    def _route(self, route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            self.foreign.append(route.request.url)
            route.abort()


@pytest.fixture
def new_context(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    """Make browser contexts (a clerk's own browser: cookies, session); all are closed and
    checked at teardown."""
    made: list[BrowserContext] = []
    watch = Watch()

    def make(
        *, javascript: bool = True, locale: str = "vi-VN", width: int = 1280, height: int = 900
    ) -> BrowserContext:
        context = browser.new_context(
            java_script_enabled=javascript, locale=locale, viewport={"width": width, "height": height}
        )
        context.set_default_timeout(TIMEOUT_MS)
        watch.attach(context)
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()
    assert not watch.foreign, f"the pages asked for something beyond the box: {watch.foreign}"
    assert not watch.errors, f"the browser reported errors: {watch.errors}"


@pytest.fixture
def context(new_context: Callable[..., BrowserContext]) -> BrowserContext:
    return new_context(javascript=True)


@pytest.fixture
def no_js_context(new_context: Callable[..., BrowserContext]) -> BrowserContext:
    return new_context(javascript=False)


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture(autouse=True)
def _server_log_on_failure(request: pytest.FixtureRequest, server: Server) -> Iterator[None]:
    """When a browser test fails, the server's own log is the first thing one wants to read."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"--- motcua edge serve log ({server.log}) ---\n{server.log_tail()}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report
