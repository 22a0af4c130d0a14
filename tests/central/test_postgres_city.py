"""A city whose fleet is on PostgreSQL (``motcua central init --database URL``), on a real server.

What the city does with it (register, serve boxes, revoke, show the fleet pages and metrics), and
what it says when the database cannot be used: a refused connection, a missing database, wrong or
missing credentials, a schema newer than the software, a URL with a password in it. Each of
those is one sentence on stderr and exit status 2, never a traceback, and no password printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from centralkit import CAI_KHE, NINH_KIEU, PASSWORD, city_world, sync_round
from edgekit import csrf_of, receive_sample
from pgcluster import with_database
from ports import free_port

from central.city import open_central
from central.database import DATABASE_FILE, DatabaseConfig
from central.metrics import TOKEN_FILE
from central.pgfleet import PostgresFleet
from central.registry import revoke_node
from sync.errors import RevokedNode

SECRET = "Bí-mật-Đúng-7Q"
"""A database password: never to appear in an output or a file of the city."""


def motcua(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``motcua ARGS`` as a process, as city IT runs it."""
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **(env or {})},
    )


def init(tmp_path: Path, url: str, *extra: str, env: dict[str, str] | None = None):
    admin = tmp_path / "admin-password"
    admin.write_text(PASSWORD + "\n", encoding="utf-8")
    return motcua(
        "central", "init", "--data", str(tmp_path / "city"), "--province", "92",
        "--admin-password-file", str(admin), "--database", url, *extra, env=env,
    )  # fmt: skip


def refused_in_one_sentence(done: subprocess.CompletedProcess[str], says: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("motcua: ")
    assert says in lines[0], lines[0]
    assert SECRET not in done.stdout + done.stderr


def test_central_init_with_a_database_keeps_the_fleet_there(tmp_path, postgres_url) -> None:
    done = init(tmp_path, postgres_url)
    assert done.returncode == 0, done.stderr
    city_dir = tmp_path / "city"
    assert "fleet (node registry, requests, acks) on PostgreSQL: postgres@127.0.0.1:" in done.stdout
    assert json.loads((city_dir / DATABASE_FILE).read_text()) == {"url": postgres_url, "password_file": None}
    assert not (city_dir / "fleet.db").exists()
    out = tmp_path / "ninhkieu.json"
    added = motcua("node", "add", "--data", str(city_dir), "--unit", NINH_KIEU,
                   "--central-url", "http://127.0.0.1:8800", "--out", str(out))  # fmt: skip
    assert added.returncode == 0, added.stderr
    node = json.loads(out.read_text())["node"]
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT unit FROM nodes WHERE node = %s", (node,)).fetchone() == (NINH_KIEU,)
        assert conn.execute("SELECT max(version) FROM migrations WHERE namespace = 'fleet'").fetchone() == (
            1,
        )
    city = open_central(city_dir)
    try:
        assert isinstance(city.fleet, PostgresFleet)
        assert city.fleet.registration(node).unit == NINH_KIEU
    finally:
        city.close()
    # The directory holds a city now: a second init is refused, as for a city on SQLite.
    refused_in_one_sentence(init(tmp_path, postgres_url), "refusing to overwrite")


def test_a_city_on_postgresql_serves_its_boxes_and_shows_them(tmp_path, postgres_url) -> None:
    """The sync endpoints log, acknowledge and check nonces in PostgreSQL; a revocation holds;
    the fleet pages and the metrics read from there."""
    with city_world(tmp_path, DatabaseConfig(postgres_url)) as world:
        assert isinstance(world.city.fleet, PostgresFleet)
        box = world.edges[NINH_KIEU]
        peer = world.peer(NINH_KIEU)
        sync_round(box, peer)
        receive_sample(box, "canbo01", address_unit=NINH_KIEU)
        pushed = sync_round(box, peer)
        assert pushed.pushed == 1
        node = box.identity.node
        with psycopg.connect(postgres_url) as conn:
            assert conn.execute("SELECT count(*) FROM acks WHERE node = %s", (node,)).fetchone()[0] == 1
            endpoints = {r[0] for r in conn.execute("SELECT endpoint FROM attempts WHERE node = %s", (node,))}
            assert {"hello", "push", "pull"} <= endpoints
            assert conn.execute("SELECT count(*) FROM nonces WHERE node = %s", (node,)).fetchone()[0] > 0
        status = world.city.fleet.status(node)
        assert status.have == box.replica.vector()[node]
        assert status.software == "motcua-test"

        with httpx.Client(base_url=world.url, timeout=30, follow_redirects=False) as admin:
            admin.cookies.set("lang", "en")
            page = admin.get("/login")
            logged = admin.post("/login", data={"username": "quantri", "password": PASSWORD,
                                                "csrf": csrf_of(page.text), "next": "/"})  # fmt: skip
            assert logged.status_code == 303
            assert node in admin.get("/fleet").text
            node_page = admin.get(f"/fleet/nodes/{node}")
            assert node_page.status_code == 200
            assert "<td>fetch changes</td>" in node_page.text  # its history, read from PostgreSQL
            assert node_page.text.count("<svg") == 2  # ops per day and lag charts
        token = (world.city.node.data_dir / TOKEN_FILE).read_text(encoding="ascii").strip()
        metrics = httpx.get(world.url + "/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert f'motcua_node_errors_total{{node="{node}",unit="{NINH_KIEU}"}} 0.0' in metrics.text

        revoke_node(world.city, node)
        with pytest.raises(RevokedNode):
            sync_round(box, peer)
        assert world.city.fleet.status(node).last_error_code == "revoked_node"
        other = world.edges[CAI_KHE]
        assert sync_round(other, world.peer(CAI_KHE)).central_digest  # the other box still syncs


def test_a_password_comes_from_a_file_or_pgpassfile_never_from_the_url(
    tmp_path, postgres_url, postgres_server
) -> None:
    database = urlsplit(postgres_url).path.lstrip("/")
    postgres_server.execute([
        f"CREATE ROLE city_{database} LOGIN PASSWORD '{SECRET}'",
        f'ALTER DATABASE "{database}" OWNER TO city_{database}',
    ])  # fmt: skip
    role = f"city_{database}"
    try:
        port = urlsplit(postgres_url).port
        url = f"postgresql://city_{database}@127.0.0.1:{port}/{database}"
        wrong = tmp_path / "wrong"
        wrong.write_text("not-the-password\n", encoding="utf-8")
        right = tmp_path / "right"
        right.write_text(SECRET + "\n", encoding="utf-8")
        pgpass = tmp_path / "pgpass"
        pgpass.write_text(f"127.0.0.1:{port}:{database}:city_{database}:{SECRET}\n", encoding="utf-8")
        pgpass.chmod(0o600)
        nothing = {"PGPASSFILE": str(tmp_path / "none"), "PGPASSWORD": ""}

        with_password = url.replace(f"city_{database}@", f"city_{database}:{SECRET}@")
        refused_in_one_sentence(init(tmp_path, with_password), "the database URL carries a password")
        refused_in_one_sentence(
            init(tmp_path, url, env=nothing), f'asks a password of user "city_{database}"'
        )
        refused_in_one_sentence(
            init(tmp_path, url, "--database-password-file", str(wrong), env=nothing),
            f'PostgreSQL refused the credentials of user "city_{database}"',
        )
        assert not (tmp_path / "city").exists()  # nothing made of a city that could not start

        by_file = init(tmp_path, url, "--database-password-file", str(right), env=nothing)
        assert by_file.returncode == 0, by_file.stderr
        config = (tmp_path / "city" / DATABASE_FILE).read_text()
        assert SECRET not in config + by_file.stdout + by_file.stderr
        assert json.loads(config)["password_file"] == str(right)
        listed = motcua("node", "add", "--data", str(tmp_path / "city"), "--unit", NINH_KIEU,
                        "--central-url", "http://x", "--out", str(tmp_path / "n"), env=nothing)  # fmt: skip
        assert listed.returncode == 0, listed.stderr

        # libpq's own password file works as well (the city's config then names none).
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("DROP TABLE nodes, node_status, attempts, acks, nonces, migrations")
        elsewhere = tmp_path / "second"
        elsewhere.mkdir()
        by_pgpass = init(elsewhere, url, env={"PGPASSFILE": str(pgpass), "PGPASSWORD": ""})
        assert by_pgpass.returncode == 0, by_pgpass.stderr
        assert json.loads((elsewhere / "city" / DATABASE_FILE).read_text())["password_file"] is None
    finally:  # roles belong to the whole server: leave none behind
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"REASSIGN OWNED BY {role} TO CURRENT_USER")
            conn.execute(f"DROP OWNED BY {role}")
        postgres_server.execute([f"DROP ROLE {role}"])


def test_an_unreachable_server_or_a_missing_database_is_one_sentence(tmp_path, postgres_url) -> None:
    nobody = with_database(postgres_url, "motcua_no_such_database")
    refused_in_one_sentence(init(tmp_path, nobody), 'has no database "motcua_no_such_database"')
    silent = f"postgresql://postgres@127.0.0.1:{free_port()}/motcua"
    refused_in_one_sentence(init(tmp_path, silent), "refused the connection: is it running")
    refused_in_one_sentence(init(tmp_path, "mysql://root@127.0.0.1/x"), "--database takes a PostgreSQL URL")
    assert not (tmp_path / "city").exists()


def test_a_database_newer_than_the_software_is_refused_in_one_sentence(tmp_path, postgres_url) -> None:
    assert init(tmp_path, postgres_url).returncode == 0
    with psycopg.connect(postgres_url) as conn:
        conn.execute("INSERT INTO migrations VALUES ('fleet', 99, 'from the future', 0)")
    newer = "the database is at fleet schema version 99, but this software only knows up to version 1"
    city_dir = str(tmp_path / "city")
    refused_in_one_sentence(
        motcua("node", "add", "--data", city_dir, "--unit", NINH_KIEU, "--central-url", "http://x",
               "--out", str(tmp_path / "n.json")),
        newer,
    )  # fmt: skip
    refused_in_one_sentence(motcua("central", "serve", "--data", city_dir, "--port", str(free_port())), newer)
    another = tmp_path / "another"
    another.mkdir()
    refused_in_one_sentence(init(another, postgres_url), newer)


def test_a_database_that_holds_another_citys_fleet_is_refused(tmp_path, postgres_url) -> None:
    first = tmp_path / "first"
    first.mkdir()
    assert init(first, postgres_url).returncode == 0
    assert motcua("node", "add", "--data", str(first / "city"), "--unit", NINH_KIEU, "--central-url",
                  "http://x", "--out", str(tmp_path / "n.json")).returncode == 0  # fmt: skip
    second = tmp_path / "second"
    second.mkdir()
    refused_in_one_sentence(init(second, postgres_url), "already holds a city's fleet (1 node(s) registered)")
