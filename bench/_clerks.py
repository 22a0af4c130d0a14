"""Simulated clerks of a commune box, over real HTTP: what bench/edge_load.py and
bench/edge_soak.py share.

A :class:`Clerk` logs in through the real form (its own session cookie and CSRF token) and,
until the time is up, picks an action by :data:`MIX`, waits for the answer, thinks (exponential,
mean ``think_s``) and goes again:

    list     GET  /dossiers (first pages, or status 10)
    search   GET  /dossiers?q=<an applicant's full name without diacritics>
    detail   GET  /dossiers/{id} of a seeded dossier
    receive  POST the real receive form (multipart, one PDF scan) -> 303 to the receipt
    action   POST /dossiers/{id}/actions: accept, then start, dossiers this clerk received

Latency is the time to the full response of that one request (redirects are not followed).
Every write the server acknowledged is remembered (:attr:`Results.acknowledged`), so that a
benchmark can check afterwards that none of it was lost.
"""

from __future__ import annotations

import asyncio
import random
import re
import secrets
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin
from zoneinfo import ZoneInfo

import httpx

from edge.node import Node
from ops.demodata import dossier_ops, person
from schema import PILOT_PROCEDURES
from schema.codes import fold_text

UNIT = "31135"  # Phường Ninh Kiều, Cần Thơ
PASSWORD = "Matkhau123"
ACTIONS = ("list", "search", "detail", "receive", "action")
MIX = {"list": 20, "search": 25, "detail": 30, "receive": 10, "action": 15}
SOLO_REPEAT = 100
TARGET_P95_MS = {"list": 50, "search": 50, "detail": 50, "receive": 100}  # issue 3; reported, not asserted
TARGET_RSS_MB = 150
TIMEZONE = ZoneInfo("Asia/Ho_Chi_Minh")
PER_TRANSACTION = 500
DAYS = 250  # the seeded dossiers were received over the last 250 days
STATUS_AFTER = {"receive": 1, "accept": 2, "start": 4}
"""The status a dossier is in after each acknowledged write (schema.status)."""
SCAN = (
    b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
    b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
)


def progress(message: str) -> None:
    print(f"\r{message}", end="", file=sys.stderr, flush=True)


@dataclass
class Seeded:
    ids: list[str]
    names: list[str]
    """Applicants' full names as written (with diacritics)."""
    seconds: float


def memory_mb(pid: int) -> dict[str, float]:
    """VmHWM (peak) and VmRSS (now) of a process, in MiB, from /proc."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            found[key] = round(int(value.split()[0]) / 1024, 1)
    return found


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile, in ms rounded to 0.1; None when nothing was measured."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return round(ordered[int(rank) - 1], 1)


# --- seeding -------------------------------------------------------------------------------------


def seed_dossiers(node: Node, dossiers: int, rnd: random.Random, unit: str = UNIT) -> Seeded:
    """``dossiers`` dossiers of 10 ops each (create, field edits, statuses 1->2->4->9->10,
    ``ops.demodata``) written through the node's real local-write API, ~500 per transaction,
    received over the last :data:`DAYS` days (never today: today's codes are live)."""
    procedures = [p.code for p in PILOT_PROCEDURES]
    per_day = -(-dossiers // DAYS)
    today = datetime.now(TIMEZONE).date()
    ids: list[str] = []
    names: list[str] = []
    started = time.perf_counter()
    for first in range(0, dossiers, PER_TRANSACTION):
        with node.replica.write() as w:
            for i in range(first, min(first + PER_TRANSACTION, dossiers)):
                day = today - timedelta(days=1 + i // per_day)
                number = i % per_day + 1
                received = datetime(day.year, day.month, day.day, 7, 30, tzinfo=TIMEZONE)
                received_ms = int(received.timestamp() * 1000) + number * 60_000
                entity = f"{rnd.getrandbits(128):032x}"
                for action, payload in dossier_ops(
                    rnd, unit, rnd.choice(procedures), day, number, received_ms
                ):
                    if action == "create":
                        names.append(payload["applicant_name"])
                    w.append("dossier", entity, action, payload)
                ids.append(entity)
        rate = len(ids) / (time.perf_counter() - started)
        progress(f"seeded {len(ids):,}/{dossiers:,} dossiers ({rate:,.0f}/s)")
    print(file=sys.stderr)
    return Seeded(ids, names, time.perf_counter() - started)


# --- reading the real forms --------------------------------------------------------------------


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)


class FormParser(HTMLParser):
    """Every form of a page with the values a browser would submit untouched (no files)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._select: str | None = None
        self._select_first: str | None = None
        self._select_chosen = False
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(a.get("action", ""), a.get("method", "get").lower()))
            return
        if not self.forms:
            return
        form = self.forms[-1]
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text").lower()
            form.types.setdefault(name, kind)
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    form.fields[name] = a.get("value", "on")
            elif kind not in ("file", "submit", "button", "image", "reset"):
                form.fields[name] = a.get("value", "")
        elif tag == "select" and name:
            form.types[name] = "select"
            self._select, self._select_first, self._select_chosen = name, None, False
        elif tag == "option" and self._select:
            value = a.get("value", "")
            if self._select_first is None:
                self._select_first = value
                form.fields[self._select] = value
            if "selected" in a and not self._select_chosen:
                form.fields[self._select], self._select_chosen = value, True
        elif tag == "textarea" and name:
            form.types[name] = "textarea"
            form.fields[name] = ""
            self._textarea = name

    def handle_data(self, data: str) -> None:
        if self._textarea and self.forms:
            self.forms[-1].fields[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def forms_of(html: str) -> list[Form]:
    parser = FormParser()
    parser.feed(html)
    return parser.forms


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    if not found:
        raise SystemExit("no CSRF token on the page: the pages changed, update the benchmark")
    return found.group(1)


# --- the clerks ----------------------------------------------------------------------------------


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {a: [] for a in ACTIONS})
    errors: dict[str, int] = field(default_factory=lambda: {a: 0 for a in ACTIONS})
    samples: list[str] = field(default_factory=list)
    acknowledged: dict[str, str] = field(default_factory=dict)
    """Dossier id -> the last write the server acknowledged on it ("receive", "accept", "start")."""

    def record(self, action: str, started: float, response: httpx.Response | None, error: str = "") -> None:
        elapsed_ms = (time.perf_counter() - started) * 1000
        if response is not None and response.status_code < 400:
            self.latencies[action].append(elapsed_ms)
            return
        self.errors[action] += 1
        if len(self.samples) < 10:
            status = response.status_code if response is not None else error
            self.samples.append(f"{action}: {status}")


@dataclass
class Shared:
    url: str
    seeded: Seeded
    receive_forms: dict[str, Form]
    results: Results
    deadline: float
    think_s: float


async def log_in(client: httpx.AsyncClient, username: str) -> str:
    page = await client.get("/login")
    data = {"username": username, "password": PASSWORD, "csrf": csrf_of(page.text), "next": "/"}
    response = await client.post("/login", data=data)
    if response.status_code != 303:
        raise SystemExit(f"{username} could not log in: {response.status_code}")
    return csrf_of((await client.get("/")).text)


def receive_form(html: str, page_url: str) -> Form:
    for form in forms_of(html):
        if "applicant_name" in form.types:
            form.action = urljoin(page_url, form.action or page_url)
            return form
    raise SystemExit("the receive page has no form with applicant_name: update the benchmark")


def fill_receive(form: Form, csrf: str, rnd: random.Random) -> dict[str, str]:
    who = person(rnd)
    data = dict(form.fields)
    data.update(
        csrf=csrf,
        applicant_type="citizen",
        applicant_name=who.name,
        citizen_id=who.citizen_id,
        dob=who.dob.isoformat() if form.types.get("dob", "date") == "date" else f"{who.dob:%d/%m/%Y}",
        phone=who.phone,
        address=who.address,
        address_unit=UNIT,
    )
    data.pop("confirm_clock", None)
    # The form is fetched once and filled many times; a browser loads it afresh for each dossier,
    # with a new request key (the same key twice is the same dossier: a double submit).
    data["request_key"] = secrets.token_urlsafe(18)
    return data


class Clerk:
    """One logged-in clerk: its session (cookie and CSRF token) and the dossiers it is moving."""

    def __init__(self, n: int, client: httpx.AsyncClient, csrf: str, shared: Shared) -> None:
        self.rnd = random.Random(n)
        self.client = client
        self.csrf = csrf
        self.shared = shared
        self.pending: list[tuple[str, str]] = []  # (dossier id, its next action)

    async def do(self, action: str) -> None:
        """One request of ``action``, timed and recorded."""
        rnd, client, shared = self.rnd, self.client, self.shared
        if action == "action" and not self.pending:
            action = "receive"
        started = time.perf_counter()
        response: httpx.Response | None = None
        failure = ""
        try:
            if action == "list":
                page = rnd.choice(["", "", "?page=2", "?page=3", "?status=10"])
                response = await client.get(f"/dossiers{page}")
            elif action == "search":
                query = fold_text(rnd.choice(shared.seeded.names))
                response = await client.get("/dossiers", params={"q": query})
            elif action == "detail":
                response = await client.get(f"/dossiers/{rnd.choice(shared.seeded.ids)}")
            elif action == "receive":
                form = shared.receive_forms[rnd.choice(list(shared.receive_forms))]
                response = await client.post(
                    form.action,
                    data=fill_receive(form, self.csrf, rnd),
                    files=[("scans", ("giay-de-nghi.pdf", SCAN, "application/pdf"))],
                )
                found = re.search(r"/dossiers/([0-9a-f]+)/receipt", response.headers.get("location", ""))
                if response.status_code == 303 and found:
                    self.pending.append((found.group(1), "accept"))
                    shared.results.acknowledged[found.group(1)] = "receive"
                else:  # the form came back with the clerk's error: not received
                    alert = re.search(r'role="alert"[^>]*>([^<]*)', response.text)
                    failure = f"{response.status_code} {alert[1] if alert else ''}"
                    response = None
            else:
                dossier, step = self.pending.pop(0)
                data = {"action": step, "csrf": self.csrf}
                response = await client.post(f"/dossiers/{dossier}/actions", data=data)
                if response.status_code < 400:
                    shared.results.acknowledged[dossier] = step
                    if step == "accept":
                        self.pending.append((dossier, "start"))
            shared.results.record(action, started, response, failure)
        except httpx.HTTPError as exc:
            shared.results.record(action, started, None, type(exc).__name__)

    async def work(self) -> None:
        """Until the time is up: pick an action by the mix, do it, think, again."""
        choices, weights = list(MIX), list(MIX.values())
        while time.monotonic() < self.shared.deadline:
            await self.do(self.rnd.choices(choices, weights)[0])
            if self.shared.think_s:
                await asyncio.sleep(self.rnd.expovariate(1 / self.shared.think_s))


async def probe(shared: Shared, out: list[float], every_s: float = 0.1) -> None:
    """The baseline: a static file through the same server, sampled while the clerks work."""
    async with httpx.AsyncClient(base_url=shared.url, timeout=httpx.Timeout(10.0)) as client:
        while time.monotonic() < shared.deadline:
            started = time.perf_counter()
            response = await client.get("/static/app.css")
            if response.status_code == 200:
                out.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(every_s)


async def prepare(url: str) -> dict[str, Form]:
    """The real receive form of each pilot procedure, read once as a clerk's browser would."""
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(10.0)) as client:
        await log_in(client, "canbo01")
        forms = {}
        for procedure in PILOT_PROCEDURES:
            response = await client.get("/dossiers/new", params={"procedure": procedure.code})
            if response.status_code != 200:
                raise SystemExit(f"GET /dossiers/new?procedure={procedure.code}: {response.status_code}")
            forms[procedure.code] = receive_form(response.text, str(response.url))
        return forms


async def idle_baseline(url: str, count: int = 200) -> list[float]:
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(10.0)) as client:
        out = []
        for _ in range(count):
            started = time.perf_counter()
            (await client.get("/static/app.css")).raise_for_status()
            out.append((time.perf_counter() - started) * 1000)
        return out


Session = tuple[httpx.Cookies, str]
"""A logged-in clerk: the session cookie and the CSRF token of that session."""


async def log_in_all(url: str, clerks: int) -> list[Session]:
    """``clerks`` clerks (canbo01, canbo02 …) log in through the form, each on a connection of
    its own that is then closed (argon2 is meant to be slow, once a day: before any clock starts).

    The work then runs on fresh connections (:func:`clients`): a connection left idle while the
    others log in would reach uvicorn's keep-alive timeout (5 s) just as the work starts, and a
    request sent as the server closes it fails with no answer (httpx does not retry; a browser
    would). Sessions are signed cookies, so they outlive a restart of the server."""
    timeout = httpx.Timeout(10.0, connect=5.0)
    sessions = []
    for n in range(1, clerks + 1):
        async with httpx.AsyncClient(base_url=url, timeout=timeout) as login:
            token = await log_in(login, f"canbo{n:02d}")
            sessions.append((login.cookies, token))
    return sessions


@asynccontextmanager
async def clients(url: str, sessions: list[Session]) -> AsyncIterator[list[httpx.AsyncClient]]:
    """One client per session, each on its own connection (a browser tab per clerk)."""
    timeout = httpx.Timeout(10.0, connect=5.0)
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=url, timeout=timeout, limits=httpx.Limits(max_connections=1), cookies=cookies
                )
            )
            for cookies, _ in sessions
        ]


@asynccontextmanager
async def logged_in(url: str, clerks: int) -> AsyncIterator[tuple[list[httpx.AsyncClient], list[str]]]:
    """``clerks`` logged-in clients and their CSRF tokens (:func:`log_in_all`, :func:`clients`)."""
    sessions = await log_in_all(url, clerks)
    async with clients(url, sessions) as made:
        yield made, [token for _, token in sessions]


async def team_work(
    url: str,
    seeded: Seeded,
    forms: dict[str, Form],
    clients: list[httpx.AsyncClient],
    tokens: list[str],
    seconds: float,
    think_s: float,
    first_seed: int = 1,
) -> tuple[Results, list[float], float]:
    """Every clerk works for ``seconds`` while the static-file probe samples the server: the
    results, the probe's latencies (ms) and the elapsed time (s)."""
    shared = Shared(url, seeded, forms, Results(), 0.0, think_s)
    team = [
        Clerk(n, client, token, shared)
        for n, (client, token) in enumerate(zip(clients, tokens, strict=True), start=first_seed)
    ]
    baseline: list[float] = []
    started = time.monotonic()
    shared.deadline = started + seconds
    await asyncio.gather(probe(shared, baseline), *(c.work() for c in team))
    return shared.results, baseline, time.monotonic() - started
