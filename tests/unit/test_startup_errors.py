"""Config mistakes at start-up: one line naming the key and the fix, exit status 2, no traceback.

Each case takes a synthetic city (tests/synthetic_city.py; Testburg's files are
GeoJSON, CSV, GeoPackage and Shapefile, Ceshi's are Chinese-named CSV columns in
GCJ-02) and breaks one thing in its ``city.toml``, then runs ``python app.py --config``
as an operator would.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from app import check_files, create_app, load_config
from config.city import ConfigError
from data import SourceError, get_adapter_class
from data.base import AdapterContext
from tests.synthetic_city import CESHI, TESTBURG, write_city

REPO = Path(__file__).resolve().parents[2]

#: (what to replace in Testburg's city.toml, with what, what the one line must say)
MISTAKES = [
    ('timezone = "America/New_York"', 'timezone = "America/Nowhere"',
     r"\[city\]\.timezone: unknown time zone 'America/Nowhere'; use an IANA name"),
    ('path = "neighbourhoods.geojson"\nname_field', 'path = "hoods.geojson"\nname_field',
     r"\[\[boundaries\]\] 'neighbourhood'\.path: file not found: .*hoods\.geojson"),
    ('name_field = "name"', 'name_field = "nbhd_name"',
     r"\[\[boundaries\]\] 'neighbourhood'\.name_field: no field 'nbhd_name' in "
     r"neighbourhoods\.geojson; its fields are: .*name"),
    ('id_field = "nbhd_id"', 'id_field = "nbhd"',
     r"\[\[boundaries\]\] 'neighbourhood'\.id_field: no field 'nbhd'"),
    ('id_field = "nbhd_id"', 'id_field = "nbhd_id"\nparent_field = "borough"',
     r"\[\[boundaries\]\] 'neighbourhood'\.parent_field: no field 'borough'"),
    ('path = "bike_trips.csv"', 'path = "trips/bike_trips.csv"',
     r"\[\[sources\]\] 'bike-trips'\.path: file not found: .*trips/bike_trips\.csv"),
    ('time = "started_at"', 'time = "start_time"',
     r"\[\[sources\]\] 'bike-trips'\.time: no column 'start_time' in bike_trips\.csv; "
     r"its columns are: .*started_at"),
    ('id = "zone_code"', 'id = "zone_id"',
     r"\[\[sources\]\] 'zoning'\.id: no column 'zone_id' in zoning\.gpkg"),
    ('label = "WARD_NAME"', 'label = "ward_name"',
     r"\[\[sources\]\] 'wards'\.label: no column 'ward_name' in wards\.shp"),
]


@pytest.fixture(scope="module")
def testburg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_city(tmp_path_factory.mktemp("testburg"), TESTBURG).config_path


def _broken(config_path: Path, old: str, new: str) -> Path:
    text = config_path.read_text(encoding="utf-8")
    assert old in text, old
    bad = config_path.with_name("bad.toml")
    bad.write_text(text.replace(old, new, 1), encoding="utf-8")
    return bad


def _run_cli(config_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "app.py", "--config", str(config_path), "--port", "1"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("old", "new", "message"), MISTAKES,
                         ids=[m[2].split(":")[0].replace("\\", "") for m in MISTAKES])
def test_a_config_mistake_is_one_line_and_exit_status_2(testburg: Path, old: str, new: str,
                                                         message: str) -> None:
    done = _run_cli(_broken(testburg, old, new))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("citybrain: ")
    assert re.search(message, lines[0]), lines[0]


@pytest.mark.parametrize("spec", [TESTBURG, CESHI], ids=["testburg", "ceshi"])
def test_a_correct_city_passes_the_file_checks(tmp_path: Path, spec) -> None:
    city = write_city(tmp_path, spec)
    config = load_config(city.config_path)
    assert check_files(config) is config


def test_a_wrong_chinese_column_is_named_with_the_columns_the_file_has(tmp_path: Path) -> None:
    city = write_city(tmp_path, CESHI)
    bad = _broken(city.config_path, 'lat = "纬度"', 'lat = "緯度"')
    with pytest.raises(ConfigError, match=r"\[\[sources\]\] 'requests'\.lat: no column '緯度' "
                                          r"in requests\.csv; its columns are: .*纬度"):
        check_files(load_config(bad))


def test_the_first_read_says_the_same_as_the_start_up_check(testburg: Path) -> None:
    """A config that was parsed but not checked (tests, tools) fails its first read with
    the start-up check's message, recorded on the source, never raised."""
    config = load_config(_broken(testburg, 'time = "started_at"', 'time = "start_time"'))
    with pytest.raises(ConfigError) as at_start:
        check_files(config)
    source = next(s for s in config.sources if s.name == "bike-trips")
    adapter = get_adapter_class(source.adapter)(source, AdapterContext(base_res=10))
    with pytest.raises(SourceError) as at_read:
        adapter.snapshot()
    assert str(at_read.value) == str(at_start.value)


def test_building_the_app_with_a_missing_boundary_file_is_a_config_error(testburg: Path) -> None:
    config = load_config(_broken(testburg, 'path = "neighbourhoods.geojson"\nname_field',
                                 'path = "gone.geojson"\nname_field'))
    with pytest.raises(ConfigError, match=r"\[\[boundaries\]\] 'neighbourhood'\.path: file not "
                                          r"found"):
        create_app(config, start_ingest=False)
