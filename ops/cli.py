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
    init = edge_sub.add_parser("init", help="create a node: from central's node file, or standalone")
    init.add_argument("--data", required=True, help="the node's data directory")
    made_from = init.add_mutually_exclusive_group(required=True)
    made_from.add_argument("--node", help="node file written by 'motcua node add' (syncs with central)")
    made_from.add_argument("--unit", help="standalone node of a unit (post-2025 code, e.g. 31135)")
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

    central = sub.add_parser("central", help="the city server: create it, serve it")
    central_sub = central.add_subparsers(dest="central_command", metavar="COMMAND", required=True)
    cinit = central_sub.add_parser("init", help="create the city's data directory")
    cinit.add_argument("--data", required=True, help="the city's data directory")
    cinit.add_argument("--province", required=True, help="post-2025 province code, e.g. 92")
    cinit.add_argument(
        "--admin-password-file", default=None, help="password of 'quantri' (default: generated)"
    )
    cinit.set_defaults(func=_central_init)
    cserve = central_sub.add_parser("serve", help="serve the sync API and the city's pages")
    cserve.add_argument("--data", required=True, help="the city's data directory")
    cserve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    cserve.add_argument("--port", type=int, default=8800, help="port (default 8800)")
    cserve.set_defaults(func=_central_serve)

    nodes = sub.add_parser("node", help="the city's node registry")
    nodes_sub = nodes.add_subparsers(dest="node_command", metavar="COMMAND", required=True)
    nadd = nodes_sub.add_parser("add", help="register a node of a unit and write its node file")
    nadd.add_argument("--data", required=True, help="the city's data directory")
    nadd.add_argument("--unit", required=True, help="the node's unit (a commune, ward or department)")
    nadd.add_argument("--central-url", required=True, help="where the node reaches the city server")
    nadd.add_argument("--out", required=True, help="node file to write (it holds the node's private key)")
    nadd.set_defaults(func=_node_add)
    nrevoke = nodes_sub.add_parser("revoke", help="refuse a node's requests and later ops")
    nrevoke.add_argument("--data", required=True, help="the city's data directory")
    nrevoke.add_argument("node_id", metavar="NODE_ID")
    nrevoke.set_defaults(func=_node_revoke)

    catalogue = sub.add_parser("catalogue", help="the procedure catalogue")
    catalogue_sub = catalogue.add_subparsers(dest="catalogue_command", metavar="COMMAND", required=True)
    imp = catalogue_sub.add_parser(
        "import", help="import procedures from a CSV or JSON file (format: ops/samples/README.md)"
    )
    imp.add_argument("file", metavar="FILE", help="the catalogue, .csv or .json (UTF-8)")
    imp.add_argument("--data", required=True, help="the node's data directory")
    imp.add_argument("--format", choices=["csv", "json"], default=None, help="default: the file's suffix")
    imp.set_defaults(func=_catalogue_import)

    sync = sub.add_parser("sync", help="exchange changes with the city server")
    sync_sub = sync.add_subparsers(dest="sync_command", metavar="COMMAND", required=True)
    now = sync_sub.add_parser("now", help="one sync round now (exit 0 ok, 1 link down, 2 refused)")
    now.add_argument("--data", required=True, help="the node's data directory")
    now.set_defaults(func=_sync_now)

    record = sub.add_parser("record", help="transmission records of dossiers")
    record_sub = record.add_subparsers(dest="record_command", metavar="COMMAND", required=True)
    check = record_sub.add_parser("verify", help="verify a box's transmission record at the city")
    check.add_argument("file", help="the record.json exported from the box's dossier page")
    check.add_argument("--data", required=True, help="the city's data directory")
    check.set_defaults(func=_record_verify)
    return parser


def _demo(args: argparse.Namespace) -> int:
    from ops import demo

    ok = demo.run(Path(args.dir), dossiers=args.dossiers)
    return 0 if ok else 1


def _edge_init(args: argparse.Namespace) -> int:
    from edge.node import init_from_node_file, init_node

    if args.node:
        node = init_from_node_file(args.data, args.node)
        print(f"node {node.identity.node} in {args.data}, syncing with {node.config.central_url}")
        print(f"the node file {args.node} holds this node's private key: delete it now")
        node.close()
        return 0
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


def _central_init(args: argparse.Namespace) -> int:
    from central.city import ADMIN_USERNAME, init_central

    password = None
    if args.admin_password_file:
        password = Path(args.admin_password_file).read_text(encoding="utf-8").rstrip("\r\n")
    city, generated = init_central(args.data, args.province, password)
    try:
        print(f"city node {city.node.identity.node} for {city.node.unit.name if city.node.unit else ''}")
        print(f"  in {args.data}: reference data, fleet.db, account {ADMIN_USERNAME} (admin)")
        if generated:
            print(f"  password of {ADMIN_USERNAME}: {generated}   (shown once: write it down)")
    finally:
        city.close()
    print(f"next: motcua node add --data {args.data} --unit CODE --central-url URL --out NODE_FILE")
    return 0


def _central_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from central.app import create_central_app
    from central.city import open_central
    from central.hub import Hub
    from edge.settings import load

    settings = load(args.data, host=args.host, port=args.port)
    city = open_central(args.data)
    try:
        app = create_central_app(settings, Hub(city))
        print(f"serving city {city.node.identity.node} on http://{args.host}:{args.port}/", flush=True)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", workers=1)
    finally:
        city.close()
    return 0


def _node_add(args: argparse.Namespace) -> int:
    from central.city import open_central
    from central.registry import add_node, write_node_file

    if Path(args.out).exists():
        print(f"motcua: {args.out} already exists; refusing to overwrite a node file", file=sys.stderr)
        return 2
    city = open_central(args.data)
    try:
        new = add_node(city, args.unit, args.central_url)
        write_node_file(args.out, new.node_file)
    finally:
        city.close()
    print(f"registered node {new.identity.node} of unit {args.unit}")
    print(f"wrote {args.out} (mode 0600): it holds the node's PRIVATE KEY; carry it to the box only,")
    print(f"then on the box: motcua edge init --data DIR --node {args.out}   and delete the file")
    return 0


def _node_revoke(args: argparse.Namespace) -> int:
    from central.city import open_central
    from central.registry import revoke_node

    city = open_central(args.data)
    try:
        registration = revoke_node(city, args.node_id)
    finally:
        city.close()
    after = registration.revoked_after
    print(f"revoked {registration.node}: its requests, and its ops after #{after}, are refused")
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


def _sync_now(args: argparse.Namespace) -> int:
    from edge.node import open_node
    from edge.settings import load
    from edge.syncclient import run_round, syncs_with_city

    settings = load(args.data)
    node = open_node(args.data)
    try:
        if not syncs_with_city(node):
            print(
                f"motcua: {args.data} has no city server to sync with (make it from a node file)",
                file=sys.stderr,
            )
            return 2
        result = run_round(node, settings)
    finally:
        node.close()
    print(result.summary())
    if result.ok:
        return 0
    return 1 if result.retryable else 2


def _record_verify(args: argparse.Namespace) -> int:
    import json

    from central.city import open_central
    from central.records import verify_record
    from edge.i18n import format_datetime

    try:
        document = json.loads(Path(args.file).read_text(encoding="utf-8"))
    except ValueError as exc:
        print(f"motcua: {args.file} is not JSON: {exc}", file=sys.stderr)
        return 2
    city = open_central(args.data)
    try:
        result = verify_record(city, document if isinstance(document, dict) else {})
    finally:
        city.close()
    print(f"record of node {result.node} (unit {result.unit}): {result.records} signed records, chain intact")
    attempts_seen = len(result.concerning)
    print(f"dossier {result.dossier}: {attempts_seen} attempt(s), {result.acks} city acknowledgement(s)")
    for r in result.concerning:
        a = r.attempt
        reason = f" — {a.error}" if a.error else ""
        print(f"  {format_datetime(a.at_ms)}  {a.outcome:7} sent {a.ops_sent} op(s){reason}")
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
