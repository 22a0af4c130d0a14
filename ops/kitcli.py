"""The shell of ``motcua provision create`` and ``motcua provision apply`` (see ops/kit.py).

Refusals print one line naming the problem and exit 2 (ops/cli.py maps :class:`KitRefused`);
what a technician reads here is written down, with the fix, in ops/README.md.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from edge.errors import ConfigError
from ops import kit
from sync.identity import fingerprint

REPO_ROOT = Path(__file__).resolve().parents[1]


def _say(line: str) -> None:
    print(line, flush=True)


def read_passphrase(path: str | None, *, confirm: bool) -> str:
    if path is not None:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    if not sys.stdin.isatty():
        raise ConfigError("no terminal to ask the passphrase on: give --passphrase-file")
    first = getpass.getpass("kit passphrase: ")
    if confirm:
        kit.check_passphrase(first)
        if getpass.getpass("again: ") != first:
            raise ConfigError("the two passphrases differ; nothing was written")
    return first


def create(args: argparse.Namespace) -> int:
    from central.city import open_central

    passphrase = read_passphrase(args.passphrase_file, confirm=True)
    kit.check_passphrase(passphrase)
    wheels = None if args.no_wheelhouse else REPO_ROOT
    if wheels is not None and not (REPO_ROOT / "pyproject.toml").exists():
        raise ConfigError(
            "the wheelhouse is built from motcua's source tree, not found here: --no-wheelhouse"
        )
    city = open_central(args.data)
    try:
        manifest = kit.create_kit(
            city,
            args.unit,
            args.central_url,
            args.out,
            passphrase,
            valid_days=args.valid_days,
            tls_pin=args.tls_pin,
            insecure_lan_test=args.insecure_lan_test,
            lan_names=args.lan_name,
            wheelhouse_from=wheels,
            progress=_say,
        )
        fp = fingerprint(city.node.identity.public_raw)
    finally:
        city.close()
    until = kit.date_text(manifest["expires_ms"])
    _say(f"wrote kit {args.out}: {len(manifest['files']) + 2} files, valid until {until}")
    _say(f"city key fingerprint: {fp}   (the technician checks this on the box)")
    _say("give the passphrase to the technician separately from the stick")
    return 0


def apply(args: argparse.Namespace) -> int:
    verified = kit.verify_kit(args.kit, expect_city=args.expect_city)
    _say(f"kit for node {verified.manifest['node']} (unit {verified.manifest['unit']})")
    _say(f"city key fingerprint: {verified.city_fingerprint}")
    if args.expect_city:
        _say("  matches --expect-city")
    else:
        _say("  compare it with the fingerprint city IT gave you; if they differ, stop and call city IT")
    _say(f"all {len(verified.manifest['files'])} files intact, signature valid")
    already = kit.applied_node(Path(args.data))
    if already == verified.manifest["node"]:
        _say(f"already applied: {args.data} is node {already}; nothing changed")
        return 0
    passphrase = read_passphrase(args.passphrase_file, confirm=False)
    applied = kit.apply_kit(verified, args.data, passphrase)
    if applied.already:
        _say(f"already applied: {args.data} is node {applied.node}; nothing changed")
        return 0
    _say(f"node {applied.node} created in {args.data} ({applied.ops} ops of reference data and accounts)")
    _say(f"next: motcua edge serve --data {args.data} --host 0.0.0.0")
    _say("  (or, after install.sh: systemctl enable --now motcua-edge motcua-backup)")
    return 0
