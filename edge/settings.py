"""The edge node's settings: read once, typed, documented, failing fast.

Every setting has a name, a default and a help line (:data:`SETTINGS`), so ``motcua edge
settings`` and the docs list them without repeating them. Values come from the defaults, then
``DIR/edge.toml`` if present, then command-line overrides. Secrets are never settings: keys live
in their own files in the data directory, readable by the service user only.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from edge.errors import ConfigError


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    host: str = "127.0.0.1"
    """Address to listen on; the office LAN address on a real box."""
    port: int = 8801
    """TCP port of the clerks' web app."""
    max_upload_mb: int = 15
    """Largest scan a clerk may upload (PDF, JPEG, PNG), in MiB."""
    session_hours: int = 10
    """How long a clerk stays logged in without activity (a working day)."""
    clock_skew_warn_s: int = 300
    """Warn the clerk before printing due dates when the box's clock is off by more than this."""
    disk_warn_mb: int = 500
    """Warn on every page when the data disk has less free space than this, in MiB."""
    page_size: int = 25
    """Dossiers per page in lists."""
    language: str = "vi"
    """Default language of the pages: vi or en."""
    login_attempts: int = 5
    """Failed logins of one account before it is locked for a while."""
    lockout_minutes: int = 5
    """How long a locked account waits before it may try again."""
    secure_cookies: bool = False
    """Mark cookies Secure and send HSTS (turned on by itself when the box serves HTTPS)."""
    https: bool = True
    """Serve HTTPS with the city-issued certificate in tls/ when the box has one."""
    http_redirect_port: int = 8080
    """Port where plain HTTP answers only with a redirect to HTTPS (0: none)."""
    sync_interval_s: int = 60
    """Seconds between two syncs with the city while the link works."""
    sync_max_backoff_s: int = 900
    """Longest wait between sync attempts after failures (a refusal by the city waits this long)."""
    digest_interval_s: int = 900
    """Seconds between two full comparisons of this box's data with the city's (0: every round)."""
    batch_bytes: int = 262144
    """First batch of changes sent to the city in a round, in bytes (a cut loses at most one batch)."""
    batch_bytes_max: int = 4194304
    """Batches double after each one the city acknowledges in a round, up to this many bytes."""
    blob_chunk_bytes: int = 262144
    """Pieces scans are sent and fetched in, in bytes (a cut link resumes after the last piece)."""
    read_log_days: int = 365
    """How long the box keeps who looked at which dossier (the read log), in days; then pruned."""

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024


def _helps() -> dict[str, str]:
    """Each field's help line: the docstring written under it in this file."""
    source = Path(__file__).read_text(encoding="utf-8")
    found = re.findall(r'^    (\w+): .*\n    """(.+?)"""', source, flags=re.M)
    return dict(found)


_HELP = _helps()
SETTINGS: list[tuple[str, Any, str]] = [
    (f.name, f.default, _HELP.get(f.name, "")) for f in fields(Settings) if f.name != "data_dir"
]
"""(name, default, help) of every setting, for the CLI and the docs."""


_TYPES = {bool: "true or false", int: "a whole number", str: "text"}


def _check(settings: Settings) -> Settings:
    for name, default, _ in SETTINGS:
        value = getattr(settings, name)
        if type(value) is not type(default):  # exactly: a bool is not a whole number here
            raise ConfigError(f"{name} must be {_TYPES[type(default)]}, not {value!r:.60}")
    if settings.port > 65535:
        raise ConfigError(f"port must be at most 65535, not {settings.port}")
    if settings.language not in ("vi", "en"):
        raise ConfigError(f"language must be vi or en, not {settings.language!r}")
    positive = (
        "port",
        "max_upload_mb",
        "session_hours",
        "page_size",
        "disk_warn_mb",
        "login_attempts",
        "sync_interval_s",
        "sync_max_backoff_s",
        "batch_bytes",
        "batch_bytes_max",
        "blob_chunk_bytes",
        "read_log_days",
    )
    if isinstance(settings.batch_bytes_max, int) and settings.batch_bytes_max < settings.batch_bytes:
        raise ConfigError(
            f"batch_bytes_max ({settings.batch_bytes_max}) must be at least "
            f"batch_bytes ({settings.batch_bytes})"
        )
    if not 0 <= settings.http_redirect_port <= 65535 or settings.http_redirect_port == settings.port:
        raise ConfigError(
            f"http_redirect_port must be 0 or a port other than port, not {settings.http_redirect_port}"
        )
    if settings.digest_interval_s < 0:
        raise ConfigError(f"digest_interval_s must be 0 or more, not {settings.digest_interval_s}")
    for name in positive:
        value = getattr(settings, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{name} must be a positive whole number, not {value!r}")
    return settings


def load(data_dir: str | Path, **overrides: Any) -> Settings:
    """Settings for a node: defaults < ``DIR/edge.toml`` < ``overrides`` (None values ignored)."""
    settings = Settings(data_dir=Path(data_dir))
    path = Path(data_dir) / "edge.toml"
    known = {f.name for f in fields(Settings)} - {"data_dir"}
    if path.exists():
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{path}: unknown setting(s): {', '.join(unknown)}")
        settings = replace(settings, **values)
    settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    return _check(settings)
