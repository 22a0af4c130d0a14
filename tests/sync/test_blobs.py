"""One contract test for every blob store (the file store and the in-memory fake)."""

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.blobs import BlobNotFound, CorruptBlob, FileBlobStore, MemoryBlobStore


@pytest.fixture(params=["file", "memory"])
def store(request, tmp_path):
    return FileBlobStore(tmp_path / "blobs") if request.param == "file" else MemoryBlobStore()


def test_put_returns_sha256_and_get_returns_the_bytes(store):
    data = b"%PDF-1.4 scan of a household registration form"
    digest = store.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert store.get(digest) == data
    assert store.has(digest)
    assert store.size(digest) == len(data)


def test_put_twice_stores_once(store):
    first = store.put(b"same scan")
    second = store.put(b"same scan")
    assert first == second
    assert list(store.digests()) == [first]


def test_unknown_and_malformed_digests_are_not_found(store):
    with pytest.raises(BlobNotFound):
        store.get("0" * 64)
    with pytest.raises(BlobNotFound):
        store.get("../../etc/passwd")
    assert not store.has("0" * 64)
    with pytest.raises(BlobNotFound):
        store.size("f" * 64)


def test_a_damaged_file_is_refused_not_served(tmp_path):
    store = FileBlobStore(tmp_path)
    digest = store.put(b"original scan bytes")
    store.path(digest).write_bytes(b"flipped")
    with pytest.raises(CorruptBlob):
        store.get(digest)


def test_no_partial_file_is_left_under_a_final_name(tmp_path):
    store = FileBlobStore(tmp_path)
    digest = store.put(b"x" * 10_000)
    leftovers = [p for p in tmp_path.rglob(".incoming-*")]
    assert leftovers == []
    assert store.path(digest).stat().st_size == 10_000


@settings(max_examples=30, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_round_trip_any_bytes(tmp_path_factory, blobs):
    for store in (FileBlobStore(tmp_path_factory.mktemp("b")), MemoryBlobStore()):
        digests = [store.put(b) for b in blobs]
        assert [store.get(d) for d in digests] == blobs
        assert sorted(set(digests)) == list(store.digests())
