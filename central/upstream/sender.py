"""The sender: takes the outbox into each adapter's queue and delivers it, one dossier at a time.

One :class:`Sender` per adapter, in one thread (:class:`Runner`), holding the adapter's lock
file ``DIR/upstream/NAME.lock`` so that the city's server and ``motcua upstream run`` never
both send for one adapter: one dossier is never in flight twice.

For each due queue item, the dossier's *newest* state is read from the city's replica and
sent (coalesced: a dossier that moved three times while the portal was down is sent once):

- a dossier the portal does not hold is created; just before the create, ``portal.created``
  becomes "unknown", so a crash (or a cut connection) before the answer makes the next try look
  it up first (``TraCuuHoSo``) and update instead of creating twice;
- a dossier it holds is updated (an upsert of the newest state), then its newest step is
  reported (``CapNhatTienDoHoSoMC``);
- network errors, 5xx and 429 are tried again after an exponential back-off with full jitter
  (1 s doubling to 5 min), or after the portal's Retry-After when it gave one; refused
  credentials likewise (configuration, so the page shows it);
- a validation refusal is a dead letter with the portal's code and message, until someone
  sends it again (page, ``motcua upstream retry``) or a newer state of the dossier arrives;
- a unit or sector without its portal code blocks the dossier (a configuration error shown on
  the page) until codes are imported; so does a portal code another dossier already went under.

Every request, logins and lookups included, is a signed receipt (:mod:`.receipts`).
"""

from __future__ import annotations

import fcntl
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from central.upstream import mapping
from central.upstream.adapter import Adapter, Answer, Exchange, Verdict
from central.upstream.dvcqg import DvcqgAdapter
from central.upstream.lgsp import LgspAdapter
from central.upstream.outbox import PROGRESS, pending_after
from central.upstream.receipts import Receipt
from central.upstream.store import (
    BLOCKED,
    DEAD,
    NO,
    SECRETS_DIR,
    UNKNOWN,
    WAIT,
    YES,
    AdapterConfig,
    Item,
    UpstreamStore,
    read_secret,
)
from sync.fold import State
from sync.replica import Replica

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 300.0
BLOCKED_RECHECK_S = 600.0
"""A blocked dossier is looked at again this often even when no codes were imported."""
IDLE_S = 0.5
TAKE_BATCH = 500


def backoff_s(tries: int, rng: random.Random) -> float:
    """Full jitter over an exponential ceiling: ``uniform(ceiling/2, ceiling)``."""
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * (2 ** min(tries, 20)))
    return rng.uniform(ceiling / 2, ceiling)


class RateLimit:
    """At most ``per_s`` requests a second (a minimum interval between them)."""

    def __init__(self, per_s: float, sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 1.0 / per_s if per_s > 0 else 0.0
        self._next = 0.0
        self._sleep = sleep

    def wait(self) -> None:
        now = time.monotonic()
        if now < self._next:
            self._sleep(self._next - now)
            now = self._next
        self._next = now + self.interval


def make_adapter(data_dir: Path, config: AdapterConfig, on_exchange: Callable[[Exchange], None]) -> Adapter:
    secret = read_secret(data_dir / config.secret_file)
    if config.kind == "dvcqg":
        return DvcqgAdapter(config.url, config.username, secret, on_exchange)
    if config.kind == "lgsp":
        return LgspAdapter(config.url, config.username, secret, on_exchange)
    raise ValueError(f"unknown adapter kind {config.kind!r}")


class Sender:
    """Delivers one adapter's queue. Not thread-safe: one thread per sender."""

    def __init__(
        self,
        config: AdapterConfig,
        store: UpstreamStore,
        replica: Replica,
        sign: Callable[[bytes], bytes],
        adapter_factory: Callable[[Callable[[Exchange], None]], Adapter],
        *,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.replica = replica
        self.sign = sign
        self.now_ms = now_ms
        self.rng = rng or random.Random()  # noqa: S311 (jitter, not a secret)
        self.limit = RateLimit(config.rate_per_s)
        self.adapter = adapter_factory(self._receipt)
        self._current: tuple[str, int, int] = ("", 0, 0)
        self._units: dict[str, str] = {}
        self._units_at = 0.0

    def close(self) -> None:
        self.adapter.close()

    # --- the outbox -------------------------------------------------------------------------

    def take(self) -> int:
        """Queue what the outbox gained since this adapter's cursor; how many rows."""
        total = 0
        while True:
            cursor = self.store.cursor(self.config.name)
            with self.replica.reading() as conn:
                rows = pending_after(conn, cursor, TAKE_BATCH)
            if not rows:
                return total
            total += self.store.take(self.config.name, rows, self.now_ms())
            if len(rows) < TAKE_BATCH:
                return total

    # --- one round --------------------------------------------------------------------------

    def round(self) -> int:
        """Take the outbox, then deliver what is due; returns how many items were tried."""
        self.take()
        tried = 0
        for item in self.store.due(self.config.name, self.now_ms()):
            self.deliver(item)
            tried += 1
        return tried

    def deliver(self, item: Item) -> None:
        state = self.replica.state("dossier", item.dossier)
        if state is None or not state.get("_created"):
            self._later(item, BLOCKED, None, "the city holds no such dossier")
            return
        codes = self.store.codes()
        units = self._unit_names()
        try:
            unit = mapping.unit_of(state, codes)
            if item.op == PROGRESS:
                self._deliver_progress(item, state, unit, units, codes)
            else:
                procedure = self.replica.state("procedure", str(state["procedure"]))
                record = mapping.dossier_record(state, procedure, units, codes)
                self._deliver_record(item, state, unit, record)
        except mapping.MissingCode as exc:
            self._later(item, BLOCKED, "config", str(exc))

    def _deliver_record(self, item: Item, state: State, unit: str, record: Mapping[str, Any]) -> None:
        name = self.config.name
        stamp, status, code = int(state["_stamp"]), int(state["status"]), str(record["MaHoSo"])
        self._current = (item.dossier, stamp, status)
        held = self.store.delivered(name, item.dossier)
        created = held.created if held is not None else NO
        if created == UNKNOWN:
            self.limit.wait()
            self._current = (item.dossier, 0, 0)
            found = self.adapter.lookup(unit, code)
            self._current = (item.dossier, stamp, status)
            if found.verdict is Verdict.OK:
                created = YES
            elif found.verdict is Verdict.MISSING:
                created = NO
            else:
                self._failed(item, found)
                return
        if created != YES:
            owner = self.store.code_owner(name, code, item.dossier)
            if owner is not None:
                # Never let one dossier overwrite another on the portal (a box restored from an
                # old backup could issue a code twice): city IT decides, from the page.
                self._later(
                    item, BLOCKED, "code", f"MaHoSo {code} is already the portal code of dossier {owner}"
                )
                return
            self.store.mark_created(name, item.dossier, code, UNKNOWN)
            self.limit.wait()
            answer = self.adapter.sync_dossier(unit, record, update=False)
            if answer.verdict is Verdict.DUPLICATE:
                created = YES
            elif answer.verdict is Verdict.OK:
                self.store.done(name, item, stamp, status, self.now_ms())
                return
            else:
                if answer.verdict is Verdict.REFUSED:
                    self.store.mark_created(name, item.dossier, code, NO)
                self._failed(item, answer)
                return
        self.store.mark_created(name, item.dossier, code, YES)
        self.limit.wait()
        answer = self.adapter.sync_dossier(unit, record, update=True)
        if answer.verdict is Verdict.OK:
            self.store.done(name, item, stamp, status, self.now_ms())
        else:
            self._failed(item, answer)

    def _deliver_progress(
        self, item: Item, state: State, unit: str, units: Mapping[str, str], codes: mapping.Codes
    ) -> None:
        held = self.store.delivered(self.config.name, item.dossier)
        if held is None or held.created != YES:
            # Its record goes first; look again shortly (the record is ordered before steps).
            self.store.later(
                item, WAIT, self.now_ms() + 2_000, None, "waiting for the dossier's record", self.now_ms()
            )
            return
        step = mapping.progress_record(state, units, codes)
        stamp, status = int(state["_stamp"]), int(state["status"])
        if step is None:
            self.store.done(self.config.name, item, stamp, status, self.now_ms())
            return
        self._current = (item.dossier, stamp, status)
        self.limit.wait()
        answer = self.adapter.progress(unit, step)
        if answer.verdict is Verdict.OK:
            self.store.done(self.config.name, item, stamp, status, self.now_ms())
        else:
            if answer.verdict is Verdict.MISSING:
                self.store.mark_created(self.config.name, item.dossier, held.mahoso, UNKNOWN)
            self._failed(item, answer)

    def _failed(self, item: Item, answer: Answer) -> None:
        if answer.verdict is Verdict.REFUSED:
            self._later(item, DEAD, answer.portal_code, answer.message)
            return
        retry_after = answer.retry_after_s
        delay = retry_after if retry_after is not None else backoff_s(item.tries, self.rng)
        self.store.later(
            item, WAIT, self.now_ms() + int(delay * 1000), answer.portal_code, answer.message, self.now_ms()
        )

    def _later(self, item: Item, state: str, code: str | None, message: str | None) -> None:
        delay_ms = int(BLOCKED_RECHECK_S * 1000) if state == BLOCKED else 0
        self.store.later(item, state, self.now_ms() + delay_ms, code, message, self.now_ms())

    def _receipt(self, exchange: Exchange) -> None:
        dossier, stamp, status = self._current
        self.store.add_receipt(
            Receipt(
                at_ms=exchange.started_ms,
                adapter=self.config.name,
                dossier=dossier,
                portal_code=exchange.dossier,
                service=exchange.service,
                body_sha256=exchange.body_sha256,
                http_status=exchange.status,
                error_code=exchange.portal_code,
                message=exchange.message,
                verdict=str(exchange.verdict),
                duration_ms=exchange.duration_ms,
                stamp=stamp,
                status=status,
            ),
            self.sign,
        )

    def _unit_names(self) -> dict[str, str]:
        if not self._units or time.monotonic() - self._units_at > 60:
            states = self.replica.states("unit")
            self._units = {entity: str(s.get("name", entity)) for (_, entity), s in states.items()}
            self._units_at = time.monotonic()
        return self._units


class Runner:
    """The senders of every configured adapter, each in its own thread, while the city runs."""

    def __init__(
        self, data_dir: Path, store: UpstreamStore, replica: Replica, sign: Callable[[bytes], bytes]
    ) -> None:
        self.data_dir = data_dir
        self.store = store
        self.replica = replica
        self.sign = sign
        self.stop_event = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._watcher: threading.Thread | None = None

    def start(self) -> None:
        self._watcher = threading.Thread(target=self._watch, name="upstream", daemon=True)
        self._watcher.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self.stop_event.set()
        if self._watcher is not None:
            self._watcher.join(timeout_s)
        for thread in self._threads.values():
            thread.join(timeout_s)

    def _watch(self) -> None:
        while not self.stop_event.is_set():
            for config in self.store.adapters():
                if config.name not in self._threads:
                    thread = threading.Thread(
                        target=self._run, args=(config,), name=f"upstream-{config.name}", daemon=True
                    )
                    self._threads[config.name] = thread
                    thread.start()
            self.stop_event.wait(2.0)

    def _run(self, config: AdapterConfig) -> None:
        lock_path = self.data_dir / SECRETS_DIR / f"{config.name}.lock"
        lock_path.parent.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while not self.stop_event.is_set():
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    self.stop_event.wait(2.0)  # another process sends for this adapter
            else:
                return
            self._send(config)
        finally:
            os.close(fd)

    def _send(self, config: AdapterConfig) -> None:
        sender: Sender | None = None
        while not self.stop_event.is_set():
            try:
                if sender is None:
                    sender = Sender(
                        config,
                        self.store,
                        self.replica,
                        self.sign,
                        lambda on_exchange: make_adapter(self.data_dir, config, on_exchange),
                    )
                if sender.round() == 0:
                    self.stop_event.wait(IDLE_S)
            except Exception as exc:  # the loop must outlive a bad round; the page shows the error
                print(f"upstream {config.name}: {type(exc).__name__}: {exc}", flush=True)
                self.stop_event.wait(5.0)
        if sender is not None:
            sender.close()
