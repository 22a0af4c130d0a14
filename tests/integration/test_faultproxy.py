"""The fault proxy itself: it forwards, and each fault does what the link tests rely on."""

import http.server
import threading
import time

import httpx
import pytest
from faultproxy import FaultProxy


class Echo(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        if len(body) < length:
            return  # the link was cut mid-request: nothing was handled
        self.server.hits += 1  # per server: a late replay from another test cannot count here
        self.server.bodies.append(body)
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    srv.hits = 0
    srv.bodies = []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def proxy(server):
    with FaultProxy("127.0.0.1", server.server_address[1]) as p:
        yield p


def post(proxy, body=b"x" * 1000):
    with httpx.Client(timeout=3) as client:
        return client.post(proxy.url + "/", content=body)


def test_forwards_when_healthy(proxy):
    assert post(proxy).content == b"x" * 1000
    assert proxy.stats.upstream_bytes > 1000


def test_down_link_refuses(proxy):
    proxy.set(down=True)
    with pytest.raises(httpx.TransportError):
        post(proxy)
    proxy.heal()
    assert post(proxy).status_code == 200


def test_cut_mid_response_breaks_the_request(proxy):
    proxy.set(cut_downstream_after=50)
    with pytest.raises(httpx.TransportError):
        post(proxy)
    assert proxy.stats.cuts == 1
    assert post(proxy).status_code == 200  # the cut was one-shot


def test_cut_mid_request_is_never_handled(proxy, server):
    proxy.set(cut_upstream_after=600)  # past the headers (~170 bytes), inside the body
    with pytest.raises(httpx.TransportError):
        post(proxy)
    assert server.hits == 0


def test_reset_is_a_transport_error(proxy):
    proxy.set(reset=True)
    with pytest.raises(httpx.TransportError):
        post(proxy)


def test_duplicate_replays_the_request(proxy, server):
    proxy.set(duplicate_next=True)
    assert post(proxy).status_code == 200
    for _ in range(50):
        if proxy.stats.duplicates:
            break
        threading.Event().wait(0.05)
    assert server.hits == 2


def test_refuses_to_forward_anywhere_but_loopback():
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy("10.0.0.1", 80)


def test_reorder_withholds_a_request_and_delivers_it_after_the_next_connection(proxy, server):
    """hold_request=0: the next connection's first request is kept and the connection breaks;
    the kept request reaches the server only after the next connection's request."""
    proxy.set(hold_request=0)
    with pytest.raises(httpx.TransportError):
        post(proxy, b"held")
    assert server.hits == 0
    assert proxy.stats.held == 1
    assert post(proxy, b"later").content == b"later"
    deadline = time.monotonic() + 5
    while proxy.stats.released < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proxy.stats.released == 1
    # The held request is released as soon as the later connection ends, which may be before
    # this thread looks: the order the server saw them in is what counts.
    assert server.bodies == [b"later", b"held"]
    assert proxy.stats.events[-2:] == ["held", "released"]
