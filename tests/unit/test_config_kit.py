"""The validation kit: each helper accepts what it should, and its errors name the key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from config.clock import iso
from config.kit import (
    ConfigError,
    check_keys,
    choice,
    duration,
    env_name,
    number,
    parse_duration,
    positive_duration,
    require,
    table_name,
    text,
    unique_names,
)
from geo.crs import UnknownCRSError, check_crs


def test_check_keys_names_unknown_and_valid_keys() -> None:
    check_keys("[map]", {"a": 1}, {"a", "b"})
    with pytest.raises(ConfigError) as info:
        check_keys("[map]", {"a": 1, "zz": 2, "c": 3}, {"b", "a"})
    assert str(info.value) == "[map]: unknown key(s) 'c', 'zz'; valid keys are: a, b"


def test_require_names_the_missing_key() -> None:
    assert require("[city]", {"name": "X"}, "name") == "X"
    with pytest.raises(ConfigError, match=r"^\[city\]: missing required key 'center'$"):
        require("[city]", {"name": "X"}, "center")


def test_choice_lists_the_valid_choices() -> None:
    assert choice("[city].theme", "dark", ("dark", "light"), "theme") == "dark"
    with pytest.raises(ConfigError) as info:
        choice("[city].theme", "pink", ("dark", "light"), "theme")
    assert str(info.value) == "[city].theme: unknown theme 'pink'; valid themes are: dark, light"


@pytest.mark.parametrize(("value", "lo", "hi", "message"), [
    (True, None, None, "expected a number, got True"),
    ("3", None, None, "expected a number, got '3'"),
    (0, 1, None, "0 is outside [1, None]"),
    (23, 0, 22, "23 is outside [0, 22]"),
])
def test_number_refuses_non_numbers_and_out_of_range(value: Any, lo: float | None,
                                                      hi: float | None, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        number("[map].zoom", value, lo, hi)
    assert str(info.value) == f"[map].zoom: {message}"


def test_number_accepts_ints_and_floats_in_range() -> None:
    assert number("k", 3, 0, 3) == 3.0 and isinstance(number("k", 3), float)
    assert number("k", -2.5) == -2.5


@pytest.mark.parametrize(("value", "seconds"), [
    (90, 90.0), (1.5, 1.5), ("90s", 90.0), ("15m", 900.0), ("2h", 7200.0), ("7d", 604800.0),
    ("0.5h", 1800.0), (0, 0.0),
])
def test_durations(value: Any, seconds: float) -> None:
    assert parse_duration("[live].window", value) == seconds
    assert duration("[live].window", value) == seconds


@pytest.mark.parametrize("value", ["2 weeks", "h", "", "10y", True, None, [1]])
def test_bad_durations_name_the_key(value: Any) -> None:
    with pytest.raises(ConfigError, match=r"^\[live\]\.window: expected a duration like 90"):
        parse_duration("[live].window", value)


def test_positive_duration_refuses_zero_and_negative() -> None:
    assert positive_duration("[rules].after", "30m") == 1800.0
    for value in (0, "0d", -5, "-1h"):
        with pytest.raises(ConfigError, match=r"^\[rules\]\.after: must be positive, got "):
            positive_duration("[rules].after", value)
    with pytest.raises(ConfigError, match=r"^\[rules\]\.after: expected a duration"):
        positive_duration("[rules].after", "soon")


def test_text_strips_and_refuses_empty() -> None:
    assert text("[events].dsn_env", "  X ") == "X"
    for value in ("", "   ", 3, None):
        with pytest.raises(ConfigError,
                           match=r"^\[events\]\.dsn_env: expected a non-empty string, got "):
            text("[events].dsn_env", value)
    assert text("k", None, optional=True) is None
    with pytest.raises(ConfigError, match="^k: expected a non-empty string"):
        text("k", "", optional=True)


def test_env_name_wants_a_name_not_the_secret() -> None:
    assert env_name("[live].history_dsn_env", "CITY_DSN_2") == "CITY_DSN_2"
    assert env_name("k", None, optional=True) is None
    for value in ("postgresql://u:p@db/city", "2CITY", "A-B", "", None, 5):
        with pytest.raises(ConfigError) as info:
            env_name("[live].history_dsn_env", value)
        message = str(info.value)
        assert message.startswith("[live].history_dsn_env: expected the name of an environment "
                                  "variable")
        assert message.endswith(f"got {value!r}")


def test_table_name() -> None:
    assert table_name("[live].history_table", "ops.history") == "ops.history"
    assert table_name("[live].history_table", "citybrain_history") == "citybrain_history"
    for value in ("a.b.c", "drop table x;", "x" * 41, "1abc", 7):
        with pytest.raises(ConfigError, match=r"^\[live\]\.history_table: expected a table name"):
            table_name("[live].history_table", value)


def test_unique_names_lists_each_duplicate_once() -> None:
    unique_names("[[rules]]", ["a", "b"], "rule")
    unique_names("[[rules]]", [], "rule")
    with pytest.raises(ConfigError) as info:
        unique_names("[[rules]]", ["b", "a", "b", "c", "a", "b"], "rule")
    assert str(info.value) == "[[rules]]: duplicate rule name(s): a, b"


def test_iso_keeps_none_and_chooses_precision() -> None:
    moment = datetime(2024, 5, 1, 12, 30, 5, 250000)
    assert iso(None) is None
    assert iso(moment) == "2024-05-01T12:30:05.250000"
    assert datetime.fromisoformat(iso(moment) or "") == moment  # round-trips
    assert iso(moment, "seconds") == "2024-05-01T12:30:05"


def test_geo_crs_raises_a_geometry_error_not_a_config_error() -> None:
    check_crs("EPSG:2263")
    check_crs("gcj-02")
    with pytest.raises(UnknownCRSError, match="unknown CRS 'EPSG:999999'; use an EPSG code") as info:
        check_crs("EPSG:999999")
    assert not isinstance(info.value, ConfigError)
