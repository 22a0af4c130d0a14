"""Attachments over a bad link: chunked, resumable both ways, verified, in scope only."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from urllib.parse import urlsplit

import pytest
from centralkit import CAI_KHE, NINH_KIEU, sync_round
from edgekit import CLOCK_OK, actor, sample_input

from central.incoming import BlobTooLarge, Incoming
from edge.dossiers import receive
from edge.uploads import check_scan
from sync import wire
from sync.blobs import BlobNotFound, FileBlobStore, MemoryBlobStore

CHUNK = 200 * 1024


def scan_bytes(size: int = 600 * 1024) -> bytes:
    return b"%PDF-1.4\n" + os.urandom(size - 9)


def cut_mid_request(url: str, path: str, body: bytes, headers: dict[str, str]) -> None:
    """Send the request line, the headers and half the body, then drop the connection."""
    parts = urlsplit(url)
    lines = [f"POST {path} HTTP/1.1", f"Host: {parts.hostname}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(head + body[: len(body) // 2])


def test_a_scan_uploads_in_chunks_resumes_after_a_cut_and_downloads_resumably(world):
    ninh_kieu, cai_khe = world.edges[NINH_KIEU], world.edges[CAI_KHE]
    sync_round(ninh_kieu, world.peer(NINH_KIEU))
    sync_round(cai_khe, world.peer(CAI_KHE))
    data = scan_bytes()
    scan = check_scan("giay-to.pdf", data, 15 << 20)
    received = receive(ninh_kieu, actor("canbo01"), sample_input(handling_unit=CAI_KHE), [scan], CLOCK_OK)
    sha = hashlib.sha256(data).hexdigest()
    assert ninh_kieu.blobs.has(sha)
    sync_round(ninh_kieu, world.peer(NINH_KIEU))

    peer = world.peer(NINH_KIEU)
    assert peer.blob_size(sha) == 0
    assert peer.put_blob(sha, 0, data[:CHUNK]) == CHUNK
    # The second chunk is cut halfway: nothing of it is kept.
    path = f"/sync/v1/blobs/{sha}/chunks/{CHUNK}"
    second = data[CHUNK : 2 * CHUNK]
    cut_mid_request(
        world.url,
        path,
        second,
        wire.sign_request(ninh_kieu.identity, "POST", path, second, ninh_kieu.clock.wall_ms()),
    )
    deadline = time.monotonic() + 10
    while not any(a.error_code == "disconnected" for a in world.city.fleet.attempts(ninh_kieu.identity.node)):
        assert time.monotonic() < deadline, "the server did not notice the cut"
        time.sleep(0.05)

    resumed = world.peer(NINH_KIEU)
    offset = resumed.blob_size(sha)
    assert offset == CHUNK
    assert resumed.put_blob(sha, 0, data[:CHUNK]) == CHUNK  # a retried chunk changes nothing
    assert resumed.put_blob(sha, 3 * CHUNK, b"ahead") == CHUNK  # a chunk after a gap neither
    while offset < len(data):
        offset = resumed.put_blob(sha, offset, data[offset : offset + CHUNK])
    assert offset == len(data)
    assert world.city.node.blobs.get(sha) == data
    assert not list((world.city.node.data_dir / "blobs-incoming").iterdir())
    assert resumed.blob_size(sha) == len(data)
    assert resumed.put_blob(sha, 0, data[:10]) == len(data)  # deduplicated: already complete

    # The handling unit learns of it with the dossier, and downloads it resumably.
    reply = world.peer(CAI_KHE).pull(wire.PullRequest(0))
    assert sha in reply.blobs
    got = world.peer(CAI_KHE).get_blob(sha, 0, 250_000)
    got += world.peer(CAI_KHE).get_blob(sha, len(got), 250_000)  # after a reconnect
    got += world.peer(CAI_KHE).get_blob(sha, len(got), 250_000)
    assert got == data
    assert world.city.node.replica.state("dossier", received.id)["attachments"][sha]["size"] == len(data)


def test_a_scan_outside_the_scope_is_not_served(world):
    ninh_kieu = world.edges[NINH_KIEU]
    sync_round(ninh_kieu, world.peer(NINH_KIEU))
    data = scan_bytes(50_000)
    scan = check_scan("cmnd.pdf", data, 15 << 20)
    receive(ninh_kieu, actor("canbo01"), sample_input(), [scan], CLOCK_OK)
    sync_round(ninh_kieu, world.peer(NINH_KIEU))
    sha = hashlib.sha256(data).hexdigest()
    assert world.peer(NINH_KIEU).put_blob(sha, 0, data) == len(data)
    assert world.peer(NINH_KIEU).get_blob(sha, 0, 100) == data[:100]
    with pytest.raises(BlobNotFound):
        world.peer(CAI_KHE).get_blob(sha, 0, 100)
    with pytest.raises(BlobNotFound):
        world.peer(NINH_KIEU).get_blob("0" * 64, 0, 100)


def test_the_wrong_bytes_never_become_the_blob(tmp_path):
    store = MemoryBlobStore()
    incoming = Incoming(tmp_path, store)
    data = scan_bytes(30_000)
    sha = hashlib.sha256(data).hexdigest()
    assert incoming.put(sha, 0, b"x" * 30_000) == 30_000
    assert not store.has(sha)
    assert incoming.put(sha, 30_000, data) == 60_000  # it keeps growing, never matching
    assert not store.has(sha)


def test_an_upload_resumes_after_a_restart_of_the_server(tmp_path):
    store = MemoryBlobStore()
    data = scan_bytes(90_000)
    sha = hashlib.sha256(data).hexdigest()
    assert Incoming(tmp_path, store).put(sha, 0, data[:40_000]) == 40_000
    again = Incoming(tmp_path, store)
    assert again.size(sha) == 40_000
    assert again.put(sha, 40_000, data[40_000:]) == 90_000
    assert store.get(sha) == data


def test_an_attachment_over_the_limit_is_refused(tmp_path):
    incoming = Incoming(tmp_path, MemoryBlobStore(), max_bytes=1000)
    sha = "a" * 64
    assert incoming.put(sha, 0, b"x" * 800) == 800
    with pytest.raises(BlobTooLarge):
        incoming.put(sha, 800, b"x" * 300)
    assert incoming.size(sha) == 800


def test_a_read_past_the_end_of_a_scan_is_empty_however_far(tmp_path):
    """Found by schemathesis: an offset of 2**48 made the seek fail (EINVAL) and the city answer 500."""
    store = FileBlobStore(tmp_path / "blobs")
    data = scan_bytes(1000)
    sha = store.put(data)
    incoming = Incoming(tmp_path / "incoming", store)
    assert incoming.read(sha, 990, 100) == data[990:]
    for offset in (1000, 2**48, 2**63 - 1, 10**30):
        assert incoming.read(sha, offset, 100) == b""
