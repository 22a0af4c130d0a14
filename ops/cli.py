"""The ``motcua`` command line. Subcommands grow with each capability.

Errors a user can fix (a bad unit code, a missing data directory, a weak password) print one
clear line and exit 2; a bug prints its traceback and exits 1.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from edge.disk import is_disk_error
from edge.errors import EdgeError
from ops import upstreamcli
from schema.errors import SchemaError
from sync.errors import SyncError

if TYPE_CHECKING:
    from edge.disk import DiskState
    from edge.settings import Settings

    # One function per command group adds its subcommands to this.
    _Commands = argparse._SubParsersAction[argparse.ArgumentParser]


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
    for add_group in (
        _add_demo,
        _add_edge,
        _add_user,
        _add_central,
        _add_node,
        _add_provision,
        _add_catalogue,
        _add_sync,
        _add_backup,
        _add_record,
        _add_audit,
        _add_tls,
        upstreamcli.add_commands,
    ):
        add_group(sub)
    return parser


def _add_demo(sub: _Commands) -> None:
    demo = sub.add_parser("demo", help="run the demonstration: a city and two communes, with a link switch")
    demo.add_argument("--dir", default="var/demo", help="where the demo keeps its data (wiped at start)")
    demo.add_argument("--dossiers", type=int, default=150, help="generated dossiers per commune")
    demo.add_argument("--host", default="127.0.0.1", help="address to serve on")
    demo.add_argument("--port", type=int, default=8800, help="landing page port; city +1, communes +2, +3")
    demo.add_argument(
        "--offline-unit", default=None, help="start with this commune's link down (31135 or 31120)"
    )
    demo.add_argument("--sync-interval", type=int, default=10, help="seconds between a commune's syncs")
    demo.set_defaults(func=_demo)


def _add_edge(sub: _Commands) -> None:
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


def _add_user(sub: _Commands) -> None:
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


def _add_central(sub: _Commands) -> None:
    central = sub.add_parser("central", help="the city server: create it, serve it")
    central_sub = central.add_subparsers(dest="central_command", metavar="COMMAND", required=True)
    cinit = central_sub.add_parser("init", help="create the city's data directory")
    cinit.add_argument("--data", required=True, help="the city's data directory")
    cinit.add_argument("--province", required=True, help="post-2025 province code, e.g. 92")
    cinit.add_argument(
        "--admin-password-file", default=None, help="password of 'quantri' (default: generated)"
    )
    cinit.add_argument(
        "--database",
        default=None,
        metavar="URL",
        help="keep the fleet on PostgreSQL: postgresql://USER@HOST[:PORT]/DB, no password in it "
        "(default: SQLite in DIR)",
    )
    cinit.add_argument(
        "--database-password-file",
        default=None,
        metavar="FILE",
        help="the database password on its first line (else libpq's PGPASSFILE, ~/.pgpass, PGPASSWORD)",
    )
    cinit.set_defaults(func=_central_init)
    cserve = central_sub.add_parser("serve", help="serve the sync API and the city's pages")
    cserve.add_argument("--data", required=True, help="the city's data directory")
    cserve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    cserve.add_argument("--port", type=int, default=8800, help="port (default 8800)")
    cserve.add_argument("--tls-cert", default=None, help="serve HTTPS with this certificate (PEM)")
    cserve.add_argument("--tls-key", default=None, help="the certificate's private key (PEM)")
    cserve.set_defaults(func=_central_serve)


def _add_node(sub: _Commands) -> None:
    nodes = sub.add_parser("node", help="the city's node registry")
    nodes_sub = nodes.add_subparsers(dest="node_command", metavar="COMMAND", required=True)
    nadd = nodes_sub.add_parser("add", help="register a node of a unit and write its node file")
    nadd.add_argument("--data", required=True, help="the city's data directory")
    nadd.add_argument("--unit", required=True, help="the node's unit (a commune, ward or department)")
    nadd.add_argument("--central-url", required=True, help="where the node reaches the city server")
    nadd.add_argument("--out", required=True, help="node file to write (it holds the node's private key)")
    nadd.add_argument(
        "--tls-pin", default=None, help="the city's TLS key pin, hex (motcua tls pin CERT.pem prints it)"
    )
    nadd.add_argument(
        "--insecure-lan-test",
        action="store_true",
        help="TESTS/DEMO ONLY: let the box sync over plain http://",
    )
    nadd.set_defaults(func=_node_add)
    nrevoke = nodes_sub.add_parser("revoke", help="refuse a node's requests and later ops")
    nrevoke.add_argument("--data", required=True, help="the city's data directory")
    nrevoke.add_argument("node_id", metavar="NODE_ID")
    nrevoke.set_defaults(func=_node_revoke)


def _add_catalogue(sub: _Commands) -> None:
    catalogue = sub.add_parser("catalogue", help="the procedure catalogue")
    catalogue_sub = catalogue.add_subparsers(dest="catalogue_command", metavar="COMMAND", required=True)
    imp = catalogue_sub.add_parser(
        "import", help="import procedures from a CSV or JSON file (format: ops/samples/README.md)"
    )
    imp.add_argument("file", metavar="FILE", help="the catalogue, .csv or .json (UTF-8)")
    imp.add_argument("--data", required=True, help="the node's data directory")
    imp.add_argument("--format", choices=["csv", "json"], default=None, help="default: the file's suffix")
    imp.set_defaults(func=_catalogue_import)


def _add_sync(sub: _Commands) -> None:
    sync = sub.add_parser("sync", help="exchange changes with the city server")
    sync_sub = sync.add_subparsers(dest="sync_command", metavar="COMMAND", required=True)
    now = sync_sub.add_parser("now", help="one sync round now (exit 0 ok, 1 link down, 2 refused)")
    now.add_argument("--data", required=True, help="the node's data directory")
    now.set_defaults(func=_sync_now)
    export = sync_sub.add_parser("export", help="write a signed bundle for a USB stick (sneakernet)")
    export.add_argument("--data", required=True, help="the node's (or the city's) data directory")
    export.add_argument("--out", required=True, help="the bundle file to write")
    export.add_argument("--since-vector", default=None, help="JSON file: what the other side holds")
    export.add_argument("--unit", default=None, help="at the city: the bundle is for this unit's node")
    export.add_argument("--node", default=None, help="at the city: the bundle is for this node")
    export.set_defaults(func=_sync_export)
    bimport = sync_sub.add_parser("import", help="apply a bundle carried on a USB stick")
    bimport.add_argument("file", metavar="FILE", help="the bundle (or its .ack receipt)")
    bimport.add_argument("--data", required=True, help="the node's (or the city's) data directory")
    bimport.set_defaults(func=_sync_import)


def _add_backup(sub: _Commands) -> None:
    backup = sub.add_parser("backup", help="continuous backup with litestream, and restore")
    backup_sub = backup.add_subparsers(dest="backup_command", metavar="COMMAND", required=True)
    bconfig = backup_sub.add_parser("config", help="write DIR/litestream.yml")
    bconfig.add_argument("--data", required=True, help="the node's data directory")
    bconfig.add_argument(
        "--replica", default=None, help="file:///mnt/usb/backup or s3://bucket/path (default: DIR/../backup)"
    )
    bconfig.set_defaults(func=_backup_config)
    brun = backup_sub.add_parser("run", help="replicate in the foreground (the systemd unit runs this)")
    brun.add_argument("--data", required=True, help="the node's data directory")
    brun.set_defaults(func=_backup_run)
    bstatus = backup_sub.add_parser("status", help="the replica's position and age")
    bstatus.add_argument("--data", required=True, help="the node's data directory")
    bstatus.set_defaults(func=_backup_status)
    brestore = backup_sub.add_parser("restore", help="restore the database and scans into a new directory")
    brestore.add_argument("--data", required=True, help="the node's data directory (its litestream.yml)")
    brestore.add_argument("--to", required=True, help="the new data directory")
    brestore.set_defaults(func=_backup_restore)


def _add_record(sub: _Commands) -> None:
    record = sub.add_parser("record", help="transmission records of dossiers")
    record_sub = record.add_subparsers(dest="record_command", metavar="COMMAND", required=True)
    check = record_sub.add_parser("verify", help="verify a box's transmission record at the city")
    check.add_argument("file", help="the record.json exported from the box's dossier page")
    check.add_argument("--data", required=True, help="the city's data directory")
    check.set_defaults(func=_record_verify)


def _add_audit(sub: _Commands) -> None:
    audit = sub.add_parser("audit", help="what was refused (logins, CSRF, other units, sync): the audit log")
    audit.add_argument("--data", required=True, help="the node's or the city's data directory")
    audit.add_argument("--event", help="only this event (login_failed, csrf, cross_unit, sync_refused …)")
    audit.add_argument("--hours", type=int, default=24 * 7, help="how far back (default: a week)")
    audit.add_argument("--limit", type=int, default=200, help="at most this many lines (newest first)")
    audit.add_argument(
        "--reads",
        action="store_true",
        help="who looked at which dossier (the read log) instead of the refusals",
    )
    audit.add_argument("--account", help="with --reads: only this account's reads")
    audit.set_defaults(func=_audit)


def _add_tls(sub: _Commands) -> None:
    tls = sub.add_parser("tls", help="TLS certificates: the pin a box checks the city by")
    tls_sub = tls.add_subparsers(dest="tls_command", metavar="COMMAND", required=True)
    pin = tls_sub.add_parser("pin", help="print the pin of a certificate (for --tls-pin)")
    pin.add_argument("cert", metavar="CERT", help="the city server's certificate, PEM or DER")
    pin.set_defaults(func=_tls_pin)


def _tls_pin(args: argparse.Namespace) -> int:
    from sync.transport import spki_pin

    try:
        print(spki_pin(Path(args.cert).read_bytes()))
    except (OSError, ValueError) as exc:
        print(f"motcua: {args.cert} is not a readable certificate: {exc}", file=sys.stderr)
        return 2
    return 0


def _add_provision(sub: _Commands) -> None:
    provision = sub.add_parser("provision", help="USB provisioning kits: make one, apply one on a box")
    provision_sub = provision.add_subparsers(dest="provision_command", metavar="COMMAND", required=True)
    create = provision_sub.add_parser("create", help="at the city: register a node and write its kit")
    create.add_argument("--data", required=True, help="the city's data directory")
    create.add_argument("--unit", required=True, help="the node's unit (a commune, ward or department)")
    create.add_argument("--central-url", required=True, help="where the node reaches the city server")
    create.add_argument("--out", required=True, help="the kit directory to write (new or empty)")
    create.add_argument("--passphrase-file", default=None, help="file holding the passphrase (default: ask)")
    create.add_argument("--no-wheelhouse", action="store_true", help="skip the offline wheelhouse")
    create.add_argument("--valid-days", type=int, default=30, help="days the kit may be applied (default 30)")
    create.add_argument(
        "--tls-pin", default=None, help="the city's TLS key pin, hex (motcua tls pin CERT.pem prints it)"
    )
    create.add_argument(
        "--insecure-lan-test",
        action="store_true",
        help="TESTS/DEMO ONLY: let the box sync over plain http://",
    )
    create.add_argument(
        "--lan-name",
        action="append",
        default=None,
        help="a name or address clerks reach the box by, for its HTTPS certificate (repeat; "
        "default motcua-UNIT and localhost)",
    )
    create.set_defaults(func=_provision_create)
    apply = provision_sub.add_parser("apply", help="on the box: verify a kit and create the node from it")
    apply.add_argument("kit", metavar="KIT_DIR", help="the kit directory (on the USB stick)")
    apply.add_argument("--data", required=True, help="the node's data directory to create")
    apply.add_argument("--passphrase-file", default=None, help="file holding the passphrase (default: ask)")
    apply.add_argument("--expect-city", default=None, help="the city key fingerprint city IT published")
    apply.set_defaults(func=_provision_apply)


def _provision_create(args: argparse.Namespace) -> int:
    from ops import kitcli

    return kitcli.create(args)


def _provision_apply(args: argparse.Namespace) -> int:
    from ops import kitcli

    return kitcli.apply(args)


def _demo(args: argparse.Namespace) -> int:
    from ops import demo

    return demo.run(
        Path(args.dir),
        dossiers=args.dossiers,
        host=args.host,
        port=args.port,
        offline_unit=args.offline_unit,
        sync_interval_s=args.sync_interval,
    )


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
    from edge.disk import disk_state
    from edge.serverlock import serving
    from edge.settings import load

    settings = load(args.data, host=args.host, port=args.port)
    disk = disk_state(args.data) if Path(args.data).is_dir() else None
    if disk is not None and disk.read_only:
        print(
            f"motcua: {args.data} is on a read-only disk: the box could save nothing. "
            "Check the disk (dmesg, fsck), then start again.",
            file=sys.stderr,
        )
        return 2
    with serving(args.data):
        return _serve_edge(args, settings, disk)


def _serve_edge(args: argparse.Namespace, settings: Settings, disk: DiskState | None) -> int:
    import uvicorn

    from edge.app import create_app
    from edge.lantls import RedirectToHttps, box_tls
    from edge.node import open_node

    try:
        node = open_node(args.data)
    except sqlite3.OperationalError as exc:
        if disk is None or not disk.full or not is_disk_error(exc):
            raise
        print(
            f"motcua: the disk of {args.data} is full: the box cannot open its database ({exc}). "
            "Free some space on it, then start again.",
            file=sys.stderr,
        )
        return 2
    if disk is not None and disk.full:
        # It opened: clerks can find and print what was saved, writes answer "disk full" until
        # space is freed, and then work without a restart.
        print(f"motcua: warning: the disk of {args.data} is full: nothing can be saved", file=sys.stderr)
    tls = box_tls(args.data) if settings.https else None
    if tls is not None:
        settings = replace(settings, secure_cookies=True)
    app = create_app(settings, node)
    redirect = None
    if tls is not None and settings.http_redirect_port:
        redirect = uvicorn.Server(
            uvicorn.Config(
                RedirectToHttps(settings.port),
                host=settings.host,
                port=settings.http_redirect_port,
                log_level="warning",
                lifespan="off",
            )
        )
        # Off the main thread uvicorn installs no signal handlers: the main server owns SIGTERM.
        threading.Thread(target=redirect.run, name="http-redirect", daemon=True).start()
        print(
            f"plain HTTP on port {settings.http_redirect_port} answers with a redirect to HTTPS", flush=True
        )
    scheme = "https" if tls is not None else "http"
    print(f"serving {node.identity.node} on {scheme}://{settings.host}:{settings.port}/", flush=True)
    if tls is None and settings.https:
        print(f"motcua: warning: no certificate in {args.data}/tls: serving plain HTTP", file=sys.stderr)
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            workers=1,
            ssl_certfile=tls[0] if tls else None,
            ssl_keyfile=tls[1] if tls else None,
        )
    finally:
        if redirect is not None:
            redirect.should_exit = True
        node.close()
    return 0


def _central_init(args: argparse.Namespace) -> int:
    from central.city import ADMIN_USERNAME, init_central
    from central.database import database_config
    from central.metrics import TOKEN_FILE, scrape_token

    if args.database_password_file and not args.database:
        print("motcua: --database-password-file goes with --database", file=sys.stderr)
        return 2
    password = None
    if args.admin_password_file:
        password = Path(args.admin_password_file).read_text(encoding="utf-8").rstrip("\r\n")
    database = database_config(args.database, args.database_password_file) if args.database else None
    city, generated = init_central(args.data, args.province, password, database=database)
    try:
        print(f"city node {city.node.identity.node} for {city.node.unit.name if city.node.unit else ''}")
        fleet = "fleet.db" if database is None else "database.json"
        print(f"  in {args.data}: reference data, {fleet}, account {ADMIN_USERNAME} (admin)")
        if database is not None:
            print(f"  fleet (node registry, requests, acks) on PostgreSQL: {database.where}")
        if generated:
            print(f"  password of {ADMIN_USERNAME}: {generated}   (shown once: write it down)")
        scrape_token(Path(args.data))
        print(f"  Prometheus scrape token in {Path(args.data) / TOKEN_FILE} (see the city IT guide)")
    finally:
        city.close()
    print(f"next: motcua node add --data {args.data} --unit CODE --central-url URL --out NODE_FILE")
    return 0


def _central_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from central.app import create_central_app
    from central.city import open_central
    from central.hub import Hub
    from central.upstream.sender import Runner
    from central.upstream.store import UPSTREAM_FILE, UpstreamStore
    from edge.serverlock import serving
    from edge.settings import load

    settings = load(args.data, host=args.host, port=args.port)
    if bool(args.tls_cert) != bool(args.tls_key):
        print("motcua: give both --tls-cert and --tls-key (or neither)", file=sys.stderr)
        return 2
    with serving(args.data):
        city = open_central(args.data)
        upstream = UpstreamStore(Path(args.data) / UPSTREAM_FILE)
        runner = Runner(Path(args.data), upstream, city.node.replica, city.node.identity.sign)
        try:
            app = create_central_app(settings, Hub(city), upstream=upstream)
            runner.start()
            scheme = "https" if args.tls_cert else "http"
            print(
                f"serving city {city.node.identity.node} on {scheme}://{args.host}:{args.port}/", flush=True
            )
            uvicorn.run(
                app,
                host=args.host,
                port=args.port,
                log_level="warning",
                workers=1,
                ssl_certfile=args.tls_cert,
                ssl_keyfile=args.tls_key,
            )
        finally:
            runner.stop()
            upstream.close()
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
        new = add_node(
            city, args.unit, args.central_url, tls_pin=args.tls_pin, insecure_lan_test=args.insecure_lan_test
        )
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
    from central.city import ANY_SHAPES
    from edge.accounts import add_account
    from edge.node import open_node

    password = Path(args.password_file).read_text(encoding="utf-8").rstrip("\r\n")
    node = open_node(args.data, shapes=ANY_SHAPES)  # a standalone box's accounts, or the city's
    try:
        add_account(node, args.username, args.full_name or args.username, args.role, password, args.unit)
    finally:
        node.close()
    print(f"account {args.username} ({args.role}) added")
    return 0


def _catalogue_import(args: argparse.Namespace) -> int:
    from central.city import ANY_SHAPES
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

    node = open_node(args.data, shapes=ANY_SHAPES)
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


def _sync_export(args: argparse.Namespace) -> int:
    from central.city import open_central
    from central.database import is_city
    from edge.node import open_node
    from ops import bundle

    out = Path(args.out)
    if is_city(Path(args.data)):
        if not (args.unit or args.node):
            print("motcua: at the city, say whose bundle: --unit CODE or --node NODE", file=sys.stderr)
            return 2
        since = bundle.read_since(args.since_vector, "cursor") if args.since_vector else None
        city = open_central(args.data)
        try:
            target = args.node or bundle.node_of_unit(city, args.unit)
            report = bundle.export_from_city(city, target, out, since)
        finally:
            city.close()
    else:
        node = open_node(args.data)
        try:
            me = node.identity.node
            since = bundle.read_since(args.since_vector, me) if args.since_vector else None
            report = bundle.export_from_edge(node, out, since)
        finally:
            node.close()
    print(report.summary())
    return 0


def _sync_import(args: argparse.Namespace) -> int:
    from central.city import open_central
    from central.database import is_city
    from edge.node import open_node
    from ops import bundle

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if is_city(Path(args.data)):
        city = open_central(args.data)
        try:
            report = bundle.import_at_city(city, Path(args.file), progress)
        finally:
            city.close()
    else:
        node = open_node(args.data)
        try:
            report = bundle.import_at_edge(node, Path(args.file), progress)
        finally:
            node.close()
    print(report.summary())
    return 0


def _backup_config(args: argparse.Namespace) -> int:
    from ops import backup

    path, replica, defaulted = backup.write_config(Path(args.data), args.replica)
    names = ", ".join(db.name for db in backup.databases(Path(args.data)))
    print(f"wrote {path}: {names} -> {replica}")
    if defaulted:
        print("  (the default replica, next to the data directory: better on a second disk or a USB stick)")
    return 0


def _backup_run(args: argparse.Namespace) -> int:
    from ops import backup

    return backup.run(Path(args.data))


def _backup_status(args: argparse.Namespace) -> int:
    from ops import backup

    print(backup.status(Path(args.data)).summary())
    return 0


def _backup_restore(args: argparse.Namespace) -> int:
    from ops import backup

    print(backup.restore(Path(args.data), Path(args.to)).summary())
    return 0


def _audit(args: argparse.Namespace) -> int:
    import json
    import time

    from edge.audit import AUDIT_FILE, AuditLog
    from edge.i18n import format_datetime

    path = Path(args.data) / AUDIT_FILE
    if not path.exists():
        print(f"motcua: {path} does not exist: nothing was refused here yet, or DIR is not a node")
        return 0
    log = AuditLog(path)
    if args.reads:
        try:
            since = int((time.time() - args.hours * 3600) * 1000)
            reads = log.reads(actor=args.account, since_ms=since, limit=args.limit)
        finally:
            log.close()
        print(
            f"{len(reads)} read(s) of dossiers in the last {args.hours} h "
            f"(newest first, at most {args.limit})"
        )
        for r in reads:
            detail = json.dumps(r.detail, ensure_ascii=False) if r.detail else ""
            print(
                f"  {format_datetime(r.at_ms)}  {r.actor:15} {r.what:8} "
                f"{r.code or r.dossier or '-'}  {detail}"
            )
        return 0
    try:
        since = int((time.time() - args.hours * 3600) * 1000)
        counts = log.counts(since)
        entries = log.entries(event=args.event, since_ms=since, limit=args.limit)
    finally:
        log.close()
    total = sum(counts.values())
    print(
        f"{total} refusal(s) in the last {args.hours} h: " + ", ".join(f"{e} {n}" for e, n in counts.items())
    )
    for e in entries:
        where = f"{e.method or ''} {e.path or ''}".strip()
        detail = json.dumps(e.detail, ensure_ascii=False) if e.detail else ""
        who = f"{e.actor or '-'} from {e.remote or '-'}"
        print(f"  {format_datetime(e.at_ms)}  {e.event:15} {who}  {where}  {detail}")
    return 0


def _record_verify(args: argparse.Namespace) -> int:
    import json

    from central.city import open_central
    from central.records import verify_record
    from edge.i18n import format_datetime

    try:
        document = json.loads(Path(args.file).read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:
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
    except sqlite3.OperationalError as exc:
        if not is_disk_error(exc):
            raise
        # A full, read-only or failing disk is the technician's to fix: one line, no traceback.
        print(f"motcua: the database could not be opened or written ({exc}): check the disk", file=sys.stderr)
        return 2
    except Exception as exc:
        psycopg = sys.modules.get("psycopg")  # loaded only by a city on PostgreSQL
        if psycopg is None or not isinstance(exc, psycopg.OperationalError):
            raise
        # The city's PostgreSQL went away in the middle of a command: say so, no traceback.
        said = " ".join(str(exc).split())[:300]
        print(f"motcua: the city's PostgreSQL database failed ({said}): try again", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
