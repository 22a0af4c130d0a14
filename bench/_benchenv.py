"""What every benchmark reports about the machine it ran on (next to its own numbers)."""

from __future__ import annotations

import os
import platform
import sqlite3
from datetime import date


def machine() -> dict[str, object]:
    return {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "date": date.today().isoformat(),
    }
