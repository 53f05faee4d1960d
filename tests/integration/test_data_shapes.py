"""Data shapes a config can say, on two differently shaped synthetic cities.

Testburg (crimes in WGS84, a Boston-like export) and Ceshi (traffic crashes with Chinese
columns in GCJ-02) each get an ``incidents`` source, gzip-compressed. Checked against
computations written here with pandas and h3 from the generator's true positions:

* every point source of every layer has a ``count:<source>`` metric equal to a pandas
  count of that source's rows per cell;
* incidents are mapped and counted (``incidents``, ``victims``) but never reach the
  event queue: ``/api/events`` holds exactly the requests, and a source's own
  ``events`` key turns a role's default around.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import h3
import pandas as pd
import pytest

from config.kit import ConfigError
from layers import LAYERS
from tests.synthetic_city import CESHI, TESTBURG, CitySpec, SyntheticCity, write_city

RES = 8
TOKEN = "shapes-test-token"  # noqa: S105 (a test-only bearer token)


def point_cell(lat: float, lon: float, res: int = RES) -> int:
    """A point's cell at ``res`` as citybrain serves it (see tests/integration/test_any_city.py)."""
    from tests.integration.test_any_city import point_cell as served_cell

    return int(h3.str_to_int(served_cell(lat, lon, res)))


def pandas_counts(truth: pd.DataFrame, res: int = RES) -> dict[int, float]:
    cells = [point_cell(lat, lon, res) for lat, lon in zip(truth["lat"], truth["lon"], strict=True)]
    return {int(c): float(n) for c, n in pd.Series(1, index=cells).groupby(level=0).size().items()}


@pytest.fixture(scope="module", params=[TESTBURG, CESHI], ids=lambda spec: spec.key)
def city(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> SyntheticCity:
    spec: CitySpec = request.param
    root = tmp_path_factory.mktemp(spec.key)
    return write_city(root / "city", spec, cache_dir=root / "cache")


@pytest.fixture(scope="module")
def loaded(city: SyntheticCity) -> Any:
    from app import load_config
    from store.city import CityData

    return CityData.load(load_config(city.config_path))


def test_every_point_source_has_a_count_equal_to_pandas(city: SyntheticCity, loaded: Any) -> None:
    checked = []
    for written in city.sources.values():
        if LAYERS[written.layer].roles[written.role].geometry != "point":
            continue
        metric = loaded.metric(written.layer, f"count:{written.name}")
        assert metric.source == written.name and metric.agg == "count"
        served = loaded.cells(written.layer, metric, RES)
        assert {int(c): float(v) for c, v in served.items()} == pandas_counts(written.truth), \
            written.name
        checked.append(written.layer)
    # People, enterprises, things and government (requests, offices, incidents) each count.
    assert set(checked) == {"people", "enterprises", "things", "government"}


def test_incidents_are_mapped_and_counted(city: SyntheticCity, loaded: Any) -> None:
    truth = city.sources["incidents"].truth
    health = loaded.health["incidents"]
    assert health.last_error is None and health.rows_loaded == len(truth)
    assert dict(health.rejected) == dict(city.sources["incidents"].rejected)
    served = loaded.cells("government", loaded.metric("government", "incidents"), RES)
    assert {int(c): float(v) for c, v in served.items()} == pandas_counts(truth)
    cells = [point_cell(lat, lon) for lat, lon in zip(truth["lat"], truth["lon"], strict=True)]
    victims = truth["victims"].groupby(cells).sum()
    served = loaded.cells("government", loaded.metric("government", "victims"), RES)
    assert {int(c): float(v) for c, v in served.items() if v} == \
        {int(c): float(v) for c, v in victims.items() if v}
    # The requests count stays the requests' own.
    requests = loaded.cells("government", loaded.metric("government", "requests"), RES)
    assert float(requests.sum()) == len(city.sources["requests"].truth)


def _with_events(city: SyntheticCity, tmp: Path, incidents_events: bool | None = None) -> Path:
    """The city's config plus an event pipeline and one viewer (and the incidents' key)."""
    text = city.config_path.read_text(encoding="utf-8")
    if incidents_events is not None:
        text = text.replace('role = "incidents"',
                            f'role = "incidents"\nevents = {str(incidents_events).lower()}')
    text += (f'\n[events]\nstore = "sqlite"\npath = "{(tmp / "events.sqlite3").as_posix()}"\n'
             'default_department = "City Hall"\n\n'
             '[[users]]\nname = "analyst"\nrole = "viewer"\ntoken_env = "SHAPES_TEST_TOKEN"\n')
    path = city.directory / f"events-{incidents_events}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _reports_by_source(config_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    from app import create_app, load_config

    monkeypatch.setenv("SHAPES_TEST_TOKEN", TOKEN)
    monkeypatch.setenv("CITYBRAIN_SECRET_KEY", "test-only")
    app = create_app(load_config(config_path), start_ingest=False)
    client = app.server.test_client()
    try:
        listed = client.get("/api/events?limit=1000", headers={"Authorization": f"Bearer {TOKEN}"})
        assert listed.status_code == 200, listed.get_data(as_text=True)[:300]
        body = listed.get_json()
        events = body if isinstance(body, list) else body["events"]
        assert len(events) < 1000, "more events than one page: the test city is too big"
        by_source: dict[str, int] = {}
        for event in events:
            detail = client.get(f"/api/events/{event['id']}",
                                headers={"Authorization": f"Bearer {TOKEN}"}).get_json()
            for report in detail["reports"]:
                by_source[report["source"]] = by_source.get(report["source"], 0) + 1
        return by_source
    finally:
        services = app.services  # type: ignore[attr-defined]
        services.ingest.stop()
        if services.events is not None:
            services.events.close()


def test_incidents_are_not_in_the_event_queue(city: SyntheticCity, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    by_source = _reports_by_source(_with_events(city, tmp_path), monkeypatch)
    assert by_source == {"requests": len(city.sources["requests"].truth)}


def test_a_source_opts_into_the_queue(city: SyntheticCity, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    by_source = _reports_by_source(_with_events(city, tmp_path, incidents_events=True),
                                   monkeypatch)
    assert by_source == {"requests": len(city.sources["requests"].truth),
                         "incidents": len(city.sources["incidents"].truth)}


def test_events_key_is_checked(city: SyntheticCity) -> None:
    from app import load_config

    text = city.config_path.read_text(encoding="utf-8")
    bad = city.directory / "bad-events.toml"
    bad.write_text(text.replace('role = "incidents"', 'role = "incidents"\nevents = "yes"'),
                   encoding="utf-8")
    with pytest.raises(ConfigError, match=r"'incidents'.events: expected true or false"):
        load_config(bad)
    bad.write_text(text.replace('value = "pop2020"', 'value = "pop2020"\nevents = true'),
                   encoding="utf-8")
    with pytest.raises(ConfigError, match=r"'residents'.events: only point sources"):
        load_config(bad)


def test_feeds_events_defaults_from_the_role(loaded: Any) -> None:
    from layers import event_sources, feeds_events

    sources = {s.name: s for s in loaded.config.sources}
    assert [s.name for s in event_sources(sources.values())] == ["requests"]
    assert feeds_events(replace(sources["incidents"], events=True))
    assert not feeds_events(replace(sources["requests"], events=False))

