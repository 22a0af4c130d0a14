"""The seam between the sender and one upstream shape: what an adapter does and how it answers.

An :class:`Adapter` speaks one portal shape (``dvcqg.py``: the Government Office's adapter
model v1.4 with sessions; ``lgsp.py``: a provincial integration platform with application
keys). It turns each call into an :class:`Answer` and never raises for what the portal said;
only the sender decides what an answer means for the dossier. Every HTTP exchange it makes
(a session login included) is handed to ``on_exchange`` so the sender writes a receipt for it.

Verdicts (:class:`Verdict`):

- ``ok``        the portal accepted (for a lookup: found)
- ``missing``   a lookup found no such dossier
- ``duplicate`` a create for a dossier the portal already holds (the sender updates instead)
- ``refused``   a validation refusal: the portal's code and message go to the dead letters
- ``retry``     network error, 5xx, 429, a session that would not renew: try again later
                (``retry_after_s`` when the portal said how long)
- ``denied``    credentials refused (401/403, a failed login): configuration, retried slowly
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import httpx
import msgspec


class Verdict(StrEnum):
    OK = "ok"
    MISSING = "missing"
    DUPLICATE = "duplicate"
    REFUSED = "refused"
    RETRY = "retry"
    DENIED = "denied"


@dataclass(frozen=True)
class Exchange:
    """One HTTP request to the portal and what came back: a receipt's content."""

    service: str
    dossier: str
    body_sha256: str
    status: int | None
    """HTTP status; None when no answer arrived (connection refused, cut, timeout)."""
    portal_code: str | None
    message: str | None
    verdict: Verdict
    started_ms: int
    duration_ms: int


@dataclass(frozen=True)
class Answer:
    verdict: Verdict
    portal_code: str | None = None
    message: str | None = None
    retry_after_s: float | None = None
    data: Any = None


OnExchange = Callable[[Exchange], None]


class Adapter(Protocol):
    """One upstream shape. Calls are synchronous (the sender runs in its own thread)."""

    kind: str

    def sync_dossier(self, unit: str, record: Mapping[str, Any], *, update: bool) -> Answer:
        """Create (``update=False``) or update the whole dossier record. A create of a dossier
        the portal holds answers ``duplicate``; an update is an upsert of the newest state."""
        ...

    def progress(self, unit: str, step: Mapping[str, Any]) -> Answer:
        """Report one processing step of a dossier the portal already holds."""
        ...

    def lookup(self, unit: str, portal_code: str) -> Answer:
        """Whether the portal holds ``portal_code``: ``ok`` (found) or ``missing``."""
        ...

    def close(self) -> None: ...


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def encode(payload: Mapping[str, Any]) -> bytes:
    return msgspec.json.encode(payload)


def retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (the delta form; an HTTP date is rare and read as a minute)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return 60.0


def now_ms() -> int:
    return int(time.time() * 1000)


def redact(message: str | None, *secrets: str) -> str | None:
    """A portal's message never carries our credentials into a receipt or a page."""
    if message is None:
        return None
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return message[:500]
