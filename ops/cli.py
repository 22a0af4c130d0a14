"""The ``motcua`` command line. Subcommands grow with each capability."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def package_version() -> str:
    try:
        return version("motcua")
    except PackageNotFoundError:  # running from a source tree without installing
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="motcua",
        description="motcua: offline-first one-stop-shop node for Vietnamese communes.",
    )
    parser.add_argument("--version", action="version", version=f"motcua {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="run the demonstration (a city and two communes)")
    demo.add_argument("--dir", default="var/demo", help="where the demo keeps its databases")
    demo.add_argument("--dossiers", type=int, default=150, help="dossiers per commune")
    demo.set_defaults(func=_demo)
    return parser


def _demo(args: argparse.Namespace) -> int:
    from ops import demo  # heavy imports only for this command

    ok = demo.run(Path(args.dir), dossiers=args.dossiers)
    print(
        "\nThe commune web app, the city server and the USB kit are the next issues; "
        "the demo will start them here.",
        file=sys.stderr,
    )
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
