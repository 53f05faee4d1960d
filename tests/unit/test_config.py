from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from app import load_config, parse_config
from config import city
from config.city import ConfigError
from config.kit import check_keys
from config.sections import ConfigSchema, Section, SectionContext

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
    (_with_source(role="parks"), "valid roles are: requests, incidents, service_points"),
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


# ------------------------------------------------------- config imports no feature
FEATURE_PACKAGES = ("layers", "data", "store", "render", "ops", "services", "api", "callbacks",
                    "app")


def test_config_imports_no_feature_module() -> None:
    """Config is below every feature: loading it pulls in none of them (nor geo beyond crs)."""
    import subprocess
    import sys

    code = ("import sys; import config.city, config.kit, config.sections, config.tour, config.clock, "
            "config.i18n; print('\\n'.join(sorted(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).resolve().parents[2]).stdout.split()
    features = sorted(m for m in loaded if m.split(".")[0] in FEATURE_PACKAGES)
    assert "config.city" in loaded  # the probe really imported config
    assert not features, f"config imports feature modules: {features}"


def test_unknown_top_level_tables_list_core_and_feature_tables(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"city": {"name": "X", "center": {"lat": 1, "lon": 2}}, "bogus": {}}, tmp_path)
    assert str(info.value) == (
        "config: unknown key(s) 'bogus'; valid keys are: boundaries, cache, city, events, "
        "indicators, live, map, privacy, rules, signin, sources, tour, users")


def _schema(*sections: Section[Any]) -> ConfigSchema:
    from data import adapter_names, get_adapter_class
    from layers import LAYERS

    return ConfigSchema(layers=LAYERS, adapter_names=adapter_names, adapter=get_adapter_class,
                        sections=sections)


def test_a_section_is_one_registry_line_and_reads_back_typed(tmp_path: Path) -> None:
    """A feature's table is parsed by its own parser, with the city's sources at hand."""
    seen: list[tuple[Mapping[str, Any], SectionContext]] = []

    def parse(tables: Mapping[str, Any], context: SectionContext) -> tuple[str, ...]:
        seen.append((tables, context))
        check_keys("[weather]", tables["weather"], {"stations"})
        return tuple(str(s) for s in tables["weather"]["stations"])

    weather = Section[tuple[str, ...]]("weather", ("weather",), parse, default=())
    raw = {**_with_source(), "weather": {"stations": ["KNYC", "KJFK"]}}
    config = city.parse_config(raw, tmp_path, schema=_schema(weather))
    assert config.section(weather) == ("KNYC", "KJFK")
    assert seen[0][1].base_dir == tmp_path and seen[0][1].sources == config.sources
    assert config.with_section(weather, ("X",)).section(weather) == ("X",)
    assert config.section(weather) == ("KNYC", "KJFK")  # with_section copies

    empty = city.parse_config(_with_source(), tmp_path, schema=_schema(weather))
    assert empty.section(weather) == () and len(seen) == 1  # absent: default, parser not called
    with pytest.raises(ConfigError, match=r"\[weather\]: unknown key\(s\) 'colour'"):
        city.parse_config({**raw, "weather": {"colour": 1}}, tmp_path, schema=_schema(weather))
    # Without the section registered, its table is an unknown key naming the valid ones.
    with pytest.raises(ConfigError, match="unknown key\\(s\\) 'weather'; valid keys are: "
                                          "boundaries, cache, city, live, map, sources, tour$"):
        city.parse_config(raw, tmp_path, schema=_schema())


def test_the_app_schema_lists_every_feature_section(live_config) -> None:
    from app import config_schema
    from ops.events.settings import EVENTS_SECTION, USERS_SECTION
    from ops.sessions import SIGNIN_SECTION
    from ops.signs.settings import SIGNS_SECTION
    from render.privacy import PRIVACY_SECTION

    schema = config_schema()
    assert schema.sections == (EVENTS_SECTION, USERS_SECTION, SIGNIN_SECTION, SIGNS_SECTION,
                               PRIVACY_SECTION)
    assert live_config.section(EVENTS_SECTION) is not None
    assert live_config.section(SIGNS_SECTION).rules  # the live demo declares warning rules
    assert "operator" in {u.role for u in live_config.section(USERS_SECTION)}


def test_geometry_errors_become_config_errors_naming_the_key(tmp_path: Path) -> None:
    raw = _with_source(name="trees", crs="EPSG:999999")
    with pytest.raises(ConfigError) as info:
        parse_config(raw, tmp_path)
    assert str(info.value).startswith("[[sources]] 'trees'.crs: unknown CRS 'EPSG:999999'; use an EPSG")
