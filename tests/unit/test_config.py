from __future__ import annotations

from pathlib import Path

import pytest

from config.city import ConfigError, load_config, parse_config

BOSTON = """
[city]
name = "Boston"
name_zh = "波士顿"
center = { lat = 42.33, lon = -71.07 }
zoom = 11

[[boundaries]]
path = "neighborhoods.geojson"
name_field = "name"

[[sources]]
layer = "government"
adapter = "csv"
path = "requests.csv"      # relative to the config file
lat = "latitude"
lon = "longitude"
time = "open_dt"
id = "case_enquiry_id"
category = "type"
"""


def test_demo_config_loads(demo_config) -> None:
    assert demo_config.city.name == "New York City"
    assert demo_config.city.language == "zh-CN"
    assert {s.layer for s in demo_config.sources} == {"people", "enterprises", "land", "things",
                                                      "government"}


def test_issue_example_shape_parses(tmp_path: Path) -> None:
    path = tmp_path / "boston.toml"
    path.write_text(BOSTON, encoding="utf-8")
    config = load_config(path)
    source = config.sources[0]
    assert source.role == "requests"  # the layer's default role
    assert source.fields["category"] == "type"
    assert source.path() == tmp_path / "requests.csv"
    assert config.boundaries[0].path == tmp_path / "neighborhoods.geojson"
    assert config.city.name_zh == "波士顿"


def _with_source(**extra: object) -> dict:
    source = {"layer": "government", "adapter": "csv", "path": "x.csv", "lat": "y", "lon": "x"}
    source.update(extra)
    return {"city": {"name": "X", "center": {"lat": 1, "lon": 2}}, "sources": [source]}


@pytest.mark.parametrize(("raw", "message"), [
    (_with_source(colour="red"), "unknown key(s) 'colour'; valid keys are:"),
    (_with_source(adapter="ftp"), "unknown adapter 'ftp'; valid adapters are: csv"),
    (_with_source(layer="weather"), "unknown layer 'weather'; valid layers are: people"),
    (_with_source(role="parks"), "valid roles are: requests, service_points"),
    (_with_source(crs="EPSG:999999"), "unknown CRS"),
    ({"city": {"name": "X", "center": {"lat": 1, "lon": 2}}, "bogus": {}}, "unknown key(s) 'bogus'"),
    ({"city": {"name": "X", "center": {"lat": 100, "lon": 2}}}, "outside [-90, 90]"),
    ({"city": {"name": "X", "center": {"lat": 1, "lon": 2}, "language": "fr"}}, "valid languages"),
])
def test_invalid_configs_name_the_valid_choices(raw: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        parse_config(raw, tmp_path)
    assert message in str(info.value)


def test_duplicate_source_names_refused(tmp_path: Path) -> None:
    raw = _with_source(name="a")
    raw["sources"].append(dict(raw["sources"][0]))
    with pytest.raises(ConfigError, match="duplicate source name"):
        parse_config(raw, tmp_path)


def test_live_demo_extends_the_snapshot(demo_config, live_config) -> None:
    live = {s.name: s for s in live_config.sources}
    assert live["nyc-311"].adapter == "replay" and live["wifi-hotspots"].simulated
    assert [s.name for s in demo_config.sources] == list(live)  # same sources, same order
    assert live["census-tracts"] == next(s for s in demo_config.sources
                                         if s.name == "census-tracts")
    assert live_config.live.speed > 1 and demo_config.live.speed == 1


def test_extends_must_stay_in_folder_and_not_loop(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('extends = "b.toml"\n', encoding="utf-8")
    (tmp_path / "b.toml").write_text('extends = "a.toml"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="loops back"):
        load_config(tmp_path / "a.toml")
    (tmp_path / "c.toml").write_text('extends = "../x.toml"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="same folder"):
        load_config(tmp_path / "c.toml")


def test_config_is_frozen(demo_config) -> None:
    with pytest.raises(AttributeError):
        demo_config.city.name = "Elsewhere"  # type: ignore[misc]


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[city\nname=", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
