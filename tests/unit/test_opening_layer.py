"""A city opens on a layer that has data, not on an empty first layer."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from app import load_config
from callbacks import ids
from callbacks.layout import build_layout
from layers import LAYERS
from store.city import CityData
from tests.synthetic_city import CESHI, write_city


def _without_sources(config_path: Path, names: set[str]) -> Path:
    """The config with the ``[[sources]]`` tables of ``names`` cut out."""
    blocks = re.split(r"(?m)^(?=\[\[sources\]\]|# -{10,})", config_path.read_text(encoding="utf-8"))
    kept = [b for b in blocks
            if not any(re.search(rf'(?m)^name = "{n}"$', b) for n in names)]
    out = config_path.with_name("cut.toml")
    out.write_text("".join(kept), encoding="utf-8")
    return out


def _layer_radio_value(component: Any) -> Any:
    if getattr(component, "id", None) == ids.HEX_LAYER:
        return component.value
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list) else [children]:
        if child is not None and hasattr(child, "to_plotly_json"):
            found = _layer_radio_value(child)
            if found is not None:
                return found
    return None


def test_a_city_without_people_data_opens_on_the_first_layer_with_rows(tmp_path: Path) -> None:
    city = write_city(tmp_path / "city", CESHI, cache_dir=tmp_path / "cache")
    people = {s.name for s in load_config(city.config_path).sources if s.layer == "people"}
    assert people and next(iter(LAYERS)) == "people"
    config = load_config(_without_sources(city.config_path, people))
    data = CityData.load(config)
    expected = next(layer for layer in LAYERS
                    if any(len(data.frame(layer, s.role, s.name)) for s in config.sources_for(layer)))
    assert expected != "people"
    assert data.opening_layer() == expected
    assert _layer_radio_value(build_layout(config, data)) == expected


def test_a_city_with_people_data_opens_on_people(tmp_path: Path) -> None:
    city = write_city(tmp_path / "city", CESHI, cache_dir=tmp_path / "cache")
    data = CityData.load(load_config(city.config_path))
    assert data.opening_layer() == "people"


def test_a_city_whose_data_failed_to_load_opens_on_a_layer_it_configures(tmp_path: Path) -> None:
    city = write_city(tmp_path / "city", CESHI, cache_dir=tmp_path / "cache")
    config = load_config(city.config_path)
    keep = [s for s in config.sources if s.layer == "government"]
    for source in keep:
        source.path().unlink()  # every government file gone: nothing loads
    config = load_config(_without_sources(city.config_path,
                                          {s.name for s in config.sources} - {s.name for s in keep}))
    data = CityData.load(config)
    assert all(h.last_error for h in data.health.values())
    assert data.opening_layer() == "government"
