"""One writer per node, with real processes (docs/decisions/0007).

City IT runs ``motcua user add``, ``node add``, ``catalogue import`` and ``node revoke`` against
the city's data directory while ``motcua central serve`` serves it: each command commits in its
own process, and the server must see those commits before its next write or pull. A second
server on one directory is refused by ``DIR/server.lock``; a lock left by a killed server is not.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from ports import free_port
from servers import (
    CAI_KHE,
    NINH_KIEU,
    PASSWORD,
    CityDir,
    Clerk,
    World,
    assert_converged,
    edge_dir,
    edge_server,
    opened_node,
    run_cli,
)

from ops.catalogue import read_catalogue

SAMPLE_CATALOGUE = Path(__file__).parents[2] / "ops" / "samples" / "catalogue-sample.csv"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "page has no CSRF field"
    return found.group(1)


def change_password(url: str, username: str, current: str, new: str) -> httpx.Response:
    """A write the city server makes itself: an account changes its password on the city's pages."""
    with httpx.Client(base_url=url, timeout=30) as web:
        page = web.get("/login")
        logged_in = web.post(
            "/login",
            data={"username": username, "password": current, "csrf": csrf_of(page.text), "next": "/"},
        )
        assert logged_in.status_code == 303, logged_in.text
        token = csrf_of(web.get("/").text)
        return web.post(
            "/account/password", data={"csrf": token, "current": current, "new": new, "again": new}
        )


def sync_now(box: Path) -> str:
    done = run_cli("sync", "now", "--data", str(box))
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def cli_ok(*args: str) -> str:
    done = run_cli(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_clerk_added_while_the_city_serves_logs_in_at_the_box_after_its_next_sync(tmp_path: Path) -> None:
    city = CityDir(tmp_path / "city")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    box = edge_dir(tmp_path / "box", city.add_node(NINH_KIEU, url, tmp_path / "box.node.json"))
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n", encoding="utf-8")
    with city.server(port, tmp_path):
        sync_now(box)  # the box is up to date: its cursor is at the city's feed head
        cli_ok("user", "add", "--data", str(city.dir), "--unit", NINH_KIEU, "--username", "canbo_moi",
               "--role", "clerk", "--password-file", str(password_file))  # fmt: skip
        # The box's next sync brings the account (before: nothing, and the cursor moved past it).
        sync_now(box)
        with opened_node(box) as node:
            assert node.replica.state("account", "canbo_moi") is not None
        # The city's own writes still work (before: 500, UNIQUE constraint failed on sync_op).
        changed = change_password(url, "quantri", PASSWORD, "Matkhau456")
        assert changed.status_code == 200, changed.text
        assert sync_now(box)  # and the city's op travels as every other
    with edge_server(box, free_port(), tmp_path) as served:
        Clerk(served.url, "canbo_moi").close()  # the new clerk logs in at the box
    with city.opened() as opened:
        replica = opened.node.replica
        me = opened.node.identity.node
        assert all(replica.op(me, seq) is not None for seq in range(1, replica.vector()[me] + 1))
        assert [op.action for op in replica.ops_of("account", "quantri")] == ["create", "set"]


def test_node_add_catalogue_import_and_node_revoke_while_the_city_serves(tmp_path: Path) -> None:
    city = CityDir(tmp_path / "city")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    box = edge_dir(tmp_path / "box", city.add_node(NINH_KIEU, url, tmp_path / "box.node.json"))
    codes = [record.code for record in read_catalogue(SAMPLE_CATALOGUE)]
    with city.server(port, tmp_path):
        sync_now(box)
        new_file = tmp_path / "caikhe.node.json"
        cli_ok(
            "node",
            "add",
            "--data",
            str(city.dir),
            "--unit",
            CAI_KHE,
            "--central-url",
            url,
            "--out",
            str(new_file),
            "--insecure-lan-test",
        )
        caikhe = edge_dir(tmp_path / "caikhe", new_file)
        cli_ok("catalogue", "import", str(SAMPLE_CATALOGUE), "--data", str(city.dir))
        for directory in (box, caikhe):
            sync_now(directory)  # the box registered a moment ago is admitted, and both get the catalogue
            with opened_node(directory) as node:
                missing = [code for code in codes if node.replica.state("procedure", code) is None]
                assert not missing, f"{directory.name} lacks imported procedures {missing}"
        with opened_node(caikhe) as node:
            caikhe_id = node.identity.node
        cli_ok("node", "revoke", "--data", str(city.dir), caikhe_id)
        refused = run_cli("sync", "now", "--data", str(caikhe))
        assert refused.returncode == 2, refused.stdout + refused.stderr
        sync_now(box)  # the other box learns the revocation
        with opened_node(box) as node:
            assert node.replica.meta(f"sync.revoked:{caikhe_id}") is not None
        changed = change_password(url, "quantri", PASSWORD, "Matkhau456")
        assert changed.status_code == 200, changed.text
        sync_now(box)


def test_bundles_carried_both_ways_while_the_city_and_the_box_serve(world: World, tmp_path: Path) -> None:
    """The link is down and a technician carries USB bundles: exported and imported by commands
    run beside both servers. Once the link is back, the box's round finds the city holding what
    the bundle carried (before: the city's stale heads took it for new ops and the push failed on
    a duplicate key), and the writes of both servers went on meanwhile."""
    box = world.edges[NINH_KIEU]
    city = str(world.city.dir)
    assert world.round(NINH_KIEU).ok  # the box has its clerks' accounts
    world.close_nodes()
    box.proxy.set(down=True)
    served = world.serve_edge(NINH_KIEU)
    with Clerk(served.url, "canbo01") as clerk:
        first = str(clerk.receive("Nguyễn Văn An")["id"])
    out, back = tmp_path / "box.bundle", tmp_path / "city.bundle"
    cli_ok("sync", "export", "--data", str(box.dir), "--out", str(out))
    cli_ok("sync", "import", str(out), "--data", city)
    cli_ok("sync", "import", f"{out}.ack", "--data", str(box.dir))
    changed = change_password(world.central_url, "quantri", PASSWORD, "Matkhau456")
    assert changed.status_code == 200, changed.text
    cli_ok("sync", "export", "--data", city, "--unit", NINH_KIEU, "--out", str(back))
    cli_ok("sync", "import", str(back), "--data", str(box.dir))
    with Clerk(served.url, "canbo01") as clerk:
        second = str(clerk.receive("Trần Thị Bình")["id"])
    world.stop_edge(NINH_KIEU)
    box.proxy.heal()
    after_the_bundle = len(world.open(NINH_KIEU).replica.ops_of("dossier", second))
    healed = world.round(NINH_KIEU)
    assert healed.ok, healed.summary()
    # The city holds what the bundle carried: only what was written after it goes now.
    assert healed.ops_sent == after_the_bundle
    assert_converged(world, {first: (NINH_KIEU,), second: (NINH_KIEU,)})


def test_a_second_server_on_one_directory_is_refused_and_a_killed_ones_lock_blocks_nothing(
    tmp_path: Path,
) -> None:
    city = CityDir(tmp_path / "city")
    port = free_port()
    box = edge_dir(
        tmp_path / "box", city.add_node(NINH_KIEU, f"http://127.0.0.1:{port}", tmp_path / "n.json")
    )
    first = city.server(port, tmp_path).start()
    try:
        assert first.process is not None
        for command in ("central", "edge"):
            second = run_cli(command, "serve", "--data", str(city.dir), "--port", str(free_port()))
            assert second.returncode == 2
            assert second.stderr.strip() == (
                f"motcua: {city.dir} is already being served by another motcua server "
                f"(process {first.process.pid}); stop that one first, or give this one another data directory"
            )
        first.kill()  # SIGKILL: no shutdown, the lock file stays behind
        assert (city.dir / "server.lock").exists()
        again = city.server(free_port(), tmp_path).start()  # a stale file blocks nothing
        again.stop()
    finally:
        first.stop()
    with edge_server(box, free_port(), tmp_path) as served:
        assert served.process is not None
        second = run_cli("edge", "serve", "--data", str(box), "--port", str(free_port()))
        assert second.returncode == 2
        assert f"(process {served.process.pid})" in second.stderr
