"""A fault-injecting TCP proxy for tests: a bad link between an edge and central, on loopback.

It forwards 127.0.0.1:<port> to a target, and on command cuts connections at a byte offset,
stalls, delays every chunk, resets (RST), refuses connections (link down), replays a whole
request on a fresh upstream connection (a duplicated request), or withholds one HTTP request and
delivers it after the requests of the next connection (reordering: a request overtaken by later
ones, as a congested middlebox with a retry queue does). It runs its own asyncio loop in a
daemon thread so synchronous tests and real servers can use it alike. Bounded: it only ever
talks to the one target it was given.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import struct
import threading
from dataclasses import dataclass, field


@dataclass
class Faults:
    down: bool = False
    """Refuse every connection (close it at once): the link is down."""
    cut_upstream_after: int | None = None
    """Close the connection after this many client->server bytes (then clears itself)."""
    cut_downstream_after: int | None = None
    """Close the connection after this many server->client bytes (then clears itself)."""
    reset: bool = False
    """Answer the next connection with a TCP reset (then clears itself)."""
    stall_s: float = 0.0
    """Hold every chunk this long before forwarding (a stalled link)."""
    delay_s: float = 0.0
    """Latency added to every chunk."""
    duplicate_next: bool = False
    """Replay the next connection's client bytes on a second upstream connection."""
    hold_request: int | None = None
    """Withhold request number N (0-based, HTTP/1.1 with a Content-Length) of the next
    connection: the requests before it go through, then the connection breaks; the withheld
    request is delivered on a fresh upstream connection once the next connection after it has
    ended, i.e. after later requests (then clears itself)."""


@dataclass
class Stats:
    connections: int = 0
    upstream_bytes: int = 0
    downstream_bytes: int = 0
    cuts: int = 0
    duplicates: int = 0
    refused: int = 0
    held: int = 0
    released: int = 0
    events: list[str] = field(default_factory=list)


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        if target_host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the fault proxy only forwards to loopback")
        self.target = (target_host, target_port)
        self.faults = Faults()
        self.stats = Stats()
        self.port = 0
        self._held: bytes | None = None
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._loop.stop()

        self._loop.call_soon_threadsafe(lambda: self._loop.create_task(shutdown()))
        self._thread.join(10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    # --- controls (thread-safe: plain attribute writes) -----------------------------------

    def set(self, **faults: object) -> None:
        for name, value in faults.items():
            if not hasattr(self.faults, name):
                raise AttributeError(name)
            setattr(self.faults, name, value)

    def heal(self) -> None:
        self.faults = Faults()

    # --- the proxy ------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        f = self.faults
        if f.down:
            self.stats.refused += 1
            writer.close()
            return
        if f.reset:
            f.reset = False
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.stats.events.append("reset")
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        if f.hold_request is not None:
            hold, f.hold_request = f.hold_request, None
            await self._withhold(reader, writer, up_reader, up_writer, hold)
            return
        duplicate = f.duplicate_next
        f.duplicate_next = False
        recorded = bytearray()
        cut_up, cut_down = f.cut_upstream_after, f.cut_downstream_after
        f.cut_upstream_after = f.cut_downstream_after = None
        done = asyncio.Event()

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, upstream: bool) -> None:
            budget = cut_up if upstream else cut_down
            try:
                while not done.is_set():
                    chunk = await src.read(16384)
                    if not chunk:
                        break
                    if self.faults.stall_s:
                        await asyncio.sleep(self.faults.stall_s)
                    if self.faults.delay_s:
                        await asyncio.sleep(self.faults.delay_s)
                    if budget is not None:
                        if len(chunk) >= budget:
                            dst.write(chunk[:budget])
                            await dst.drain()
                            self.stats.cuts += 1
                            self.stats.events.append("cut-up" if upstream else "cut-down")
                            break
                        budget -= len(chunk)
                    if upstream:
                        self.stats.upstream_bytes += len(chunk)
                        if duplicate:
                            recorded.extend(chunk)
                    else:
                        self.stats.downstream_bytes += len(chunk)
                    dst.write(chunk)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                # One direction ended (EOF, cut or error): end the other too, as a broken link does.
                done.set()
                for w in (writer, up_writer):
                    with contextlib.suppress(ConnectionError, OSError):
                        w.close()

        try:
            await asyncio.gather(pump(reader, up_writer, True), pump(up_reader, writer, False))
        except asyncio.CancelledError:
            return  # the proxy is stopping
        if duplicate and recorded:
            await self._replay(bytes(recorded))
        await self._release()

    async def _send_alone(self, data: bytes) -> bool:
        """Send a request's bytes on a new upstream connection and wait for the answer's start;
        False when the target did not take it."""
        try:
            r, w = await asyncio.open_connection(*self.target)
            w.write(data)
            await w.drain()
            await asyncio.wait_for(r.read(65536), timeout=5)
            w.close()
        except (OSError, TimeoutError):
            return False
        return True

    async def _replay(self, data: bytes) -> None:
        """Send a request's bytes again on a new connection, as a retrying middlebox would."""
        if await self._send_alone(data):
            self.stats.duplicates += 1
            self.stats.events.append("duplicate")

    # --- reordering: one request withheld, delivered after the next connection -------------

    async def _withhold(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
        index: int,
    ) -> None:
        """Forward requests 0..index-1 of this connection (and their answers), keep request
        ``index`` aside, then break the connection as a failing link would."""
        answers = asyncio.create_task(_copy(up_reader, writer))
        try:
            for number in itertools.count():
                request = await _read_request(reader)
                if request is None:
                    break
                if number == index:
                    self._held = request
                    self.stats.held += 1
                    self.stats.events.append("held")
                    break
                self.stats.upstream_bytes += len(request)
                up_writer.write(request)
                await up_writer.drain()
        except (ConnectionError, OSError, ValueError):
            pass
        except asyncio.CancelledError:
            answers.cancel()
            return
        # Let the answers already on their way arrive, then break both sides.
        await asyncio.sleep(0.05)
        answers.cancel()
        for w in (writer, up_writer):
            with contextlib.suppress(ConnectionError, OSError):
                w.close()

    async def _release(self) -> None:
        """Deliver the withheld request, if any, now that a later connection has ended."""
        data, self._held = self._held, None
        if data is not None and await self._send_alone(data):
            self.stats.released += 1
            self.stats.events.append("released")


async def _copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while chunk := await src.read(16384):
            dst.write(chunk)
            await dst.drain()


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    """One whole HTTP/1.1 request (head and Content-Length body) as bytes; None at EOF.
    Raises ValueError for a request this simple reader cannot frame (chunked bodies)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"transfer-encoding":
            raise ValueError("chunked request bodies are not framed by the fault proxy")
        if name == b"content-length":
            length = int(value.strip())
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        return None
    return head + body
