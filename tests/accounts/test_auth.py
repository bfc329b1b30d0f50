"""Sign-in: login required everywhere, CSRF, lockout after five failures, session renewal."""
import pytest
from datetime import timedelta

from portal.accounts.models import User
from portal.extensions import db
from portal.timeutil import utcnow

from tests.helpers.factories import PASSWORD


@pytest.mark.chinese
def test_login_page_is_chinese_and_public(client):
    page = client.get("/login")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "登录" in text and "信档" in text


def test_every_page_needs_login(client, org):
    for path in ("/", "/loans/", "/org/", "/rules/"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_login_without_csrf_token_is_refused(client, org):
    response = client.post("/login", data={"username": "officer", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/").status_code == 302


def test_login_and_logout(client, org, csrf_token, login):
    assert login(client, "officer").status_code == 302
    assert client.get("/").status_code == 200
    token = csrf_token(client, "/")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/").status_code == 302


@pytest.mark.chinese
def test_five_failures_lock_the_account(client, org, app, login):
    for _ in range(4):
        assert login(client, "officer", "wrong-password").status_code == 401
    response = login(client, "officer", "wrong-password")
    assert "锁定" in response.get_data(as_text=True)
    # Even the right password is refused while locked.
    response = login(client, "officer")
    assert response.status_code == 401 and "锁定" in response.get_data(as_text=True)
    with app.app_context():
        user = db.session.execute(db.select(User).filter_by(username="officer")).scalar_one()
        assert user.locked_until > utcnow() + timedelta(minutes=14)
        user.locked_until = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert login(client, "officer").status_code == 302


def test_session_is_renewed_on_login(client, org, login):
    client.get("/login")
    with client.session_transaction() as sess:
        sess["planted"] = "by-attacker"
    login(client, "officer")
    with client.session_transaction() as sess:
        assert "planted" not in sess


def test_open_redirect_is_refused(client, org, csrf_token):
    token = csrf_token(client)
    response = client.post("/login?next=https://evil.example/", data={
        "username": "officer", "password": PASSWORD, "csrf_token": token})
    assert response.headers["Location"] == "/"


def test_sign_in_attempts_are_rate_limited_per_address(app, client, org, login):
    app.config["XINDANG_LOGIN_RATE_LIMIT"] = "3 per minute"
    from portal.extensions import limiter
    try:
        limiter.reset()
        statuses = [login(client, f"nobody{i}", "x").status_code for i in range(4)]
        assert statuses[:3] == [401, 401, 401] and statuses[3] == 429
    finally:
        app.config["XINDANG_LOGIN_RATE_LIMIT"] = "100000 per minute"
        limiter.reset()
