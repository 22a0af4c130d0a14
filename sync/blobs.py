"""Content-addressed blob stores: attachments (scans) by their SHA-256.

Contract of every :class:`BlobStore`:

- ``put(data)`` stores bytes and returns their hex SHA-256; putting the same bytes twice stores
  them once (idempotent).
- ``get(digest)`` returns the bytes; an unknown digest raises :class:`BlobNotFound`. A store
  never returns bytes whose hash is not ``digest`` (a corrupt file raises :class:`CorruptBlob`).
- ``has(digest)``, ``size(digest)`` (BlobNotFound if absent), ``digests()`` iterate what is held.
- Writes are atomic: a crash mid-write leaves no blob under the final name.

:class:`FileBlobStore` keeps blobs as files ``ab/cdef…`` under a root; :class:`MemoryBlobStore`
is the in-memory fake used by unit tests. One contract test runs against both.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from sync.errors import SyncError

_DIGEST = re.compile(r"[0-9a-f]{64}")


class BlobNotFound(SyncError):
    status = 404
    code = "blob_not_found"


class CorruptBlob(SyncError):
    code = "corrupt_blob"


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_digest(digest: str) -> str:
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise BlobNotFound(f"not a sha256 digest: {digest!r}")
    return digest


class BlobStore(Protocol):
    def put(self, data: bytes) -> str: ...
    def get(self, digest: str) -> bytes: ...
    def has(self, digest: str) -> bool: ...
    def size(self, digest: str) -> int: ...
    def digests(self) -> Iterator[str]: ...


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class MemoryBlobStore:
    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}

    def put(self, data: bytes) -> str:
        digest = digest_of(data)
        self._blobs.setdefault(digest, bytes(data))
        return digest

    def get(self, digest: str) -> bytes:
        try:
            return self._blobs[check_digest(digest)]
        except KeyError:
            raise BlobNotFound(f"no blob {digest}") from None

    def has(self, digest: str) -> bool:
        return digest in self._blobs

    def size(self, digest: str) -> int:
        return len(self.get(digest))

    def digests(self) -> Iterator[str]:
        return iter(sorted(self._blobs))


class FileBlobStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            self.root.mkdir(parents=True, exist_ok=True)
            _fsync_dir(self.root.parent)  # or a power cut could take the new store's name with it

    def path(self, digest: str) -> Path:
        digest = check_digest(digest)
        return self.root / digest[:2] / digest[2:]

    def put(self, data: bytes) -> str:
        digest = digest_of(data)
        target = self.path(digest)
        if target.exists():
            return digest
        if not target.parent.is_dir():
            target.parent.mkdir(exist_ok=True)
            _fsync_dir(self.root)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
            # The rename is durable only once its directory is: without this a power cut can
            # leave the op that references the blob and no blob under its name.
            _fsync_dir(target.parent)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def get(self, digest: str) -> bytes:
        try:
            data = self.path(digest).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(f"no blob {digest}") from None
        if digest_of(data) != digest:
            raise CorruptBlob(f"blob {digest} is damaged on disk")
        return data

    def has(self, digest: str) -> bool:
        try:
            return self.path(digest).is_file()
        except BlobNotFound:
            return False

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(f"no blob {digest}") from None

    def digests(self) -> Iterator[str]:
        for sub in sorted(self.root.iterdir()):
            if sub.is_dir() and len(sub.name) == 2:
                for f in sorted(sub.iterdir()):
                    if not f.name.startswith("."):
                        yield sub.name + f.name
