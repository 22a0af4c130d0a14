"""The shell of ``motcua upstream add|status|retry|run|simulate`` (see central/upstream/).

``add`` writes the adapter's credentials to ``DIR/upstream/NAME.secret`` (mode 0600) and never
prints them; ``status`` and ``retry`` read and write ``DIR/upstream.db`` (beside a running city:
it is not the node's database); ``run`` sends in the foreground when the city's server does
not (the adapter's lock file keeps the two from sending at once); ``simulate`` serves a
simulated portal for tests and the demo.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.errors import ConfigError

if TYPE_CHECKING:
    _Commands = argparse._SubParsersAction[argparse.ArgumentParser]

KINDS = ("dvcqg", "lgsp")


def add_commands(sub: _Commands) -> None:
    upstream = sub.add_parser("upstream", help="reporting dossiers to the national portal (DVCQG, LGSP)")
    up = upstream.add_subparsers(dest="upstream_command", metavar="COMMAND", required=True)
    add = up.add_parser("add", help="configure an adapter (again: change it)")
    add.add_argument("--data", required=True, help="the city's data directory")
    add.add_argument("--name", required=True, help="the adapter's name, e.g. dvcqg")
    add.add_argument("--kind", required=True, choices=KINDS)
    add.add_argument("--url", required=True, help="the portal's adapter URL (https://...)")
    add.add_argument("--username", required=True, help="DVCQG: the login; LGSP: the AppName")
    add.add_argument(
        "--password-file",
        required=True,
        help="DVCQG: the password; LGSP: the access key and the secret key, one a line",
    )
    add.add_argument("--unit-code-file", default=None, help="CSV unit,electronic_id")
    add.add_argument("--sector-code-file", default=None, help="CSV sector,code")
    add.add_argument("--rate", type=float, default=5.0, help="requests a second at most (default 5)")
    add.set_defaults(func=_add)
    status = up.add_parser("status", help="backlog, last success, errors and dead letters per adapter")
    status.add_argument("--data", required=True, help="the city's data directory")
    status.add_argument("--json", action="store_true", help="machine-readable")
    status.set_defaults(func=_status)
    retry = up.add_parser("retry", help="send a dossier (or every dead letter) again now")
    retry.add_argument("--data", required=True, help="the city's data directory")
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("--dossier", help="the dossier's id")
    which.add_argument("--all-dead", action="store_true", help="every dead letter")
    retry.set_defaults(func=_retry)
    run = up.add_parser("run", help="send in the foreground (when the city's server does not)")
    run.add_argument("--data", required=True, help="the city's data directory")
    run.set_defaults(func=_run)
    simulate = up.add_parser("simulate", help="serve a simulated portal (tests, demo)")
    simulate.add_argument("--port", type=int, required=True)
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--kind", choices=KINDS, default="dvcqg")
    simulate.add_argument("--username", default="motcua", help="the login (LGSP: AppName) it accepts")
    simulate.add_argument(
        "--password-file", default=None, help="the only credentials it accepts (default: any)"
    )
    simulate.set_defaults(func=_simulate)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc}") from exc


def _add(args: argparse.Namespace) -> int:
    from central.city import open_central
    from central.upstream.codes import parse_sector_codes, parse_unit_codes
    from central.upstream.lgsp import split_keys
    from central.upstream.store import UPSTREAM_FILE, AdapterConfig, UpstreamStore, write_secret

    data = Path(args.data)
    if not args.name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError("an adapter's name is letters, digits, - and _")
    if not args.url.startswith(("https://", "http://")):
        raise ConfigError("--url must be an http(s) URL")
    secret = _read(args.password_file, "password file").strip("\r\n")
    if not secret:
        raise ConfigError(f"{args.password_file} is empty")
    if args.kind == "lgsp":
        try:
            split_keys(secret)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    city = open_central(data)
    try:
        units = {entity for (_, entity) in city.node.replica.states("unit")}
    finally:
        city.close()
    unit_codes = (
        parse_unit_codes(_read(args.unit_code_file, "unit code file"), units) if args.unit_code_file else {}
    )
    sector_codes = (
        parse_sector_codes(_read(args.sector_code_file, "sector code file")) if args.sector_code_file else {}
    )
    secret_path = write_secret(data, args.name, secret)
    store = UpstreamStore(data / UPSTREAM_FILE)
    try:
        now = _now_ms()
        store.add_adapter(
            AdapterConfig(
                args.name, args.kind, args.url, args.username, str(secret_path.relative_to(data)), args.rate
            ),
            now,
        )
        if unit_codes:
            store.set_codes("unit", unit_codes, now)
        if sector_codes:
            store.set_codes("sector", sector_codes, now)
    finally:
        store.close()
    print(
        f"adapter {args.name} ({args.kind}) → {args.url}; credentials in {secret_path} (0600); "
        f"{len(unit_codes)} unit code(s), {len(sector_codes)} sector code(s) imported"
    )
    return 0


def status_report(data: Path) -> dict[str, Any]:
    from central.upstream.store import DEAD, UPSTREAM_FILE, UpstreamStore

    store = UpstreamStore(data / UPSTREAM_FILE)
    try:
        now = _now_ms()
        return {
            "adapters": [
                {
                    "name": s.name,
                    "kind": s.kind,
                    "url": s.url,
                    "backlog": s.backlog,
                    "blocked": s.blocked,
                    "dead": s.dead,
                    "synced": s.synced,
                    "oldest_waiting_ms": s.oldest_waiting_ms,
                    "last_success_ms": s.last_success_ms,
                    "requests_1h": s.requests_1h,
                    "errors_1h": s.errors_1h,
                    "error_rate_1h": round(s.error_rate, 4),
                }
                for s in store.stats(now)
            ],
            "dead_letters": [
                {
                    "adapter": i.adapter,
                    "dossier": i.dossier,
                    "op": i.op,
                    "error_code": i.error_code,
                    "message": i.message,
                }
                for i in store.items(state=DEAD)
            ],
        }
    finally:
        store.close()


def _status(args: argparse.Namespace) -> int:
    from edge.i18n import format_datetime

    data = Path(args.data)
    if not (data / "fleet.db").exists():
        raise ConfigError(f"{data} is not a city data directory")
    report = status_report(data)
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return 0
    if not report["adapters"]:
        print("no upstream adapter: add one with motcua upstream add")
    for a in report["adapters"]:
        print(
            f"{a['name']} ({a['kind']}) {a['url']}: {a['synced']} synced, backlog {a['backlog']} "
            f"({a['blocked']} blocked), {a['dead']} dead, oldest waiting "
            f"{format_datetime(a['oldest_waiting_ms']) or '-'}, last success "
            f"{format_datetime(a['last_success_ms']) or '-'}, "
            f"errors {a['errors_1h']}/{a['requests_1h']} in 1h"
        )
    for d in report["dead_letters"]:
        print(f"  dead {d['adapter']} {d['dossier']} {d['op']}: [{d['error_code']}] {d['message']}")
    return 0


def _retry(args: argparse.Namespace) -> int:
    from central.upstream.store import UPSTREAM_FILE, UpstreamStore

    store = UpstreamStore(Path(args.data) / UPSTREAM_FILE)
    try:
        moved = store.retry(_now_ms(), dossier=args.dossier, all_dead=args.all_dead)
    finally:
        store.close()
    print(f"{moved} item(s) will be sent again now")
    return 0


def _run(args: argparse.Namespace) -> int:
    from central.city import open_central
    from central.upstream.sender import Runner
    from central.upstream.store import UPSTREAM_FILE, UpstreamStore

    data = Path(args.data)
    city = open_central(data)
    store = UpstreamStore(data / UPSTREAM_FILE)
    runner = Runner(data, store, city.node.replica, city.node.identity.sign)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    runner.start()
    print(f"sending upstream for {data} (Ctrl-C to stop)", flush=True)
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        runner.stop()
        store.close()
        city.close()
    return 0


def _simulate(args: argparse.Namespace) -> int:
    import uvicorn

    from central.upstream.simulator import create_simulator

    password = _read(args.password_file, "password file").strip("\r\n") if args.password_file else ""
    app = create_simulator(args.kind, args.username, password)
    print(f"simulated {args.kind} portal on http://{args.host}:{args.port}/ (pid {os.getpid()})", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", workers=1)
    return 0
