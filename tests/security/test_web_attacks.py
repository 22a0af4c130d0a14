"""Attacks on the commune's pages from its own LAN: forms posted without or with a wrong CSRF
token, a planted session cookie, brute-forced passwords, a role reaching for a leader's action.

Each test asserts the three things a hardening test must: the request is refused with the right
status, the audit log names the event, who and where, and nothing changed (the change log, the
scans, the dossier, the session).
"""

from __future__ import annotations

import base64
import json
import re

import pytest
from edgekit import PASSWORD, csrf_of, login, receive_sample
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from starlette.testclient import TestClient

from edge import auth
from edge.errors import LockedOut

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def new_dossier_form(token: str | None) -> dict[str, str]:
    fields = {
        "procedure": "2.000720",
        "applicant_type": "citizen",
        "applicant_name": "Nguyễn Văn An",
        "citizen_id": "092085001234",
        "dob": "14/03/1985",
        "phone": "0912345678",
        "address": "12 Mậu Thân",
        "address_unit": "31135",
        "handling_unit": "31135",
        "doc_0_form": "original",
        "doc_0_count": "1",
    }
    if token is not None:
        fields["csrf"] = token
    return fields


def posts(dossier_id: str, token: str | None) -> list[tuple[str, dict[str, str], list]]:
    """Every form a clerk posts, with ``token`` as its CSRF field (None: no field at all)."""
    with_token = {} if token is None else {"csrf": token}
    scans = [("scans", ("don.pdf", PDF, "application/pdf"))]
    return [
        ("/dossiers", new_dossier_form(token), scans),
        (f"/dossiers/{dossier_id}/actions", {**with_token, "action": "accept"}, []),
        (f"/dossiers/{dossier_id}/attachments", with_token, scans),
        (
            "/account/password",
            {**with_token, "current": PASSWORD, "new": "Moi12345", "again": "Moi12345"},
            [],
        ),
        ("/sync-now", {**with_token, "next": "/"}, []),
        ("/logout", with_token, []),
    ]


# --- CSRF --------------------------------------------------------------------------------------


@pytest.mark.parametrize("forged", ["missing", "wrong", "another session's"])
def test_every_form_refuses_a_missing_or_wrong_csrf_token_audits_it_and_changes_nothing(
    client, node, app, snapshot, audited, forged
):
    dossier = receive_sample(node)
    login(client, "canbo01")
    if forged == "missing":
        token = None
    elif forged == "wrong":
        token = "x" * 32
    else:
        # A token the attacker got legitimately, in their own session, is no good in the victim's.
        with TestClient(app, follow_redirects=False) as attacker:
            token = login(attacker, "lanhdao01")
    before = snapshot(node, ("dossier", dossier.id), ("account", "canbo01"))
    mark = audited.mark(node)
    for path, data, files in posts(dossier.id, token):
        response = client.post(path, data=data, files=files) if files else client.post(path, data=data)
        assert response.status_code == 403, (path, response.text[:300])
        assert 'role="alert"' in response.text
        entry = audited(node, "csrf", actor="canbo01", path=path, since_id=mark)
        assert entry.method == "POST"
        assert entry.detail["status"] == 403
    assert len(audited.since(node, mark, "csrf")) == len(posts(dossier.id, token))
    assert snapshot(node, ("dossier", dossier.id), ("account", "canbo01")) == before
    assert client.get("/").status_code == 200, "a refused logout must not end the session"


def test_an_htmx_post_needs_the_token_in_its_header_too(client, node, snapshot, audited):
    dossier = receive_sample(node)
    token = login(client, "canbo01")
    before = snapshot(node, ("dossier", dossier.id))
    refused = client.post(
        f"/dossiers/{dossier.id}/actions",
        data={"action": "accept"},
        headers={"HX-Request": "true", "X-CSRF-Token": "stolen-or-guessed"},
    )
    assert refused.status_code == 200  # htmx swaps only 2xx: the refusal is shown in place
    assert 'role="alert"' in refused.text
    audited(node, "csrf", actor="canbo01", path=f"/dossiers/{dossier.id}/actions")
    assert snapshot(node, ("dossier", dossier.id)) == before
    accepted = client.post(
        f"/dossiers/{dossier.id}/actions",
        data={"action": "accept"},
        headers={"HX-Request": "true", "X-CSRF-Token": token},
    )
    assert accepted.status_code == 200
    assert node.replica.state("dossier", dossier.id)["status"] == 2


def test_a_login_form_posted_from_another_site_is_refused_and_logs_no_one_in(client, node, audited):
    response = client.post("/login", data={"username": "canbo01", "password": PASSWORD, "next": "/"})
    assert response.status_code == 403
    assert client.get("/").status_code == 303
    entry = audited(node, "csrf", path="/login")
    assert entry.actor is None  # no session: the form's username is not trusted as who asked


# --- sessions ----------------------------------------------------------------------------------


def test_a_planted_session_cookie_is_not_logged_in_by_the_victims_login(app, node):
    """Session fixation: the attacker gets a session cookie from /login and plants it in the
    clerk's browser; after the clerk logs in, the attacker's cookie still opens nothing, and the
    CSRF token the attacker saw is no longer the session's."""
    with (
        TestClient(app, follow_redirects=False) as attacker,
        TestClient(app, follow_redirects=False) as victim,
    ):
        page = attacker.get("/login")
        [cookie] = [c for c in attacker.cookies.jar if c.name == "motcua_session"]
        planted = str(cookie.value)
        attackers_csrf = csrf_of(page.text)
        victim.cookies.set("motcua_session", planted, domain=cookie.domain, path=cookie.path)
        response = victim.post(
            "/login", data={"username": "canbo01", "password": PASSWORD, "csrf": attackers_csrf, "next": "/"}
        )
        assert response.status_code == 303
        assert victim.cookies["motcua_session"] != planted
        assert victim.get("/").status_code == 200
        victims_csrf = csrf_of(victim.get("/").text)
        assert victims_csrf != attackers_csrf
        # The attacker's cookie is what it was: a session with no one logged in.
        assert attacker.get("/").status_code == 303
        dossier = receive_sample(node)
        before = node.replica.op_count()
        posted = attacker.post(
            f"/dossiers/{dossier.id}/actions", data={"csrf": attackers_csrf, "action": "accept"}
        )
        assert posted.status_code == 303
        assert posted.headers["location"].startswith("/login")
        assert node.replica.op_count() == before
        # … and the victim's session refuses the token the attacker planted.
        stale = victim.post(
            f"/dossiers/{dossier.id}/actions", data={"csrf": attackers_csrf, "action": "accept"}
        )
        assert stale.status_code == 403
        assert node.replica.op_count() == before


def test_a_session_cookie_signed_with_another_key_is_ignored(client, node):
    """The session is a signed cookie: one made up by an attacker (user=admin) opens nothing."""
    client.get("/login")
    [cookie] = [c for c in client.cookies.jar if c.name == "motcua_session"]
    payload = base64.b64encode(json.dumps({"user": "quantri", "sid": "made-up", "generation": 0}).encode())
    forged = TimestampSigner("not-the-box-secret").sign(payload).decode()
    client.cookies.set("motcua_session", forged, domain=cookie.domain, path=cookie.path)
    response = client.get("/")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")
    # The same cookie signed with the box's own secret would open the box: the key is what
    # defends, and it never leaves the box (a stolen box is revoked at the city).
    genuine = TimestampSigner(node.secret.hex()).sign(payload).decode()
    client.cookies.set("motcua_session", genuine, domain=cookie.domain, path=cookie.path)
    assert client.get("/").status_code == 200


def test_a_session_cookie_copied_before_logout_is_refused_after_it(client):
    token = login(client, "canbo01")
    [cookie] = [c for c in client.cookies.jar if c.name == "motcua_session"]
    copied = (str(cookie.value), cookie.domain, cookie.path)
    client.post("/logout", data={"csrf": token})
    assert client.get("/").status_code == 303
    client.cookies.set("motcua_session", copied[0], domain=copied[1], path=copied[2])
    assert client.get("/").status_code == 303


def test_a_session_of_a_deactivated_account_opens_nothing_at_its_next_request(client, node):
    login(client, "canbo01")
    assert client.get("/").status_code == 200
    with node.replica.write() as w:  # what the city's "deactivate" op does when it arrives
        w.append("account", "canbo01", "set", {"active": False})
    assert client.get("/").status_code == 303
    assert client.get("/api/v1/dossiers").status_code == 401


# --- brute force -------------------------------------------------------------------------------


def post_login(client: TestClient, username: str, password: str):
    token = csrf_of(client.get("/login").text)
    return client.post(
        "/login", data={"username": username, "password": password, "csrf": token, "next": "/"}
    )


@pytest.fixture
def clock(app) -> list[float]:
    """The throttle's clock, moved by the test (the lock's length is a setting, minutes long)."""
    now = [50_000.0]
    app.state.motcua.throttle._now = lambda: now[0]
    return now


def test_brute_force_is_audited_locks_only_that_account_and_lets_the_clerk_in_after_the_lock(
    client, app, node, clock, audited
):
    throttle = app.state.motcua.throttle
    mark = audited.mark(node)
    for attempt in range(throttle.limit):
        refused = post_login(client, "canbo01", f"doan{attempt}")
        assert refused.status_code == 400
        assert 'role="alert"' in refused.text
    failed = audited.since(node, mark, "login_failed")
    assert len(failed) == throttle.limit
    assert {(e.actor, e.path, e.method) for e in failed} == {("canbo01", "/login", "POST")}
    assert all(PASSWORD not in str(e.detail) and "doan" not in str(e.detail) for e in failed)

    # Locked: even the right password is refused, through the page and through the API, and
    # whatever the case of the username.
    for username in ("canbo01", "CanBo01"):
        locked = post_login(client, username, PASSWORD)
        assert locked.status_code == 400
        assert client.get("/").status_code == 303
    api = client.post("/api/v1/auth/token", json={"username": "canbo01", "password": PASSWORD})
    assert api.status_code == 429
    assert api.json()["error"]["code"] == "locked_out"
    assert len(audited.since(node, mark, "locked_out")) == 3
    audited(node, "locked_out", actor="canbo01", path="/api/v1/auth/token", since_id=mark)

    # Another clerk of the same unit is not locked out by it.
    assert post_login(client, "lanhdao01", PASSWORD).status_code == 303
    client.post("/logout", data={"csrf": csrf_of(client.get("/").text)})

    # Still locked a second before the lock ends; in after it, with the right password only.
    clock[0] += throttle.lockout_s - 1
    assert post_login(client, "canbo01", PASSWORD).status_code == 400
    clock[0] += 2
    assert post_login(client, "canbo01", PASSWORD).status_code == 303
    assert client.get("/").status_code == 200


def test_one_success_clears_the_failures_so_a_clerk_who_mistypes_is_not_locked_later(client, app, clock):
    throttle = app.state.motcua.throttle
    for _ in range(throttle.limit - 1):
        post_login(client, "canbo01", "sai")
    assert post_login(client, "canbo01", PASSWORD).status_code == 303
    client.post("/logout", data={"csrf": csrf_of(client.get("/").text)})
    for _ in range(throttle.limit - 1):
        post_login(client, "canbo01", "sai")
    assert post_login(client, "canbo01", PASSWORD).status_code == 303


def test_one_computer_spraying_a_password_over_many_accounts_waits_and_is_audited(app, node, clock, audited):
    """Each account fails fewer times than its own lock, so only the address can be stopped."""
    throttle = app.state.motcua.throttle
    names = [f"khongco{n:02d}" for n in range(throttle.address_limit)]
    with TestClient(app, follow_redirects=False, client=("192.168.1.66", 40000)) as sprayer:
        mark = audited.mark(node)
        for name in names:
            assert post_login(sprayer, name, "Matkhau123!").status_code == 400
        assert len(audited.since(node, mark, "login_failed")) == throttle.address_limit
        # The address waits now, even for an account it never tried and the right password,
        # through the page and the API.
        locked = post_login(sprayer, "lanhdao01", PASSWORD)
        assert locked.status_code == 400
        assert sprayer.get("/").status_code == 303
        api = sprayer.post("/api/v1/auth/token", json={"username": "lanhdao01", "password": PASSWORD})
        assert api.status_code == 429
        refusal = audited(node, "locked_out", actor="lanhdao01", since_id=mark)
        assert refusal.remote == "192.168.1.66"
        # The clerks' own computers are not stopped by it.
        with TestClient(app, follow_redirects=False, client=("192.168.1.23", 40000)) as clerk:
            assert post_login(clerk, "canbo01", PASSWORD).status_code == 303
        # The wait ends a lock period after the address's last failure.
        clock[0] += throttle.lockout_s + 1
        assert post_login(sprayer, "lanhdao01", PASSWORD).status_code == 303


def test_guessing_the_current_password_on_the_password_form_counts_as_failed_logins(
    client, app, node, clock, audited, snapshot
):
    """A stolen, logged-in session cannot be used to brute-force the clerk's password either."""
    token = login(client, "canbo01")
    throttle = app.state.motcua.throttle
    before = snapshot(node, ("account", "canbo01"))
    mark = audited.mark(node)
    for attempt in range(throttle.limit + 2):
        response = client.post(
            "/account/password",
            data={"csrf": token, "current": f"doan{attempt}", "new": "Moi12345", "again": "Moi12345"},
        )
        assert response.status_code == 422
    assert len(audited.since(node, mark, "login_failed")) == throttle.limit
    assert len(audited.since(node, mark, "locked_out")) == 2
    audited(node, "locked_out", actor="canbo01", path="/account/password")
    right = client.post(
        "/account/password", data={"csrf": token, "current": PASSWORD, "new": "Moi12345", "again": "Moi12345"}
    )
    assert right.status_code == 422  # locked: the right password does not help either
    assert snapshot(node, ("account", "canbo01")) == before


def test_a_flood_of_made_up_usernames_cannot_fill_the_memory_nor_unlock_a_locked_account(
    app, clock, monkeypatch
):
    """The throttle remembers failures per name; names whose failures are older than a lock are
    swept once it tracks many, so a LAN attacker's million made-up names stay bounded, while an
    account whose lock is running stays locked."""
    throttle = app.state.motcua.throttle
    monkeypatch.setattr(auth, "TRACKED_ACCOUNTS", 100)
    for i in range(2_000):  # one made-up name a second, for over half an hour
        throttle.failed(f"gia{i}")
        clock[0] += 1.0
    assert len(throttle._failures) <= throttle.lockout_s + 100  # the recent ones only
    for _ in range(throttle.limit):
        throttle.failed("canbo01")
    for i in range(500):  # a burst right after the lock
        throttle.failed(f"burst{i}")
        clock[0] += 0.01
    with pytest.raises(LockedOut):
        throttle.check("canbo01")
    clock[0] += throttle.lockout_s
    throttle.check("canbo01")  # the lock ran its course: the clerk may try again


def test_failed_logins_for_names_that_do_not_exist_are_audited_too(client, node, audited):
    for name in ("admin", "root", "' OR 1=1 --"):
        assert post_login(client, name, "123456").status_code == 400
        audited(node, "login_failed", actor=name, path="/login")


# --- roles ---------------------------------------------------------------------------------------


def test_a_clerk_taking_a_leaders_action_is_refused_audited_and_changes_nothing(
    client, node, snapshot, audited
):
    dossier = receive_sample(node)
    token = login(client, "canbo01")
    assert (
        client.post(f"/dossiers/{dossier.id}/actions", data={"csrf": token, "action": "accept"}).status_code
        == 303
    )
    status = node.replica.state("dossier", dossier.id)["status"]
    before = snapshot(node, ("dossier", dossier.id))
    page = client.post(f"/dossiers/{dossier.id}/actions", data={"csrf": token, "action": "stop", "note": "x"})
    assert page.status_code == 403
    assert 'role="alert"' in page.text
    audited(node, "forbidden", actor="canbo01", path=f"/dossiers/{dossier.id}/actions")
    headers = {"Authorization": "Bearer " + api_token(client, "canbo01")}
    api = client.post(
        f"/api/v1/dossiers/{dossier.id}/actions", headers=headers, json={"action": "stop", "note": "x"}
    )
    assert api.status_code == 403
    assert api.json()["error"]["code"] == "forbidden"
    audited(node, "forbidden", actor="canbo01", path=f"/api/v1/dossiers/{dossier.id}/actions")
    assert snapshot(node, ("dossier", dossier.id)) == before
    assert node.replica.state("dossier", dossier.id)["status"] == status


def api_token(client: TestClient, username: str) -> str:
    response = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def test_a_bearer_token_signed_with_another_key_or_for_another_user_is_refused(client, node):
    forged = URLSafeTimedSerializer(b"guessed", salt="motcua-api-token").dumps({"u": "quantri", "n": "00"})
    for token in (forged, "", "null", api_token(client, "canbo01") + "x"):
        response = client.get("/api/v1/dossiers", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"
    assert re.fullmatch(r"[\w.-]+", api_token(client, "canbo01"))


def test_a_password_change_ends_the_accounts_other_sessions_but_not_this_one(app, node):
    with TestClient(app, follow_redirects=False) as office, TestClient(app, follow_redirects=False) as home:
        login(office, "canbo01")
        token = login(home, "canbo01")
        answer = home.post(
            "/account/password",
            data={"csrf": token, "current": PASSWORD, "new": "MatkhauMoi456", "again": "MatkhauMoi456"},
        )
        assert answer.status_code == 200
        assert home.get("/").status_code == 200  # the clerk who changed it stays in
        assert office.get("/").status_code == 303  # the cookie left on the other PC opens nothing
        assert office.get("/login").status_code == 200
