"""Sessions done right: sign-in limits and lockout, logout that revokes, cookie flags, the key.

Runs the real ``/api/events`` blueprint and the real sign-in callback function on a
bare Flask app (no mocks of Flask-Limiter or of the session); the expected counts
are written out plainly from the settings.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.security import generate_password_hash

from config.city import ConfigError
from ops.auth import Auth
from ops.events.pipeline import EventPipeline
from ops.events.settings import EventsSettings, parse_users
from ops.sessions import SessionGuard, SignInSettings, parse_signin_settings

PASSWORD = "correct horse battery"
CHEAP = "pbkdf2:sha256:1000"
USERS = [
    {"name": "duty", "role": "operator", "password_hash_env": "TEST_SESSIONS_DUTY_HASH"},
    {"name": "analyst", "role": "viewer", "password_hash_env": "TEST_SESSIONS_ANALYST_HASH"},
]


def make_app(tmp_path: Path, settings: SignInSettings, https: bool = False) -> tuple[Flask, Auth]:
    from api.events import create_events_blueprint

    pipeline = EventPipeline(EventsSettings(path=tmp_path / "events.sqlite3"), parse_users(USERS))
    pipeline.auth.guard = SessionGuard(settings, key_prefix="test-sessions:")
    app = Flask(__name__)
    app.secret_key = "test-only"
    app.register_blueprint(create_events_blueprint(pipeline))
    return app, pipeline.auth


@pytest.fixture(autouse=True)
def hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    # Cheap hashes: the timings below are about the lockout, not about hashing cost.
    monkeypatch.setenv("TEST_SESSIONS_DUTY_HASH", generate_password_hash(PASSWORD, CHEAP))
    monkeypatch.setenv("TEST_SESSIONS_ANALYST_HASH", generate_password_hash("viewer pw", CHEAP))


def login(client: Any, name: str, password: str, address: str = "10.0.0.1") -> Any:
    return client.post("/api/events/login", json={"name": name, "password": password},
                       environ_base={"REMOTE_ADDR": address})


# ---------------------------------------------------------------- lockout
def test_200_wrong_passwords_lock_the_user_and_the_right_one_waits(tmp_path: Path) -> None:
    settings = SignInSettings(attempts="1000/minute", max_failures=5, lockout=3)
    app, _ = make_app(tmp_path, settings)
    client = app.test_client()
    answers = [login(client, "duty", f"guess-{i}") for i in range(200)]
    statuses = [a.status_code for a in answers]
    # Written out: the first max_failures tries are checked (401), every later one refused.
    assert statuses == [401] * 5 + [429] * 195
    refused = answers[-1]
    assert refused.mimetype == "application/json"
    body = refused.get_json()
    assert body["status"] == 429 and body["reason"] == "locked" and "try again" in body["error"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 3 and body["retry_after"] >= 1
    # The right password is refused while the name is locked, from any address.
    assert login(client, "duty", PASSWORD, address="10.9.9.9").status_code == 429
    # Another user is not locked by the attack on this one.
    assert login(client, "analyst", "viewer pw").status_code == 200
    time.sleep(3.2)
    assert login(client, "duty", PASSWORD).status_code == 200
    assert client.get("/api/events/me").get_json()["name"] == "duty"


def test_success_resets_the_failure_count(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path, SignInSettings(attempts="1000/minute", max_failures=3, lockout=60))
    client = app.test_client()
    for _ in range(3):
        assert [login(client, "duty", "no").status_code for _ in range(2)] == [401, 401]
        assert login(client, "duty", PASSWORD).status_code == 200
    assert [login(client, "duty", "no").status_code for _ in range(4)] == [401, 401, 401, 429]


def test_tries_are_limited_per_address_whatever_the_name(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path, SignInSettings(attempts="10/minute", max_failures=1000))
    client = app.test_client()
    statuses = [login(client, f"user-{i}", "x", address="10.0.0.7").status_code for i in range(15)]
    assert statuses == [401] * 10 + [429] * 5
    refused = login(client, "duty", PASSWORD, address="10.0.0.7")
    assert refused.status_code == 429 and refused.get_json()["reason"] == "address"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # Another address has its own count.
    assert login(client, "duty", PASSWORD, address="10.0.0.8").status_code == 200


def test_the_page_form_shares_the_limits_and_says_when_to_retry(tmp_path: Path) -> None:
    from callbacks.signin import session_view, sign_in

    app, auth = make_app(tmp_path, SignInSettings(attempts="1000/minute", max_failures=3,
                                                  lockout=60))
    states = []
    for password in ("a", "b", "c", PASSWORD):
        with app.test_request_context("/_dash-update-component", method="POST"):
            states.append(sign_in(auth, "duty", password))
    assert [s["failed"] for s in states] == [True] * 4
    assert "retry_after" not in states[2] and 1 <= states[3]["retry_after"] <= 60
    status, *_ = session_view(states[3], "en", has_events=True)
    assert "Too many sign-in attempts" in status.children
    # The API refuses the same locked name (one storage for both ways in).
    assert login(app.test_client(), "duty", PASSWORD).status_code == 429


# ------------------------------------------------------------ revocation
def test_a_cookie_captured_before_logout_is_refused_after(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path, SignInSettings())
    browser = app.test_client()
    assert login(browser, "duty", PASSWORD).status_code == 200
    captured = browser.get_cookie("session")
    assert captured is not None
    thief = app.test_client()
    thief.set_cookie("session", captured.value)
    assert thief.get("/api/events/me").status_code == 200  # a copy works while signed in
    assert browser.post("/api/events/logout").status_code == 200
    assert browser.get("/api/events/me").status_code == 401
    answer = thief.get("/api/events/me")
    assert answer.status_code == 401 and answer.mimetype == "application/json"
    assert thief.post("/api/events/1/transition", json={"to": "in_progress"}).status_code == 401


def test_sessions_end_on_the_server_after_their_lifetime(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path, SignInSettings(session_lifetime=1))
    client = app.test_client()
    assert login(client, "duty", PASSWORD).status_code == 200
    assert client.get("/api/events/me").status_code == 200
    time.sleep(2.1)
    assert client.get("/api/events/me").status_code == 401


def test_a_session_without_its_server_side_id_is_refused(tmp_path: Path) -> None:
    """A cookie signed with the right key but carrying only a name (the old format)."""
    from ops.auth import SESSION_KEY

    app, _ = make_app(tmp_path, SignInSettings())
    client = app.test_client()
    with client.session_transaction() as session:
        session[SESSION_KEY] = "duty"
    assert client.get("/api/events/me").status_code == 401
    with client.session_transaction() as session:
        session["citybrain_sid"] = "made-up"
    assert client.get("/api/events/me").status_code == 401


# --------------------------------------------------------------- cookies
def cookie_flags(response: Any) -> set[str]:
    header = response.headers["Set-Cookie"]
    return {part.strip().split("=")[0].lower() if "=" not in part.strip()
            else part.strip().lower() for part in header.split(";")[1:]}


@pytest.mark.parametrize(("secure", "same_site", "https", "expect_secure"), [
    ("auto", "Lax", False, False),
    ("auto", "Lax", True, True),
    ("always", "Strict", False, True),
    ("never", "Strict", True, False),
])
def test_cookie_flags(tmp_path: Path, secure: str, same_site: str, https: bool,
                      expect_secure: bool) -> None:
    settings = SignInSettings(secure_cookie=secure, same_site=same_site)  # type: ignore[arg-type]
    app, _ = make_app(tmp_path, settings)
    client = app.test_client()
    base = "https://wall.example" if https else "http://wall.example"
    answer = client.post("/api/events/login", json={"name": "duty", "password": PASSWORD},
                         base_url=base)
    assert answer.status_code == 200
    flags = cookie_flags(answer)
    assert "httponly" in flags and f"samesite={same_site.lower()}" in flags
    assert ("secure" in flags) is expect_secure


# ---------------------------------------------------------------- config
def test_signin_settings_are_validated() -> None:
    parsed = parse_signin_settings({"attempts": "5 per 10 seconds", "max_failures": 3,
                                    "lockout": "2m", "same_site": "Strict",
                                    "secure_cookie": "always", "session_lifetime": "8h"})
    assert parsed == SignInSettings("5 per 10 seconds", 3, 120.0, 8 * 3600.0, "Strict", "always")
    for table, key in (({"attempts": "lots"}, "[signin].attempts"),
                       ({"max_failures": 0}, "[signin].max_failures"),
                       ({"max_failures": 2.5}, "[signin].max_failures"),
                       ({"lockout": "soon"}, "[signin].lockout"),
                       ({"same_site": "None"}, "[signin].same_site"),
                       ({"secure_cookie": "yes"}, "[signin].secure_cookie"),
                       ({"lockouts": 3}, "valid keys are")):
        with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
            parse_signin_settings(table)


def test_a_secret_key_is_required_when_workers_share_redis(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from app import parse_config
    from services import _secret_key, several_workers

    monkeypatch.delenv("CITYBRAIN_SECRET_KEY", raising=False)
    city = {"city": {"name": "Lakeside", "center": {"lat": -33.9, "lon": 18.4}}}
    alone = parse_config(city, tmp_path)
    assert several_workers(alone) is None and len(_secret_key(alone)) == 64
    for extra in ({"cache": {"type": "RedisCache"}}, {"live": {"shared": "redis"}}):
        config = parse_config({**city, **extra}, tmp_path)
        with pytest.raises(ConfigError, match="^CITYBRAIN_SECRET_KEY is not set but .*Redis"):
            _secret_key(config)
    monkeypatch.setenv("CITYBRAIN_SECRET_KEY", "k" * 40)
    assert _secret_key(parse_config({**city, "cache": {"type": "RedisCache"}}, tmp_path)) == "k" * 40
