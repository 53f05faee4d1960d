"""A city with an event pipeline but no ``[[users]]``: every answer says so, the same way.

Built on the synthetic Testburg (not New York) with ``[events]`` and a rule added to
its config and no users: the events API answers a JSON 403 naming ``[[users]]`` (not a
401 asking for credentials nobody can have), acknowledging an alert answers the same,
start-up logs it once, and the sign-in box shows the same text instead of a form.
"""

from __future__ import annotations

import logging

import pytest

from config.i18n import t
from tests.synthetic_city import TESTBURG, write_city

EVENTS_AND_A_RULE = """
[events]
path = "{path}"

[[rules]]
name = "busy"
kind = "cell_count"
layer = "government"
res = 7
window = "3650d"
above = 0
"""


@pytest.fixture(scope="module")
def no_users_app(tmp_path_factory: pytest.TempPathFactory):
    from app import create_app, load_config

    root = tmp_path_factory.mktemp("no-users")
    city = write_city(root / "city", TESTBURG, cache_dir=root / "cache")
    with city.config_path.open("a", encoding="utf-8") as handle:
        handle.write(EVENTS_AND_A_RULE.format(path=(root / "events.sqlite3").as_posix()))
    config = load_config(city.config_path)
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep(level=logging.WARNING)
    logging.getLogger("citybrain").addHandler(keep)
    try:
        app = create_app(config, start_ingest=False)
    finally:
        logging.getLogger("citybrain").removeHandler(keep)
    return app, [r.getMessage() for r in records]


def test_the_events_api_answers_403_saying_how_to_add_users(no_users_app) -> None:
    app, _ = no_users_app
    assert app.services.events is not None and not app.services.auth.users
    client = app.server.test_client()
    for url in ("/api/events", "/api/events?limit=5", "/api/events/stats", "/api/events/1",
                "/api/events/me"):
        for headers in ({}, {"Authorization": "Bearer some-token-0123456789"}):
            answer = client.get(url, headers=headers)
            assert answer.status_code == 403 and answer.is_json, url
            body = answer.get_json()
            assert body == {"error": t("login.no_users", "en"), "status": 403,
                            "reason": "no_users"}
            assert "[[users]]" in body["error"] and "WWW-Authenticate" not in answer.headers
    moved = client.post("/api/events/1/transition", json={"to": "closed"})
    assert moved.status_code == 403 and moved.get_json()["reason"] == "no_users"


def test_acknowledging_an_alert_says_the_same(no_users_app) -> None:
    app, _ = no_users_app
    client = app.server.test_client()
    alerts = client.get("/api/alerts").get_json()["alerts"]
    assert alerts, "the rule should find Testburg's requests"
    answer = client.post(f"/api/alerts/{alerts[0]['id']}/ack", json={})
    assert answer.status_code == 403
    assert answer.get_json()["error"] == t("login.no_users", "en")
    assert client.get("/api/alerts").get_json()["alerts"][0]["acknowledged"] is False


def test_start_up_logs_it_once(no_users_app) -> None:
    _, messages = no_users_app
    said = [m for m in messages if "no users are configured" in m]
    assert len(said) == 1 and "/api/events answers 403" in said[0]


@pytest.mark.parametrize("language", ["zh", "en"])
def test_the_sign_in_box_says_the_same_instead_of_a_form(language: str) -> None:
    from callbacks.signin import session_view

    status, form, logout, *_ = session_view(None, language, has_events=True, has_users=False)
    assert status.children == t("login.no_users", language) and "[[users]]" in status.children
    assert "ops-hidden" in form.split() and "ops-hidden" in logout.split()
    # With users, the form is there as before.
    status, form, *_ = session_view(None, language, has_events=True, has_users=True)
    assert status == t("login.title", language) and "ops-hidden" not in form.split()
