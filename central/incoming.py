"""Attachments arriving in chunks over bad links: resumable, verified, deduplicated.

A blob being uploaded is a file ``DIR/blobs-incoming/<sha256>.part`` that only grows: a chunk
is appended when its offset is exactly the part's size, a chunk at an offset already written is
ignored (a retry after a lost reply), and every answer is the size held, so the sender resumes
from there. The sender never says the total size; the blob is complete when the part's SHA-256
equals its name, checked after every chunk (incrementally: each byte is hashed once while the
server runs). Then it moves into the blob store, and the part is gone. A blob already in the
store is complete from the first request on (deduplication by hash).
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

from sync.blobs import BlobNotFound, BlobStore, FileBlobStore, check_digest
from sync.errors import SyncError

MAX_BLOB_BYTES = 32 * 1024 * 1024
MAX_READ_BYTES = 4 * 1024 * 1024


class BlobTooLarge(SyncError):
    status = 413
    code = "blob_too_large"


class BadChunk(SyncError):
    status = 400
    code = "bad_chunk"


class Incoming:
    def __init__(self, root: str | Path, store: BlobStore, max_bytes: int = MAX_BLOB_BYTES) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.store = store
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._hashes: dict[str, tuple[int, Any]] = {}
        """sha -> (bytes hashed, running sha256 object) for parts being written."""

    def _part(self, digest: str) -> Path:
        return self.root / f"{check_digest(digest)}.part"

    def size(self, digest: str) -> int:
        """Bytes held of this blob: its full size once complete, 0 if nothing arrived."""
        with self._lock:
            return self._size(digest)

    def _size(self, digest: str) -> int:
        if self.store.has(check_digest(digest)):
            return self.store.size(digest)
        try:
            return self._part(digest).stat().st_size
        except FileNotFoundError:
            return 0

    def put(self, digest: str, offset: int, chunk: bytes) -> int:
        """Append ``chunk`` at ``offset`` if it is the next one; return the size held."""
        if offset < 0:
            raise BadChunk("a chunk's offset cannot be negative")
        with self._lock:
            if self.store.has(check_digest(digest)):
                return self.store.size(digest)
            part = self._part(digest)
            held = part.stat().st_size if part.exists() else 0
            if offset != held or not chunk:
                # Already written (a retry), or ahead of what arrived: the sender resumes from held.
                return held
            if held + len(chunk) > self.max_bytes:
                raise BlobTooLarge(
                    f"attachment {digest[:12]}… would exceed {self.max_bytes >> 20} MiB; refused"
                )
            with open(part, "ab") as out:
                out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            size = held + len(chunk)
            if self._complete(digest, part, held, chunk):
                self.store.put(part.read_bytes())
                part.unlink()
                self._hashes.pop(digest, None)
            return size

    def _complete(self, digest: str, part: Path, held: int, chunk: bytes) -> bool:
        hashed, running = self._hashes.get(digest, (0, None))
        if running is None or hashed != held:
            # First chunk since this process started: hash what was already on disk once.
            running = hashlib.sha256()
            with open(part, "rb") as existing:
                running.update(existing.read(held))
        running.update(chunk)
        self._hashes[digest] = (held + len(chunk), running)
        return bool(running.hexdigest() == digest)

    def read(self, digest: str, offset: int, size: int) -> bytes:
        """Bytes ``offset .. offset+size`` of a complete blob (short at its end)."""
        if offset < 0 or size <= 0:
            raise BadChunk("a read needs a non-negative offset and a positive size")
        size = min(size, MAX_READ_BYTES)
        if not self.store.has(check_digest(digest)):
            raise BlobNotFound(f"the city does not hold attachment {digest}")
        if isinstance(self.store, FileBlobStore):
            with open(self.store.path(digest), "rb") as blob:
                # Past the end there is nothing to read, and a seek past what the file system
                # allows (2**48, say) raises EINVAL: answer short, as at the end.
                if offset >= os.fstat(blob.fileno()).st_size:
                    return b""
                blob.seek(offset)
                return blob.read(size)
        return self.store.get(digest)[offset : offset + size]
