"""What a node knows of its own backup: the litestream config it was given and how fresh the
replica is. Read by the sync client (it reports the backup's age to the city) and by
``ops/backup.py``, which writes the config and runs, checks and restores backups.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from edge.errors import ConfigError
from edge.node import DB_FILE

CONFIG_FILE = "litestream.yml"


class BackupError(ConfigError):
    code = "backup"


@dataclass(frozen=True)
class Config:
    path: Path
    replica: str
    dbs: list[Path]


def read_config(data_dir: Path) -> Config:
    path = data_dir / CONFIG_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        dbs = [Path(db["path"]) for db in raw["dbs"]]
        first = str(raw["dbs"][0]["replica"]["url"])
        urlparse(first)  # raises ValueError for what is no URL at all ("file://[")
    except FileNotFoundError as exc:
        raise BackupError(f"no {path}: write it first with: motcua backup config --data {data_dir}") from exc
    except (ValueError, KeyError, IndexError, TypeError, RecursionError) as exc:
        raise BackupError(f"{path} is damaged ({exc}): write it again with motcua backup config") from exc
    return Config(path, first.rsplit("/", 1)[0], dbs)


def file_root(replica: str) -> Path | None:
    """The directory of a file replica; None for S3."""
    parsed = urlparse(replica)
    return Path(parsed.path) if parsed.scheme == "file" else None


def backup_age_s(data_dir: str | Path) -> int | None:
    """Seconds since the newest file of the node's database replica was written: what the
    edge reports to the city on each sync. None: no backup configured, an S3 replica (ask
    ``status``), or nothing replicated yet. Cheap: no subprocess, only file times."""
    try:
        config = read_config(Path(data_dir))
    except ConfigError:
        return None
    root = file_root(config.replica)
    if root is None:
        return None
    newest = 0.0
    replica_db = root / DB_FILE
    if replica_db.is_dir():
        for dirpath, _, files in os.walk(replica_db):
            for name in files:
                if name.endswith(".ltx"):
                    try:
                        newest = max(newest, os.stat(os.path.join(dirpath, name)).st_mtime)
                    except FileNotFoundError:
                        continue  # compacted away meanwhile
    return None if newest == 0 else max(0, int(time.time() - newest))
