"""``motcua upstream add|status|retry`` as city IT types them (in process: ``ops.cli.main``)."""

from __future__ import annotations

import json
import stat

import pytest
from centralkit import PASSWORD

from central.upstream.store import DEAD, UPSTREAM_FILE, UpstreamStore
from ops.cli import main


@pytest.fixture
def city_dir(tmp_path, capsys):
    password = tmp_path / "pw"
    password.write_text(PASSWORD + "\n", encoding="utf-8")
    assert main(["central", "init", "--data", str(tmp_path / "city"), "--province", "92",
                 "--admin-password-file", str(password)]) == 0  # fmt: skip
    capsys.readouterr()
    return tmp_path / "city"


def add(city_dir, tmp_path, *extra: str, kind: str = "dvcqg", secret: str = "bi-mat-cong\n") -> int:
    secret_file = tmp_path / "portal.password"
    secret_file.write_text(secret, encoding="utf-8")
    return main(["upstream", "add", "--data", str(city_dir), "--name", kind, "--kind", kind,
                 "--url", "https://adapter.example.invalid/api", "--username", "motcua",
                 "--password-file", str(secret_file), *extra])  # fmt: skip


def test_add_keeps_the_credentials_0600_and_never_prints_them(city_dir, tmp_path, capsys):
    units = tmp_path / "units.csv"
    units.write_text("unit,electronic_id\n31135,000.31.35.H13\n", encoding="utf-8")
    assert add(city_dir, tmp_path, "--unit-code-file", str(units)) == 0
    out = capsys.readouterr()
    assert "bi-mat-cong" not in out.out + out.err
    assert "1 unit code(s)" in out.out
    secret = city_dir / "upstream" / "dvcqg.secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(secret.parent.stat().st_mode) == 0o700
    assert secret.read_text(encoding="utf-8") == "bi-mat-cong"
    assert main(["upstream", "status", "--data", str(city_dir), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert [(a["name"], a["kind"], a["backlog"]) for a in status["adapters"]] == [("dvcqg", "dvcqg", 0)]
    assert "bi-mat-cong" not in json.dumps(status)


def test_add_refuses_bad_input_with_one_clear_line_and_changes_nothing(city_dir, tmp_path, capsys):
    units = tmp_path / "units.csv"
    units.write_text("unit,electronic_id\n99999,000.99\n", encoding="utf-8")
    assert add(city_dir, tmp_path, "--unit-code-file", str(units)) == 2
    assert "line 2: unit '99999' is not a unit of the city" in capsys.readouterr().err
    assert add(city_dir, tmp_path, kind="lgsp", secret="only-one-line\n") == 2
    assert "two lines" in capsys.readouterr().err
    assert not (city_dir / "upstream" / "dvcqg.secret").exists()
    assert not (city_dir / UPSTREAM_FILE).exists()


def test_retry_sends_dead_letters_again(city_dir, tmp_path, capsys):
    assert add(city_dir, tmp_path) == 0
    store = UpstreamStore(city_dir / UPSTREAM_FILE)
    try:
        store.take("dvcqg", [("d1", "sync", 5, 1), ("d2", "sync", 6, 2)], 0)
        for item in store.items():
            store.later(item, DEAD, 0, "02", "MaDoiTuong không hợp lệ", 0)
    finally:
        store.close()
    assert main(["upstream", "status", "--data", str(city_dir)]) == 0
    out = capsys.readouterr().out
    assert "2 dead" in out
    assert "dead dvcqg d1 sync: [02] MaDoiTuong không hợp lệ" in out
    assert main(["upstream", "retry", "--data", str(city_dir), "--dossier", "d1"]) == 0
    assert "1 item(s)" in capsys.readouterr().out
    assert main(["upstream", "retry", "--data", str(city_dir), "--all-dead"]) == 0
    assert "1 item(s)" in capsys.readouterr().out
    store = UpstreamStore(city_dir / UPSTREAM_FILE)
    try:
        assert {i.state for i in store.items()} == {"wait"}
    finally:
        store.close()
