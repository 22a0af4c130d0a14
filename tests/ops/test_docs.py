"""The docs guard themselves: every CLI command and every setting is documented."""

import argparse
import re
from pathlib import Path

from edge.settings import SETTINGS
from ops.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = "\n".join(
    p.read_text(encoding="utf-8") for p in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
)


def commands(parser: argparse.ArgumentParser, prefix: str = "motcua") -> list[str]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                full = f"{prefix} {name}"
                nested = commands(sub, full)
                found.extend(nested or [full])
    return found


def test_every_cli_command_appears_in_the_docs():
    missing = [c for c in commands(build_parser()) if c not in DOCS]
    assert missing == []


def test_every_setting_is_documented_with_its_default():
    guide = (ROOT / "docs" / "guides" / "technician.md").read_text(encoding="utf-8")
    for name, default, help_text in SETTINGS:
        shown = str(default).lower() if isinstance(default, bool) else str(default)
        row = re.search(rf"^\| {name} \| (.+?) \| (.+?) \|$", guide, flags=re.M)
        assert row, f"setting {name} is not in the technician's guide"
        assert row.group(1) == shown, f"{name}: documented default {row.group(1)!r}, code says {shown!r}"
        assert row.group(2) == help_text
