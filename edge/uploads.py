"""Uploaded scans: type checked by content, size bounded, names made safe, stored by sha256."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from starlette.formparsers import MultiPartException

from edge.errors import InvalidInput, TooLarge

# What a file *is*, from its first bytes; the name and the browser's content type are hints only.
_SIGNATURES: tuple[tuple[bytes, str, str], ...] = (
    (b"%PDF-", "application/pdf", ".pdf"),
    (b"\xff\xd8\xff", "image/jpeg", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
)
MAX_NAME = 120


@dataclass(frozen=True)
class Scan:
    name: str
    mime: str
    data: bytes


def sniff(data: bytes) -> str | None:
    for magic, mime, _ in _SIGNATURES:
        if data.startswith(magic):
            return mime
    return None


def safe_name(name: str, mime: str) -> str:
    """Keep the clerk's file name readable (Vietnamese letters too) but harmless: no path, no
    control characters, no leading dots, a bounded length, and the extension of its real type."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = unicodedata.normalize("NFC", base)
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] not in "CZ" or ch == " ")
    base = re.sub(r"[<>:\"|?*]", "_", base).strip(" .")
    stem = base.rsplit(".", 1)[0] if "." in base else base
    ext = next(e for _, m, e in _SIGNATURES if m == mime)
    stem = stem[: MAX_NAME - len(ext)] or "scan"
    return stem + ext


def check_scan(name: str, data: bytes, max_bytes: int) -> Scan:
    if len(data) > max_bytes:
        raise TooLarge(
            "The file {name} is larger than {mb} MB.", field="scans", name=name, mb=max_bytes >> 20
        )
    if not data:
        raise InvalidInput("The file {name} is empty.", field="scans", name=name)
    mime = sniff(data)
    if mime is None:
        raise InvalidInput(
            "The file {name} is not a PDF, JPEG or PNG scan.",
            field="scans",
            audit="upload_refused",
            name=name,
        )
    return Scan(safe_name(name, mime), mime, data)


async def whole_multipart(
    stream: AsyncGenerator[bytes, None], content_type: str
) -> AsyncGenerator[bytes, None]:
    """A multipart body, refused (MultiPartException) if it ends before its closing delimiter:
    Starlette's parser silently drops a part cut off mid-way, so a scan would be lost while
    the request succeeds. Other content types pass through."""
    found = re.search(r'boundary="?([^";]+)"?', content_type)
    close = b"\r\n--" + found.group(1).encode("latin-1") + b"--" if found else b""
    tail = b"\r\n"  # a form without any part opens with its closing delimiter
    async for chunk in stream:
        if close:
            tail = (tail + chunk)[-(len(close) + 64) :]
        yield chunk
    if close and close not in tail:
        raise MultiPartException("the form ended before its last part did (cut off?)")
