"""Clerks' accounts offline: argon2 password hashes, sessions, CSRF, API tokens, lockout.

Accounts are entities of the ``account`` kind (their id is the username), so an account created
or reset at central reaches the commune with the next sync and a password changed at the commune
reaches central; the ``accounts`` table is their projection and is what login reads.
"""

from __future__ import annotations

import hmac
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from edge.errors import LockedOut

# argon2id at OWASP's recommended floor (19 MiB, 2 passes): the library's default 64 MiB per
# login would let a few simultaneous logins take most of an old 2 GB box's free memory.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Verified against when the username does not exist, so both paths cost the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


def configure_hasher(time_cost: int, memory_cost: int, parallelism: int) -> None:
    """Change argon2's cost (tests make it cheap; a box keeps the library's defaults)."""
    global _hasher, _DUMMY_HASH
    _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)
    _DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


ROLES = ("clerk", "leader", "admin")
MIN_PASSWORD = 8


@dataclass(frozen=True)
class Actor:
    username: str
    full_name: str
    unit: str
    role: str

    def may_see(self, receiving_unit: str, handling_unit: str) -> bool:
        """A clerk or leader sees the dossiers their unit received or handles; admin sees all."""
        return self.role == "admin" or self.unit in (receiving_unit, handling_unit)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def load_actor(conn: sqlite3.Connection, username: str) -> Actor | None:
    row = conn.execute(
        "SELECT username, full_name, unit_code, role FROM accounts WHERE username = ? AND active",
        (username,),
    ).fetchone()
    return Actor(*row) if row else None


TRACKED_ACCOUNTS = 10_000
"""Names with recent failed logins kept before expired ones are swept (see Throttle)."""


ADDRESS_FACTOR = 4
"""An address may fail this many times the per-account limit (every account it tries, together)
within one lock period before it waits too: one computer trying a common password on every
account (password spraying) is stopped, and a room of clerks mistyping is not."""


class Throttle:
    """Failed logins per account: after ``limit`` failures the account waits ``lockout_s``.
    And per address: after ``ADDRESS_FACTOR * limit`` failures within ``lockout_s``, whatever
    the accounts, the address waits ``lockout_s`` after its last failure.

    In memory on purpose: a restart forgets, and a clerk is let in again as soon as the lock
    expires. Not an op: failed logins are not dossier state (they go to the audit log)."""

    def __init__(self, limit: int, lockout_s: float, now: object = time.monotonic) -> None:
        self.limit = limit
        self.address_limit = ADDRESS_FACTOR * limit
        self.lockout_s = lockout_s
        self._now = now
        self._failures: dict[str, list[float]] = {}
        self._addresses: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _clock(self) -> float:
        return float(self._now())  # type: ignore[operator]

    def check(self, username: str, address: str | None = None) -> None:
        with self._lock:
            now = self._clock()
            failures = self._failures.get(username.lower(), [])
            if len(failures) >= self.limit:
                wait = failures[-1] + self.lockout_s - now
                if wait > 0:
                    raise _locked(wait, username)
                self._failures.pop(username.lower(), None)
            if address is not None:
                recent = self._recent(address, now)
                if len(recent) >= self.address_limit:
                    raise _locked(recent[-1] + self.lockout_s - now, username)

    def _recent(self, address: str, now: float) -> list[float]:
        """The address's failures within the last lock period (older ones are dropped)."""
        times = self._addresses.get(address, [])
        recent = [t for t in times if t + self.lockout_s > now]
        if recent:
            self._addresses[address] = recent
        else:
            self._addresses.pop(address, None)
        return recent

    def failed(self, username: str, address: str | None = None) -> None:
        with self._lock:
            now = self._clock()
            if len(self._failures) >= TRACKED_ACCOUNTS or len(self._addresses) >= TRACKED_ACCOUNTS:
                self._forget_expired(now)
            failures = self._failures.setdefault(username.lower(), [])
            failures.append(now)
            del failures[: -self.limit]  # the last ``limit`` decide; older ones are noise
            if address is not None:
                recent = self._recent(address, now)
                recent.append(now)
                self._addresses[address] = recent[-self.address_limit :]

    def _forget_expired(self, now: float) -> None:
        """Drop the names and addresses whose newest failure is older than a lock: an attacker
        trying a million made-up usernames must not fill the box's memory (each try still costs
        an argon2 hash); a lock still running is never forgotten."""
        for book in (self._failures, self._addresses):
            stale = [key for key, times in book.items() if times[-1] + self.lockout_s <= now]
            for key in stale:
                del book[key]

    def succeeded(self, username: str) -> None:
        """The account's count starts again; the address's does not (a sprayer who knows one
        password must not wipe the trail of the others)."""
        with self._lock:
            self._failures.pop(username.lower(), None)


def _locked(wait: float, username: str) -> LockedOut:
    return LockedOut(
        "Too many failed logins. Try again in {minutes} minute(s).",
        minutes=max(1, round(wait / 60)),
        actor=username[:64],  # for the audit log: which account is under attack
    )


def authenticate(
    conn: sqlite3.Connection, throttle: Throttle, username: str, password: str, address: str | None = None
) -> Actor | None:
    """The actor if the password is right; raises LockedOut while the account or the address
    (the client's IP, when known) is locked."""
    throttle.check(username, address)
    row = conn.execute(
        "SELECT password_hash FROM accounts WHERE username = ? AND active", (username,)
    ).fetchone()
    ok = check_password(row[0] if row else _DUMMY_HASH, password) and row is not None
    if not ok:
        throttle.failed(username, address)
        return None
    throttle.succeeded(username)
    return load_actor(conn, username)


# --- CSRF ---------------------------------------------------------------------------------------


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def same_token(expected: str | None, given: str | None) -> bool:
    # As bytes: compare_digest refuses str with non-ASCII characters (TypeError), and a posted
    # form may carry any text.
    if not expected or not given:
        return False
    return hmac.compare_digest(
        str(expected).encode("utf-8", "replace"), str(given).encode("utf-8", "replace")
    )


# --- API tokens ---------------------------------------------------------------------------------


class Tokens:
    """Signed bearer tokens for the JSON API: work offline, expire, name one user."""

    def __init__(self, secret: bytes, max_age_s: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="motcua-api-token")
        self.max_age_s = max_age_s

    def issue(self, username: str) -> str:
        return self._serializer.dumps({"u": username, "n": secrets.token_hex(4)})

    def username(self, token: str) -> str | None:
        try:
            data = self._serializer.loads(token, max_age=self.max_age_s)
        except (BadSignature, SignatureExpired):
            return None
        return data.get("u") if isinstance(data, dict) else None
