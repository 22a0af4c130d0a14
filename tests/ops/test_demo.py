"""The demo (make run) as a visitor uses it: real servers, real logins, a link switched off and on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from ports import free_port

from ops.demo import PASSWORD

ROOT = Path(__file__).resolve().parents[2]


def wait_for(check, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def token(base: str, username: str) -> dict[str, str]:
    r = httpx.post(f"{base}/api/v1/auth/token", json={"username": username, "password": PASSWORD}, timeout=10)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def receive(base: str, headers: dict[str, str], name: str) -> str:
    body = {
        "procedure": "2.000720",
        "applicant_name": name,
        "citizen_id": "092085001234",
        "dob": "1985-03-14",
    }
    r = httpx.post(f"{base}/api/v1/dossiers", json=body, headers=headers, timeout=10)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def at_city(city: str, headers: dict[str, str], dossier: str) -> bool:
    return httpx.get(f"{city}/api/v1/dossiers/{dossier}", headers=headers, timeout=10).status_code == 200


@pytest.fixture
def demo(tmp_path):
    base = free_port(span=5)  # landing, city, two communes, the simulated portal
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "ops.cli", "demo", "--dir", str(tmp_path / "demo"), "--port", str(base),
           "--dossiers", "30", "--sync-interval", "1", "--offline-unit", "31120"]  # fmt: skip
    log = (tmp_path / "demo.log").open("w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    urls = {
        name: f"http://127.0.0.1:{base + i}"
        for i, name in enumerate(("landing", "city", "31135", "31120", "portal"))
    }
    try:
        wait_for(lambda: _answers(urls["landing"]) or proc.poll() is not None, "the demo to start")
        assert proc.poll() is None, (tmp_path / "demo.log").read_text()
        yield proc, urls, tmp_path / "demo"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_demo_clerks_receive_sync_and_the_link_switch_queues_then_delivers(demo):
    proc, urls, _ = demo
    admin = token(urls["city"], "quantri")
    lan = token(urls["31135"], "canbo_ninhkieu")
    ha = token(urls["31120"], "canbo_caikhe")

    online = receive(urls["31135"], lan, "Nguyễn Văn Demo")
    wait_for(lambda: at_city(urls["city"], admin, online), "the 31135 dossier to reach the city")

    queued = receive(urls["31120"], ha, "Trần Thị Ngoại Tuyến")  # 31120 starts with its link down
    time.sleep(3)
    assert not at_city(urls["city"], admin, queued)
    status = httpx.get(f"{urls['31120']}/api/v1/sync/status", headers=ha, timeout=10).json()
    assert status["waiting"] >= 1

    switched = httpx.post(f"{urls['landing']}/link/31120/up", timeout=10, follow_redirects=False)
    assert switched.status_code == 303
    wait_for(lambda: at_city(urls["city"], admin, queued), "the queued dossier after the link returns")

    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0


def test_demo_dossiers_arrive_at_the_simulated_portal_and_one_is_refused(demo):
    _, urls, directory = demo

    def portal() -> dict:
        return dict(httpx.get(f"{urls['portal']}/_sim/state", timeout=10).json())

    wait_for(lambda: len(portal()["dossiers"]) >= 10, "dossiers at the simulated portal")

    def dead_letters() -> list:
        command = [sys.executable, "-m", "ops.cli", "upstream", "status", "--data", str(directory / "city")]
        answer = subprocess.run(
            [*command, "--json"], capture_output=True, text=True, cwd=ROOT, check=True, timeout=60
        )
        return list(json.loads(answer.stdout)["dead_letters"])

    wait_for(lambda: len(dead_letters()) == 1, "the refused dossier in the dead letters")
    [dead] = dead_letters()
    assert dead["error_code"] == "02"
    refused = [r for r in portal()["requests"] if r["outcome"] == "invalid"]
    assert refused
    assert {r["dossier"] for r in refused}.isdisjoint(portal()["dossiers"])
    assert "từ chối" in dead["message"]
