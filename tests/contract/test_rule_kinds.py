"""The rule-kind contract: every kind in ``RULE_KINDS`` parses its keys, refuses others,
raises an alert when the data break it and clears it when they recover.

Each kind has a :class:`Case` here: full example tables (together they use every key
the kind declares) and a scenario on a live device city driven by a hand clock. A
kind without a case fails :func:`test_every_rule_kind_has_a_case`. The last test
defines a rule kind in the test itself and shows a city config using it raising and
clearing an alert through :class:`~ops.signs.service.VitalSigns`, with no other edit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from app import parse_config
from config.city import ConfigError
from ops.signs import kit
from ops.signs.rows import state_rows
from ops.signs.rules import BUILTIN_RULE_KINDS, RULE_KINDS, parse_rule, register_rule_kind
from ops.signs.rules.base import CheckContext, Finding, ParseContext, RowsRule
from ops.signs.service import VitalSigns
from ops.signs.settings import parse_indicators
from store.city import CityData
from tests.unit.test_indicators import CITY, T0, ManualClock, feed

CELL_A = (40.7484, -73.9857)
CELL_B = (40.6892, -74.0445)
COMMON = {"title_zh": "规则", "title_en": "Rule", "message_zh": "{title}：{value}（{key}）",
          "message_en": "{title}: {value} ({key})", "enabled": True}

#: Indicators the examples may name: the share of devices online, and reports per hour.
INDICATORS: list[dict[str, Any]] = [
    {"name": "online", "layer": "things", "kind": "share", "where": {"status": "online"},
     "bucket": "30m", "window": "3h", "unit_en": "%",
     "thresholds": {"warn": 90, "alarm": 60, "direction": "below"}},
    {"name": "reports", "layer": "things", "kind": "rate", "bucket": "1h", "window": "12h",
     "forecast": {"horizon": "3h"}},
]


def reports(moment: pd.Timestamp, ids: Sequence[str], at: tuple[float, float] = CELL_A,
            online: bool = True, reading: float = 10.0) -> pd.DataFrame:
    """Device reports, all at one place (so all in one H3 cell)."""
    return pd.DataFrame({"id": list(ids), "t": [moment] * len(ids), "lat": at[0], "lon": at[1],
                         "status": "online" if online else "offline",
                         "pm": reading if online else np.nan, "label": [f"Device {i}" for i in ids]})


@dataclass
class City:
    """A live device city (one streaming source) and its vital signs, on a hand clock."""

    data: CityData
    source: Any
    clock: ManualClock
    signs: VitalSigns

    def report(self, frame: pd.DataFrame) -> None:
        feed(self.data, self.source, frame)

    def check(self, judged: bool = True) -> tuple[set[str], set[str]]:
        """(rules that raised, rules that cleared) at the clock's now.

        ``judged``: every rule could be evaluated (no indicator without a value, no
        missing history).
        """
        _, changes = self.signs.refresh(self.clock.now())
        assert not judged or not changes.errors, changes.errors
        return {a.rule for a in changes.raised}, {a.rule for a in changes.cleared}


def city(tmp_path: Path, rules: Sequence[Mapping[str, Any]]) -> City:
    raw = {"city": CITY, "cache": {"directory": str(tmp_path / "cache")},
           "live": {"window": "1h", "history": "1d"},
           "sources": [{"name": "sensors", "layer": "things", "role": "devices",
                        "adapter": "replay", "path": str(tmp_path / "unused.csv"), "id": "id",
                        "time": "t", "lat": "lat", "lon": "lon", "status": "status",
                        "reading": "pm", "label": "label"}],
           "indicators": INDICATORS, "rules": list(rules)}
    config = parse_config(raw, tmp_path)  # the whole city config, rules included
    data = CityData(config)
    clock = ManualClock(T0)
    data.clock = clock  # type: ignore[assignment]
    source = config.sources[0]
    data.adapter(source)  # sets up the live window; the replay file is never read
    return City(data, source, clock, VitalSigns.from_config(data, raw, max_age=0))


# ------------------------------------------------------------------ scenarios
def break_threshold(c: City) -> None:
    c.report(reports(c.clock.now(), ["d0", "d1"]))
    c.report(reports(c.clock.now(), ["d2", "d3"], CELL_B, online=False))


def recover_threshold(c: City) -> None:
    c.clock.advance(minutes=10)
    c.report(reports(c.clock.now(), ["d0", "d1", "d2", "d3"]))


def break_forecast(c: City) -> None:
    # 2, 4 … 40 reports per hour: a steady rise, long enough for the forecast to be
    # backtested and beat persistence (a forecast rule trusts only a skilful forecast).
    for hour in range(20):
        c.clock.advance(hours=1)
        c.report(reports(c.clock.now(), [f"h{hour}-{i}" for i in range(2 * (hour + 1))]))


def recover_forecast(c: City) -> None:
    # Then a steady fall, 39, 38 … 16 an hour, for a day: the whole history the live source
    # keeps is the fall, where the trend beats persistence clearly (significantly, as a
    # model must to be used; over a turn it does not).
    for hour in range(24):
        c.clock.advance(hours=1)
        c.report(reports(c.clock.now(), [f"f{hour}-{i}" for i in range(39 - hour)]))


def break_cell_count(c: City) -> None:
    c.report(reports(c.clock.now(), ["d0", "d1", "d2", "d3"]))


def recover_cell_count(c: City) -> None:
    c.clock.advance(minutes=40)  # the reports leave the 30 min window
    c.report(reports(c.clock.now(), ["d0"], CELL_B))


def break_reading(c: City) -> None:
    c.report(reports(c.clock.now(), ["d0"], reading=50.0))
    c.report(reports(c.clock.now(), ["d1"], CELL_B, reading=5.0))


def recover_reading(c: City) -> None:
    c.clock.advance(minutes=5)
    c.report(reports(c.clock.now(), ["d0"], reading=20.0))


def break_silent(c: City) -> None:
    c.report(reports(c.clock.now(), ["d0", "d1"]))
    c.clock.advance(minutes=45)
    c.report(reports(c.clock.now(), ["d1"]))  # d0 is silent since T0


def recover_silent(c: City) -> None:
    c.clock.advance(minutes=1)
    c.report(reports(c.clock.now(), ["d0"]))


def break_anomaly(c: City) -> None:
    for hour in range(4):  # one report an hour at A, then a surge of ten
        c.report(reports(c.clock.now(), [f"a{hour}"]))
        c.clock.advance(hours=1)
    c.report(reports(c.clock.now(), [f"s{i}" for i in range(10)]))


def recover_anomaly(c: City) -> None:
    c.clock.advance(hours=1)
    c.report(reports(c.clock.now(), ["calm"]))


@dataclass(frozen=True)
class Case:
    #: Full tables: together they use every key the kind declares.
    examples: tuple[Mapping[str, Any], ...]
    #: The table the scenario runs (its name is added).
    rule: Mapping[str, Any]
    breaks: Callable[[City], None]
    recovers: Callable[[City], None]


ROWS = {"layer": "things", "role": "devices", "source": "sensors",
        "where": {"status": ["online"]}, "max_alerts": 10}

CASES: dict[str, Case] = {
    "threshold": Case(
        examples=({"kind": "threshold", "indicator": "online", "below": 80, "severity": "alarm",
                   **COMMON},
                  {"kind": "threshold", "indicator": "online", "above": 99, **COMMON}),
        rule={"kind": "threshold", "indicator": "online", "below": 80, "severity": "alarm"},
        breaks=break_threshold, recovers=recover_threshold),
    "forecast": Case(
        examples=({"kind": "forecast", "indicator": "reports", "above": 25, "within": "2h",
                   "band": "upper", "severity": "warn", **COMMON},
                  {"kind": "forecast", "indicator": "reports", "below": 1, "within": "1h",
                   **COMMON}),
        rule={"kind": "forecast", "indicator": "reports", "above": 25, "within": "2h"},
        breaks=break_forecast, recovers=recover_forecast),
    "cell_count": Case(
        examples=({"kind": "cell_count", **ROWS, "time_column": "time", "res": 8,
                   "window": "30m", "above": 2, "severity": "info", **COMMON},),
        rule={"kind": "cell_count", **ROWS, "res": 8, "window": "30m", "above": 2},
        breaks=break_cell_count, recovers=recover_cell_count),
    "reading": Case(
        examples=({"kind": "reading", **ROWS, "column": "reading", "above": 35, "severity": "warn",
                   **COMMON},
                  {"kind": "reading", **ROWS, "column": "reading", "below": 1, **COMMON}),
        rule={"kind": "reading", **ROWS, "column": "reading", "above": 35},
        breaks=break_reading, recovers=recover_reading),
    "silent": Case(
        examples=({"kind": "silent", **ROWS, "after": "30m", "severity": "alarm", **COMMON},),
        rule={"kind": "silent", "layer": "things", "after": "30m"},
        breaks=break_silent, recovers=recover_silent),
    "anomaly": Case(
        examples=({"kind": "anomaly", **ROWS, "time_column": "time", "res": 8, "bucket": "1h",
                   "baseline_buckets": 3, "z": 3, "min_count": 3, "min_std": 1, "severity": "alarm",
                   **COMMON},
                  {"kind": "anomaly", "indicator": "reports", "baseline_buckets": 6, "z": 2.5,
                   "min_count": 1, "min_std": 0.5, **COMMON}),
        rule={"kind": "anomaly", "layer": "things", "res": 8, "bucket": "1h",
              "baseline_buckets": 3, "z": 3, "min_count": 3},
        breaks=break_anomaly, recovers=recover_anomaly),
}


def test_every_rule_kind_has_a_case() -> None:
    assert set(CASES) == {cls.kind for cls in BUILTIN_RULE_KINDS} == set(RULE_KINDS)


@pytest.mark.parametrize("kind", list(CASES))
def test_rule_kind_parses_every_key_it_declares(kind: str) -> None:
    cls = RULE_KINDS[kind]
    indicators = parse_indicators(INDICATORS)
    used: set[str] = set()
    for n, example in enumerate(CASES[kind].examples):
        table = {"name": f"{kind}-{n}", **example}
        rule = parse_rule(table, indicators)
        assert type(rule) is cls and rule.kind == kind and rule.name == table["name"]
        assert (rule.title_en, rule.message_en, rule.enabled) == \
            (table["title_en"], table["message_en"], True)
        for key, value in table.items():  # plain values arrive as given
            if key in ("above", "below", "res", "z", "min_count", "min_std", "baseline_buckets",
                       "column", "layer", "role", "source", "indicator", "band", "severity"):
                assert getattr(rule, key) == value, key
        used |= set(table)
    assert used == cls.valid_keys(), "examples should use every key the kind declares"


@pytest.mark.parametrize("kind", list(CASES))
def test_rule_kind_refuses_an_unknown_key(kind: str) -> None:
    table = {"name": "r", **CASES[kind].examples[0], "colour": "red"}
    with pytest.raises(ConfigError, match=rf"\(kind '{kind}'\): unknown key\(s\) 'colour'; "
                                          "valid keys are: "):
        parse_rule(table, parse_indicators(INDICATORS))


@pytest.mark.parametrize("kind", list(CASES))
def test_rule_kind_raises_an_alert_and_clears_it(tmp_path: Path, kind: str) -> None:
    case = CASES[kind]
    c = city(tmp_path, [{"name": kind, **case.rule}])
    assert c.check(judged=False) == (set(), set())  # no data, no alert
    case.breaks(c)
    assert c.check()[0] == {kind}
    alert = c.signs.book.active()[0]
    assert alert.kind == kind and alert.message_en and alert.message_zh
    case.recovers(c)
    assert c.check() == (set(), {kind})
    assert not c.signs.book.active() and alert.state == "cleared"


# ----------------------------------------------------- a kind from outside
@dataclass(frozen=True, kw_only=True)
class StatusRule(RowsRule):
    """Devices whose ``status`` is one of ``statuses`` right now; one alert per device."""

    kind: ClassVar[str] = "status_is"
    keys: ClassVar[frozenset[str]] = RowsRule.keys | {"statuses"}
    message_fields: ClassVar[frozenset[str]] = frozenset({"status"})
    messages: ClassVar[Mapping[str, tuple[str, str]]] = {
        "above": ("{title}：{key}状态为{status}", "{title}: {key} is {status}")}

    statuses: tuple[str, ...] = ()

    @classmethod
    def parse_fields(cls, table: Mapping[str, Any], ctx: ParseContext) -> dict[str, Any]:
        fields, _ = cls.parse_rows(table, ctx)
        statuses = table.get("statuses")
        if not isinstance(statuses, list) or not statuses:
            raise ConfigError(f"{ctx.where}.statuses: expected a list of statuses")
        fields["statuses"] = tuple(kit.text(f"{ctx.where}.statuses", s) for s in statuses)
        return fields | cls.parse_max_alerts(table, ctx)

    def check(self, ctx: CheckContext) -> list[Finding]:
        assert self.layer is not None and self.role is not None and self.severity is not None
        rows = state_rows(ctx.data, self.layer, self.role, self.source, ctx.now)
        rows = self.select(rows if rows is not None else pd.DataFrame({"status": []}))
        hit = rows.loc[rows["status"].isin(self.statuses).to_numpy(dtype=bool)]
        return [Finding(str(row_id), self.severity, 1.0, cells=(int(cell),),
                        fields={"status": str(status)})
                for row_id, cell, status in zip(hit["id"], hit["cell"], hit["status"], strict=True)]


@pytest.fixture
def status_kind() -> Iterator[type[StatusRule]]:
    register_rule_kind(StatusRule)
    yield StatusRule
    RULE_KINDS.pop(StatusRule.kind)


def test_a_rule_kind_defined_here_is_served_by_the_normal_path(
        tmp_path: Path, status_kind: type[StatusRule]) -> None:
    c = city(tmp_path, [{"name": "offline", "kind": "status_is", "layer": "things",
                         "statuses": ["offline"], "severity": "alarm",
                         "title_en": "Device offline", "title_zh": "设备离线"}])
    c.report(reports(c.clock.now(), ["d0", "d1"]))
    assert c.check() == (set(), set())
    c.clock.advance(minutes=5)
    c.report(reports(c.clock.now(), ["d1"], online=False))
    assert c.check() == ({"offline"}, set())
    alert = c.signs.book.active()[0]
    assert (alert.kind, alert.key, alert.severity) == ("status_is", "d1", "alarm")
    assert alert.message_en == "Device offline: d1 is offline"
    assert alert.message_zh == "设备离线：d1状态为offline"
    c.clock.advance(minutes=5)
    c.report(reports(c.clock.now(), ["d1"]))
    assert c.check() == (set(), {"offline"})
    with pytest.raises(ValueError, match="already registered"):
        register_rule_kind(type("Other", (StatusRule,), {}))  # one class per name


def test_an_unregistered_kind_is_refused_with_the_registered_ones() -> None:
    with pytest.raises(ConfigError, match="unknown kind 'status_is'; valid kinds are: "
                                          + ", ".join(RULE_KINDS)):
        parse_rule({"name": "r", "kind": "status_is"}, [])
