"""Logging in and out, sessions, CSRF, language, the home page."""

from edgekit import PASSWORD, csrf_of, login, receive_sample


def test_pages_need_a_login(client):
    response = client.get("/")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")


def test_login_with_the_right_password_opens_home_in_vietnamese(client):
    login(client, "canbo01")
    home = client.get("/")
    assert home.status_code == 200
    assert 'lang="vi"' in home.text
    assert "Nguyễn Thị Lan" in home.text


def test_wrong_password_is_refused_with_a_clear_message(client):
    page = client.get("/login")
    response = client.post(
        "/login", data={"username": "canbo01", "password": "sai", "csrf": csrf_of(page.text)}
    )
    assert response.status_code == 400
    assert 'role="alert"' in response.text
    assert client.get("/").status_code == 303


def test_login_without_csrf_token_is_refused(client):
    response = client.post("/login", data={"username": "canbo01", "password": PASSWORD})
    assert response.status_code == 403
    assert client.get("/").status_code == 303


def test_brute_force_locks_the_account_then_lets_the_clerk_in_after_the_lock(client, app):
    throttle = app.state.motcua.throttle
    clock = [1000.0]
    throttle._now = lambda: clock[0]
    token = csrf_of(client.get("/login").text)
    for _ in range(throttle.limit):
        client.post("/login", data={"username": "canbo01", "password": "wrong", "csrf": token})
    locked = client.post("/login", data={"username": "canbo01", "password": PASSWORD, "csrf": token})
    assert locked.status_code == 400
    assert client.get("/").status_code == 303
    clock[0] += throttle.lockout_s + 1
    assert login(client, "canbo01")


def test_session_is_renewed_at_login(client):
    client.get("/login")
    before = client.cookies.get("motcua_session")
    login(client)
    assert client.cookies.get("motcua_session") != before


def test_logout_needs_csrf_and_ends_the_session(client):
    token = login(client)
    assert client.post("/logout", data={}).status_code == 403
    assert client.post("/logout", data={"csrf": token}).status_code == 303
    assert client.get("/").status_code == 303


def test_open_redirect_after_login_is_refused(client):
    page = client.get("/login")
    response = client.post(
        "/login",
        data={
            "username": "canbo01",
            "password": PASSWORD,
            "csrf": csrf_of(page.text),
            "next": "https://evil.example/",
        },
    )
    assert response.headers["location"] == "/"


def test_language_switch_to_english_and_back(client):
    login(client)
    client.get("/lang/en?next=/")
    assert 'lang="en"' in client.get("/").text
    client.get("/lang/vi?next=/")
    assert 'lang="vi"' in client.get("/").text


def test_home_counts_what_was_received_today(client, node):
    receive_sample(node)
    receive_sample(node, applicant_name="Trần Thị Bình", citizen_id="092190004321", dob=None)
    login(client)
    home = client.get("/")
    assert "<b>2</b>" in home.text


def test_security_headers_forbid_framing_and_remote_scripts(client):
    response = client.get("/login")
    assert response.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in response.headers["content-security-policy"]


def test_a_clerk_changes_their_password_offline_and_it_is_an_op(client, node):
    token = login(client, "canbo01")
    me = node.identity.node
    before = node.replica.vector()[me]
    refused = client.post(
        "/account/password", data={"csrf": token, "current": "wrong", "new": "Moi12345", "again": "Moi12345"}
    )
    assert refused.status_code == 422
    assert node.replica.vector()[me] == before
    done = client.post(
        "/account/password", data={"csrf": token, "current": PASSWORD, "new": "Moi12345", "again": "Moi12345"}
    )
    assert done.status_code == 200
    assert node.replica.vector()[me] == before + 1
    last = node.replica.ops_of("account", "canbo01")[-1]
    assert last.action == "set"
    assert set(last.payload) == {"password_hash"}
    client.post("/logout", data={"csrf": token})
    page = client.get("/login")
    old = client.post(
        "/login", data={"username": "canbo01", "password": PASSWORD, "csrf": csrf_of(page.text)}
    )
    assert old.status_code == 400
    new = client.post(
        "/login", data={"username": "canbo01", "password": "Moi12345", "csrf": csrf_of(page.text)}
    )
    assert new.status_code == 303


def test_password_change_needs_csrf_and_matching_new_passwords(client, node):
    token = login(client, "canbo01")
    assert (
        client.post(
            "/account/password", data={"current": PASSWORD, "new": "Moi12345", "again": "Moi12345"}
        ).status_code
        == 403
    )
    mismatch = client.post(
        "/account/password",
        data={"csrf": token, "current": PASSWORD, "new": "Moi12345", "again": "Khac12345"},
    )
    assert mismatch.status_code == 422
