"""The link to the city over HTTPS, its certificate's key checked against the box's pin.

A real ``motcua central serve`` on 127.0.0.1 with a certificate issued on the spot (no public
CA knows it): a box holding the pin of its key syncs; when something else answers at that
address with another key, the box sends nothing, says why in one sentence (Vietnamese on the
clerk's page, English in the CLI and the log), and records the refusal in its signed attempt
log and its audit log. Plain ``http://`` is refused unless the node says ``insecure_lan_test``.
"""

from __future__ import annotations

from pathlib import Path

from edgekit import login
from ports import free_port
from servers import NINH_KIEU, CityDir, edge_dir, opened_node, run_cli
from starlette.testclient import TestClient

from central.tls import issue_server_cert, key_pem, new_key, open_ca
from edge import i18n
from edge.app import create_app
from edge.settings import load
from edge.syncclient import PLAIN_LINK, UNTRUSTED
from sync import attempts
from sync.transport import spki_pin


def certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A server certificate for 127.0.0.1 and its key, issued by a CA made here."""
    key = new_key()
    ca = open_ca(directory / f"ca-{name}")
    cert = directory / f"{name}.pem"
    cert.write_bytes(issue_server_cert(ca, key.public_key(), ["127.0.0.1"], common_name=name))
    (directory / f"{name}.key").write_bytes(key_pem(key))
    return cert, directory / f"{name}.key"


def vietnamese(msgid: str) -> str:
    token = i18n.current_language.set("vi")
    try:
        return i18n.gettext_(msgid)
    finally:
        i18n.current_language.reset(token)


def last_attempt(box: Path) -> attempts.Attempt:
    with opened_node(box) as node, node.reader() as conn:
        attempt, _ = attempts.latest(conn)
        records = attempts.records(conn)
        assert attempts.verify_chain(records, node.identity.public_raw) == len(records)
    assert attempt is not None
    return attempt


def requests_at_the_city(city: CityDir) -> int:
    """Every signed request a box made (or claimed to make) that reached the city."""
    with city.opened() as opened:
        return int(opened.fleet.conn.execute("SELECT count(*) FROM attempts").fetchone()[0])


def test_a_box_with_the_pin_syncs_and_another_key_at_the_citys_address_is_refused_and_recorded(
    tmp_path: Path,
) -> None:
    city = CityDir(tmp_path / "city")
    city.add_account("canbo01", "clerk", NINH_KIEU)
    real = certificate(tmp_path, "city")
    impostor = certificate(tmp_path, "impostor")
    pin = spki_pin(real[0].read_bytes())
    assert pin != spki_pin(impostor[0].read_bytes())
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    box = edge_dir(tmp_path / "box", city.add_node(NINH_KIEU, url, tmp_path / "box.json", tls_pin=pin))
    unpinned = edge_dir(tmp_path / "unpinned", city.add_node(NINH_KIEU, url, tmp_path / "unpinned.json"))

    with city.server(port, tmp_path, tls=real):
        done = run_cli("sync", "now", "--data", str(box))
        assert done.returncode == 0, done.stdout + done.stderr
        # Without a pin the system's CA store decides, and it does not know this certificate.
        refused = run_cli("sync", "now", "--data", str(unpinned))
        assert refused.returncode != 0
        assert UNTRUSTED in refused.stdout
    assert last_attempt(box).outcome == attempts.Outcome.OK
    assert last_attempt(unpinned).error == UNTRUSTED
    heard = requests_at_the_city(city)
    assert heard > 0

    with city.server(port, tmp_path, tls=impostor):
        refused = run_cli("sync", "now", "--data", str(box))
        assert refused.returncode == 1, refused.stdout + refused.stderr  # retried later, backing off
        assert UNTRUSTED in refused.stdout
        assert pin in refused.stdout
        # The clerk's "Sync now" says it in Vietnamese, in one sentence.
        with opened_node(box) as node:
            app = create_app(load(box), node, background=False)
            with TestClient(app, follow_redirects=False) as client:
                token = login(client)
                answer = client.post("/sync-now", data={"csrf": token, "next": "/dossiers"})
                page = client.get(answer.headers["location"]).text
            assert vietnamese(UNTRUSTED) in page
            refusals = node.audit.entries(event="sync_refused")
            assert len(refusals) == 2
            assert all("peer_untrusted" in str(e.detail) for e in refusals)
    attempt = last_attempt(box)
    assert (attempt.outcome, attempt.error, attempt.bytes_sent) == (attempts.Outcome.FAILED, UNTRUSTED, 0)
    assert requests_at_the_city(city) == heard


def test_plain_http_to_the_city_is_refused_unless_the_node_says_insecure_lan_test(tmp_path: Path) -> None:
    city = CityDir(tmp_path / "city")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    allowed = edge_dir(tmp_path / "allowed", city.add_node(NINH_KIEU, url, tmp_path / "allowed.json"))
    with city.opened() as opened:
        from central.registry import add_node, write_node_file

        new = add_node(opened, NINH_KIEU, url)  # no insecure_lan_test
        write_node_file(tmp_path / "strict.json", new.node_file)
    strict = edge_dir(tmp_path / "strict", tmp_path / "strict.json")
    with city.server(port, tmp_path):
        assert run_cli("sync", "now", "--data", str(allowed)).returncode == 0
        heard = requests_at_the_city(city)
        refused = run_cli("sync", "now", "--data", str(strict))
        assert refused.returncode == 2
        assert PLAIN_LINK in refused.stdout
    attempt = last_attempt(strict)
    assert (attempt.error, attempt.bytes_sent) == (PLAIN_LINK, 0)
    assert requests_at_the_city(city) == heard


def test_motcua_tls_pin_prints_the_pin_the_box_checks(tmp_path: Path) -> None:
    cert, _ = certificate(tmp_path, "city")
    done = run_cli("tls", "pin", str(cert))
    assert (done.returncode, done.stdout.strip()) == (0, spki_pin(cert.read_bytes()))
    assert run_cli("tls", "pin", str(tmp_path / "city.key")).returncode == 2
