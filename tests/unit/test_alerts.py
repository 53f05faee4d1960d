"""Early warning: rule findings against pandas, and the alert lifecycle in the book."""

from __future__ import annotations

import math
import re
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest
from flask import Flask

from api.signs import create_signs_blueprint
from config.city import ConfigError
from ops.signs.alerts import AlertBook, check_rule
from ops.signs.indicators import IndicatorHistory, evaluate
from ops.signs.service import VitalSigns
from ops.signs.settings import parse_indicators, parse_rule, parse_rules
from tests.unit.test_indicators import (
    T0,
    ManualClock,
    device_reports,
    feed,
    live_city,
    requests_city,
    synthetic_requests,
)

ONLINE = {"name": "online", "title_en": "Devices online", "title_zh": "设备在线率",
          "layer": "things", "kind": "share", "where": {"status": "online"}, "bucket": "30m",
          "window": "3h", "unit_en": "%", "unit_zh": "%",
          "thresholds": {"warn": 90, "alarm": 60, "direction": "below"}}


def requests_at(points: list[tuple[pd.Timestamp, float, float]]) -> pd.DataFrame:
    """Request rows at given (time, lat, lon), all open."""
    return pd.DataFrame({
        "key": [f"q{i}" for i in range(len(points))],
        "created": [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t, _, _ in points],
        "closed": "", "status": "Open", "kind": "Noise",
        "lat": [p[1] for p in points], "lon": [p[2] for p in points],
    })


# ----------------------------------------------------------------- lifecycle
def test_alert_fires_deduplicates_is_acknowledged_clears_and_fires_anew(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    data, source = live_city(tmp_path, clock)
    indicators = parse_indicators([ONLINE])
    rules = parse_rules([{"name": "offline", "kind": "threshold", "indicator": "online",
                          "below": 80, "severity": "alarm"}], indicators)
    book = AlertBook(rules, indicators, IndicatorHistory())

    def tick(online: list[bool]):
        clock.advance(minutes=10)
        feed(data, source, device_reports(clock.now(), online, [1.0] * 4))
        return book.evaluate(data, clock.now())

    assert not tick([True] * 4).raised
    changes = tick([True, True, False, False])
    assert len(changes.raised) == 1 and not book.cleared()
    first = changes.raised[0]
    assert (first.rule, first.key, first.severity, first.value, first.limit) == \
        ("offline", "online", "alarm", 50.0, 80.0)
    assert first.first_seen == first.last_seen == clock.now()
    assert "50" in first.message_en and "80" in first.message_en and "低于" in first.message_zh

    changes = tick([True, False, False, False])  # still below: the same alert, updated
    assert not changes.raised and changes.updated == [first]
    assert book.active() == [first] and first.count == 2 and first.value == 25.0
    assert first.last_seen == clock.now() and first.first_seen < first.last_seen

    acked = book.ack(first.id, "duty-officer", clock.now())
    assert acked.acked_by == "duty-officer" and acked.acked_at == clock.now()
    assert book.ack(first.id, "someone-else", clock.now()).acked_by == "duty-officer"
    assert tick([True, False, False, False]).updated == [first]  # acknowledging does not silence

    changes = tick([True] * 4)  # the condition ends: the alert clears by itself
    assert changes.cleared == [first] and not book.active()
    assert first.state == "cleared" and first.cleared_at == clock.now()
    assert book.cleared() == [first] and book.get(first.id) is first

    changes = tick([False] * 4)  # the condition returns: a new alert
    assert len(changes.raised) == 1
    second = changes.raised[0]
    assert second.id != first.id and second.acked_by is None and second.count == 1
    assert book.as_dicts("all")[0]["id"] == second.id
    with pytest.raises(KeyError):
        book.ack("no-such-alert", "x", clock.now())


def test_severity_from_indicator_thresholds_escalates_in_place(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    data, source = live_city(tmp_path, clock)
    indicators = parse_indicators([ONLINE])
    rules = parse_rules([{"name": "offline", "kind": "threshold", "indicator": "online"}],
                        indicators)
    assert rules[0].severity is None
    book = AlertBook(rules, indicators)
    feed(data, source, device_reports(clock.now(), [True, True, True, False], [1.0] * 4))
    raised = book.evaluate(data, clock.now()).raised
    assert [a.severity for a in raised] == ["warn"] and raised[0].limit == 90
    clock.advance(minutes=5)
    feed(data, source, device_reports(clock.now(), [True, False, False, False], [1.0] * 4))
    changes = book.evaluate(data, clock.now())
    assert changes.escalated == raised and raised[0].severity == "alarm"
    assert raised[0].limit == 60 and not changes.raised


# -------------------------------------------------------------- cell counts
@pytest.mark.parametrize("res", [7, 8, 9])
def test_cell_count_rule_equals_a_pandas_groupby_on_latlng_to_cell(tmp_path: Path,
                                                                  res: int) -> None:
    """Counted where latLngToCell puts each point at ``res`` (no longer its res-10 cell's
    parent: an H3 parent does not cover all of its children)."""
    raw = synthetic_requests(n=20_000, days=2)
    data = requests_city(tmp_path, raw)
    now = T0 + pd.Timedelta(days=1, hours=7, minutes=30)
    rule = parse_rule({"name": "hot", "kind": "cell_count", "layer": "government",
                       "role": "requests", "res": res, "window": "3h", "above": 2,
                       "max_alerts": 10_000}, [])
    found = {f.key: f.value for f in check_rule(rule, data, now)}
    created = pd.to_datetime(raw["created"], utc=True, format="ISO8601")
    recent = raw.loc[(created > now - pd.Timedelta(hours=3)) & (created <= now)]
    cell = [h3.latlng_to_cell(lat, lon, res)
            for lat, lon in zip(recent["lat"], recent["lon"], strict=True)]
    counts = pd.Series(cell).value_counts()
    expected = {format(h3.str_to_int(c), "x"): float(n) for c, n in counts.items() if n > 2}
    assert expected and found == expected
    book = AlertBook([rule])
    alerts = book.evaluate(data, now).raised
    assert {a.key for a in alerts} == set(expected)
    assert all(a.cells == (int(a.key, 16),) and "3 h" in a.message_en for a in alerts)


def test_too_many_findings_are_capped_and_counted(tmp_path: Path) -> None:
    raw = synthetic_requests(n=20_000, days=2)
    data = requests_city(tmp_path, raw)
    now = T0 + pd.Timedelta(days=1, hours=7)
    table = {"name": "hot", "kind": "cell_count", "layer": "government", "res": 9,
             "window": "6h", "above": 1}
    everything = check_rule(parse_rule(table, []), data, now)
    book = AlertBook([parse_rule({**table, "max_alerts": 3}, [])])
    changes = book.evaluate(data, now)
    assert len(changes.raised) == 3 and changes.suppressed == {"hot": len(everything) - 3}
    strongest = sorted((f.value for f in everything), reverse=True)[:3]
    assert sorted((a.value for a in changes.raised), reverse=True) == strongest


# ------------------------------------------------------------ devices
def test_silent_sensor_rule_uses_the_latest_time_even_after_the_window(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    data, source = live_city(tmp_path, clock, window="1h")
    feed(data, source, device_reports(T0, [True] * 3, [1.0] * 3))
    for _ in range(2):  # d0 and d1 report again at +20 and +40 min; d2 does not
        clock.advance(minutes=20)
        feed(data, source, device_reports(clock.now(), [True] * 2, [1.0] * 2, ids=["d0", "d1"]))
    rule = parse_rule({"name": "silent", "kind": "silent", "layer": "things", "after": "30m",
                       "severity": "alarm"}, [])
    book = AlertBook([rule])
    assert not book.evaluate(data, T0 + pd.Timedelta(minutes=29)).raised
    clock.advance(minutes=5)  # T0 + 45 min: d2 last reported at T0
    raised = book.evaluate(data, clock.now()).raised
    assert [(a.key, a.value, a.severity) for a in raised] == [("d2", 45.0, "alarm")]
    assert "Device d2" in raised[0].message_en and "45" in raised[0].message_zh
    clock.advance(minutes=30)  # d2's row has left the 1 h window, but it is still silent
    data.expire()
    assert "d2" not in set(data.frame("things", "devices")["id"])
    changes = book.evaluate(data, clock.now())
    assert not changes.cleared and raised[0].value == 75.0
    # d0 and d1 fall silent too (their last reports are 35 min old).
    assert {a.key for a in changes.raised} == {"d0", "d1"}


def test_reading_rule_fires_per_device_above_the_limit(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    data, source = live_city(tmp_path, clock)
    readings = [10.0, 40.0, 36.0, 80.0]
    feed(data, source, device_reports(T0, [True, True, True, False], readings))
    rule = parse_rule({"name": "pm", "kind": "reading", "layer": "things", "above": 35,
                       "message_en": "{name}: {value} > {limit} at {cell}"}, [])
    findings = check_rule(rule, data, T0)
    frame = data.frame("things", "devices")
    expected = frame.loc[frame["reading"] > 35, "id"]  # the offline device has no reading
    assert sorted(f.key for f in findings) == sorted(expected) == ["d1", "d2"]
    alert = AlertBook([rule]).evaluate(data, T0).raised[0]
    assert alert.message_en.startswith(f"Device {alert.key}: ") and " > 35 at 8" in alert.message_en


# --------------------------------------------------------------- anomalies
def test_zscore_rule_against_numpy(tmp_path: Path) -> None:
    now = T0 + pd.Timedelta(hours=13)
    a, b = (40.7484, -73.9857), (40.6892, -74.0445)  # two places far apart
    rng = np.random.default_rng(5)
    history_a = rng.integers(1, 4, 12)
    points = []
    for k, n in enumerate(history_a, start=1):  # bucket k ends k hours before now
        end = now - pd.Timedelta(hours=k)
        points += [(end - pd.Timedelta(minutes=5 + 3 * i), *a) for i in range(int(n))]
        points += [(end - pd.Timedelta(minutes=7 + 3 * i), *b) for i in range(3)]
    points += [(now - pd.Timedelta(minutes=2 * i), *a) for i in range(12)]  # a surge at a
    points += [(now - pd.Timedelta(minutes=2 * i), *b) for i in range(4)]  # b as usual
    data = requests_city(tmp_path, requests_at(points))
    rule = parse_rule({"name": "surge", "kind": "anomaly", "layer": "government", "res": 8,
                       "bucket": "1h", "baseline_buckets": 12, "z": 3, "min_count": 5}, [])
    findings = check_rule(rule, data, now)
    cell_a = h3.str_to_int(h3.cell_to_parent(h3.latlng_to_cell(*a, 10), 8))
    assert [f.cells for f in findings] == [(cell_a,)]
    expected_z = (12 - history_a.mean()) / max(history_a.std(ddof=1), 1.0)
    assert findings[0].value == 12 and findings[0].strength == pytest.approx(expected_z)
    alert = AlertBook([rule]).evaluate(data, now).raised[0]
    shown = re.search(r"z = ([0-9.]+)\)", alert.message_en)
    assert shown is not None and float(shown.group(1)) == pytest.approx(expected_z, abs=0.05)
    # With a higher bar nothing fires.
    strict = parse_rule({"name": "surge", "kind": "anomaly", "layer": "government",
                         "z": expected_z + 0.1, "min_count": 5}, [])
    assert check_rule(strict, data, now) == []


def test_rules_that_cannot_judge_say_so_and_keep_their_alerts(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    data, source = live_city(tmp_path, clock)
    feed(data, source, device_reports(T0, [True] * 2, [50.0] * 2))
    rules = parse_rules([
        {"name": "surge", "kind": "anomaly", "layer": "things", "bucket": "1h"},
        {"name": "pm", "kind": "reading", "layer": "things", "above": 35},
    ], [])
    book = AlertBook(rules)
    changes = book.evaluate(data, T0)
    assert "at least 2 earlier" in changes.errors["surge"]  # only now is known: no baseline
    assert len(changes.raised) == 2  # the other rule carries on


# ---------------------------------------------------------------- forecast
def test_forecast_rule_fires_when_the_band_crosses_within_the_horizon(tmp_path: Path) -> None:
    # A day and a half of history: enough for the trend model to be backtested (and win).
    now = T0 + pd.Timedelta(hours=36)
    points = []
    for k in range(36):  # 1, 2, 3 … 36 requests per hour: a steady rise
        end = now - pd.Timedelta(hours=35 - k)
        points += [(end - pd.Timedelta(seconds=30 + 50 * i), 40.75, -73.99)
                   for i in range(k + 1)]
    data = requests_city(tmp_path, requests_at(points))
    indicators = parse_indicators([{"name": "rph", "layer": "government", "kind": "rate",
                                    "window": "12h", "unit_en": "requests/h",
                                    "forecast": {"horizon": "3h", "history": "36h"}}])
    reading = evaluate(data, indicators[0], now)
    assert reading.value == 36 and reading.forecast is not None
    assert reading.forecast.method == "ets" and reading.forecast.mean[0] > 36
    assert reading.forecast.baseline == ("persistence",) * 3 and min(reading.forecast.skill) > 0.5
    soon = parse_rules([{"name": "soon", "kind": "forecast", "indicator": "rph", "above": 37,
                         "within": "2h"}], indicators)
    never = parse_rules([{"name": "never", "kind": "forecast", "indicator": "rph",
                          "above": 500, "within": "2h"}], indicators)
    book = AlertBook(soon + never, indicators)
    changes = book.evaluate(data, now, {"rph": reading})
    assert [a.rule for a in changes.raised] == ["soon"]
    alert = changes.raised[0]
    assert alert.value > 37 and "expected to exceed 37 requests/h within 2 h" in alert.message_en
    assert "预计2小时内超过37" in alert.message_zh
    # Without readings given, the book evaluates the indicator (and its forecast) itself.
    assert [a.rule for a in AlertBook(soon, indicators).evaluate(data, now).raised] == ["soon"]


# ------------------------------------------------------------------ config
def test_parse_rules_refuses_what_it_does_not_know() -> None:
    indicators = parse_indicators([ONLINE])
    with pytest.raises(ConfigError, match="unknown indicator 'offline'; valid indicators are: "
                                          "online"):
        parse_rules([{"name": "r", "kind": "threshold", "indicator": "offline", "below": 1}],
                    indicators)
    with pytest.raises(ConfigError, match="unknown kind 'spike'; valid kinds are: threshold"):
        parse_rules([{"name": "r", "kind": "spike"}], indicators)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) 'after'; valid keys are: .*window"):
        parse_rules([{"name": "r", "kind": "cell_count", "layer": "government", "above": 3,
                      "after": "5m"}], indicators)
    with pytest.raises(ConfigError, match="needs above"):
        parse_rules([{"name": "r", "kind": "cell_count", "layer": "government"}], indicators)
    with pytest.raises(ConfigError, match="give above or below, or declare thresholds"):
        parse_rules([{"name": "r", "kind": "threshold", "indicator": "p"}],
                    parse_indicators([{"name": "p", "layer": "things", "kind": "count"}]))
    with pytest.raises(ConfigError, match="beyond indicator 'online''s forecast horizon"):
        parse_rules([{"name": "r", "kind": "forecast", "indicator": "online", "below": 50,
                      "within": "5h"}], indicators)
    with pytest.raises(ConfigError, match=r"unknown placeholder\(s\) \{colour\}"):
        parse_rules([{"name": "r", "kind": "silent", "layer": "things",
                      "message_en": "{name} is {colour}"}], indicators)
    with pytest.raises(ConfigError, match="no format spec"):
        parse_rules([{"name": "r", "kind": "silent", "layer": "things",
                      "message_zh": "{name}: {minutes:.1f}"}], indicators)
    with pytest.raises(ConfigError, match="duplicate rule"):
        parse_rules([{"name": "r", "kind": "silent", "layer": "things"}] * 2, indicators)
    with pytest.raises(ConfigError, match="unknown column 'pm25'"):
        parse_rules([{"name": "r", "kind": "reading", "layer": "things", "column": "pm25",
                      "above": 1}], indicators)
    with pytest.raises(ValueError, match="undeclared indicator"):
        AlertBook(parse_rules([{"name": "r", "kind": "threshold", "indicator": "online",
                                "below": 1}], indicators), [])


# ----------------------------------------------------------------------- API
def test_signs_and_alerts_api(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    data, source = live_city(tmp_path, clock)
    feed(data, source, device_reports(T0, [True, False, False, False], [50.0] * 4))
    raw = {"indicators": [ONLINE],
           "rules": [{"name": "offline", "kind": "threshold", "indicator": "online"}]}
    signs = VitalSigns.from_config(data, raw, max_age=60)
    allowed = {"ack": False}
    app = Flask(__name__)
    app.register_blueprint(create_signs_blueprint(
        signs, authorize=lambda: allowed["ack"], actor=lambda: "duty-officer"))
    client = app.test_client()

    document = client.get("/api/signs").get_json()
    assert document["time"] == T0.isoformat()
    online = document["indicators"][0]
    assert online["name"] == "online" and online["value"] == 25.0 and online["status"] == "alarm"
    assert online["forecast"]["method"] in ("naive", "none", "ets")
    assert all(v is None or isinstance(v, float) for v in online["series"]["values"])

    alerts = client.get("/api/alerts").get_json()["alerts"]
    assert [a["rule"] for a in alerts] == ["offline"] and alerts[0]["severity"] == "alarm"
    alert_id = alerts[0]["id"]
    assert client.get("/api/alerts?state=bogus").status_code == 400

    url = f"/api/alerts/{alert_id}/ack"
    assert client.post(url, json={}).status_code == 403  # the hook says no
    allowed["ack"] = True
    assert client.post(url, data="x").status_code == 415  # not JSON: no cross-site forms
    answer = client.post(url, json={})
    assert answer.status_code == 200 and answer.get_json()["acked_by"] == "duty-officer"
    assert client.post("/api/alerts/nope/ack", json={}).status_code == 404
    cleared = client.get("/api/alerts?state=cleared").get_json()["alerts"]
    assert cleared == []
    assert math.isfinite(signs.current()[0][0].value)


def test_floor_threshold_alert_says_below() -> None:
    from ops.signs.alerts import Finding
    from ops.signs.settings import parse_rules

    rule = parse_rules([{"name": "r", "kind": "threshold", "indicator": "x"}],
                       (_floor_indicator(),))[0]
    finding = Finding("x", "warn", 80.0, 93.0, fields={"direction": "below"})
    assert "below" in rule.message(finding, "en", "%")
    assert "低于" in rule.message(finding, "zh-CN", "%")


def _floor_indicator():
    from ops.signs.settings import parse_indicators

    return parse_indicators([{"name": "x", "layer": "things", "kind": "share",
                              "where": {"status": ["online"]},
                              "thresholds": {"warn": 93, "direction": "below"}}])[0]
