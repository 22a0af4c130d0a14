"""The ``motcua`` command line. Subcommands grow with each capability.

Errors a user can fix (a bad unit code, a missing data directory, a weak password) print one
clear line and exit 2; a bug prints its traceback and exits 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from edge.errors import EdgeError
from schema.errors import SchemaError
from sync.errors import SyncError


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

    edge = sub.add_parser("edge", help="a commune node: create it, serve its web app")
    edge_sub = edge.add_subparsers(dest="edge_command", metavar="COMMAND", required=True)
    init = edge_sub.add_parser("init", help="create a standalone node for a unit")
    init.add_argument("--data", required=True, help="the node's data directory")
    init.add_argument("--unit", required=True, help="post-2025 unit code, e.g. 31135")
    init.set_defaults(func=_edge_init)
    serve = edge_sub.add_parser("serve", help="serve the clerks' web app")
    serve.add_argument("--data", required=True, help="the node's data directory")
    serve.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8801)")
    serve.set_defaults(func=_edge_serve)

    user = sub.add_parser("user", help="clerks' accounts")
    user_sub = user.add_subparsers(dest="user_command", metavar="COMMAND", required=True)
    add = user_sub.add_parser("add", help="add an account (an op like any other write)")
    add.add_argument("--data", required=True, help="the node's data directory")
    add.add_argument("--username", required=True)
    add.add_argument("--full-name", default=None, help="shown on pages (default: the username)")
    add.add_argument("--role", required=True, choices=["clerk", "leader", "admin"])
    add.add_argument("--unit", default=None, help="the account's unit (default: the node's)")
    add.add_argument("--password-file", required=True, help="file holding the password (one line)")
    add.set_defaults(func=_user_add)

    catalogue = sub.add_parser("catalogue", help="the procedure catalogue")
    catalogue_sub = catalogue.add_subparsers(dest="catalogue_command", metavar="COMMAND", required=True)
    imp = catalogue_sub.add_parser(
        "import", help="import procedures from a CSV or JSON file (format: ops/samples/README.md)"
    )
    imp.add_argument("file", metavar="FILE", help="the catalogue, .csv or .json (UTF-8)")
    imp.add_argument("--data", required=True, help="the node's data directory")
    imp.add_argument("--format", choices=["csv", "json"], default=None, help="default: the file's suffix")
    imp.set_defaults(func=_catalogue_import)
    return parser


def _demo(args: argparse.Namespace) -> int:
    from ops import demo

    ok = demo.run(Path(args.dir), dossiers=args.dossiers)
    return 0 if ok else 1


def _edge_init(args: argparse.Namespace) -> int:
    from edge.node import init_node

    node = init_node(args.data, args.unit)
    print(f"node {node.identity.node} for {node.unit.name if node.unit else args.unit} in {args.data}")
    print(f"next: motcua user add --data {args.data} --username NAME --role clerk --password-file FILE")
    node.close()
    return 0


def _edge_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from edge.app import create_app
    from edge.node import open_node
    from edge.settings import load

    settings = load(args.data, host=args.host, port=args.port)
    node = open_node(args.data)
    app = create_app(settings, node)
    print(f"serving {node.identity.node} on http://{settings.host}:{settings.port}/", flush=True)
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", workers=1)
    finally:
        node.close()
    return 0


def _user_add(args: argparse.Namespace) -> int:
    from edge.accounts import add_account
    from edge.node import open_node

    password = Path(args.password_file).read_text(encoding="utf-8").rstrip("\r\n")
    node = open_node(args.data)
    try:
        add_account(node, args.username, args.full_name or args.username, args.role, password, args.unit)
    finally:
        node.close()
    print(f"account {args.username} ({args.role}) added")
    return 0


def _catalogue_import(args: argparse.Namespace) -> int:
    from edge.node import open_node
    from ops.catalogue import apply_catalogue, read_catalogue
    from schema.catalogue import InvalidCatalogue

    try:
        records = read_catalogue(args.file, args.format)
    except InvalidCatalogue as exc:
        print(f"motcua: {args.file}: {len(exc.problems)} error(s); nothing was imported:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2

    def progress(done: int, total: int) -> None:
        print(f"  {done}/{total} procedures checked", file=sys.stderr, flush=True)

    node = open_node(args.data)
    try:
        report = apply_catalogue(node, records, progress if len(records) > 500 else None)
    finally:
        node.close()
    print(f"imported {report.imported}, unchanged {report.unchanged}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args))
    except (EdgeError, SchemaError, SyncError) as exc:
        print(f"motcua: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"motcua: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
