"""The background sync loop: a round (:func:`edge.syncclient.sync_once`) at start, then every
``sync_interval_s``; after failures it backs off exponentially with jitter up to
``sync_max_backoff_s``, a refusal (revoked, refused, bad signature) waits the longest; "Sync now"
wakes it at once. It runs while the web app serves (:func:`lifespan`), rounds in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio.to_thread

from edge.node import Node
from edge.settings import Settings
from edge.syncclient import PeerFactory, RoundResult, close_peer, http_peer, sync_once, syncs_with_city
from sync.transport import Peer

log = logging.getLogger("motcua.sync")


def next_delay_s(
    result: RoundResult | None, failures: int, settings: Settings, rand: Callable[[], float] = random.random
) -> float:
    """Seconds until the next round. ``failures`` counts the failed rounds in a row (this one
    included). A fatal error (revoked, refused, bad signature) waits the longest: retrying soon
    cannot help, and the badge keeps showing it."""
    interval, ceiling = float(settings.sync_interval_s), float(settings.sync_max_backoff_s)
    if result is not None and result.error is None:
        return interval
    if result is None or not result.retryable:
        return ceiling
    grown = min(ceiling, interval * 2.0 ** max(0, failures - 1))
    return float(grown / 2 + rand() * grown / 2)  # jitter: a fleet back online does not come at once


class SyncLoop:
    """Runs a round every ``sync_interval_s`` in a worker thread, backing off after failures;
    :meth:`wake` asks for a round now. Start and stop it from the app's lifespan."""

    def __init__(self, node: Node, settings: Settings, factory: PeerFactory = http_peer) -> None:
        self.node = node
        self.settings = settings
        self.factory = factory
        self.failures = 0
        self.last: RoundResult | None = None
        self._peer: Peer | None = None
        self._wake = asyncio.Event()
        self._stopping = threading.Event()
        self._waiters: list[asyncio.Future[RoundResult | None]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="motcua-sync")

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        close_peer(self._peer)
        self._peer = None

    def wake(self) -> asyncio.Future[RoundResult | None]:
        """Ask for a round now; the future resolves when a round that started after this call ends."""
        future: asyncio.Future[RoundResult | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        self._wake.set()
        return future

    def _round(self) -> RoundResult:
        if self._peer is None:
            self._peer = self.factory(self.node)
        return sync_once(self.node, self._peer, self.settings, stop=self._stopping.is_set)

    async def _run(self) -> None:
        delay = 0.0  # a round at start: the clock is calibrated before clerks print anything
        while not self._stopping.is_set():
            if delay > 0 and not self._wake.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
            if self._stopping.is_set():
                return
            self._wake.clear()
            waiters, self._waiters = self._waiters, []
            result: RoundResult | None = None
            try:
                result = await anyio.to_thread.run_sync(self._round)
            except Exception:
                log.exception("sync round crashed")
            finally:
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(result)
            self.last = result
            self.failures = 0 if result is not None and result.error is None else self.failures + 1
            delay = next_delay_s(result, self.failures, self.settings)


def lifespan(
    node: Node, settings: Settings, factory: PeerFactory = http_peer, *, background: bool = True
) -> Callable[[Any], contextlib.AbstractAsyncContextManager[None]]:
    """The web app's lifespan: the background loop runs while the app serves, only for a node
    that has a city to sync with, and only when ``background`` (unit tests turn it off)."""

    @contextlib.asynccontextmanager
    async def run(app: Any) -> AsyncIterator[None]:
        loop = SyncLoop(node, settings, factory) if background and syncs_with_city(node) else None
        # WAL checkpoints leave the clerks' and the boxes' commits (sync/checkpoint.py).
        checkpoints = node.replica.checkpointer() if background else None
        app.state.sync_loop = loop
        if checkpoints is not None:
            checkpoints.start()
        if loop is not None:
            loop.start()
        try:
            yield
        finally:
            if loop is not None:
                await loop.stop()
            app.state.sync_loop = None
            if checkpoints is not None:
                await anyio.to_thread.run_sync(checkpoints.stop)

    return run
