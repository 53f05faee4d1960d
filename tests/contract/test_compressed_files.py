"""Every file adapter reads its format compressed: ``.gz`` and ``.zip`` give the plain file's frame.

Each case writes the contract sample as a plain file through its own contract case
(:mod:`tests.contract.cases_files`, :mod:`tests.contract.cases_live`), compresses that
file here with Python's ``gzip`` / ``zipfile``, and reads both through the same
adapter: the normalised frames and rejections must be identical.
"""

from __future__ import annotations

import gzip
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pandas.testing as pdt
import pytest

from config.kit import ConfigError
from data import SourceError
from tests.contract.cases_files import CASES as FILE_CASES
from tests.contract.cases_files import make_adapter
from tests.contract.sample import all_rows, source_table
from tests.contract.test_adapter_contract import CASES as ALL_CASES

#: Every adapter that reads a file: the file adapters and replay.
CASES = {**FILE_CASES, "replay": ALL_CASES["replay"]}
#: Side files a Shapefile needs beside its .shp (zipped together).
SHAPEFILE_SIDES = (".shx", ".dbf", ".prj", ".cpg")


def _compress(path: Path, container: str) -> Path:
    """``path`` gzipped (``x.csv.gz``) or zipped (``x.zip``, with a Shapefile's side files)."""
    if container == "gz":
        out = path.with_name(path.name + ".gz")
        out.write_bytes(gzip.compress(path.read_bytes()))
        return out
    out = path.with_name(path.stem + "-archive.zip")
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.write(path, f"data/{path.name}")  # a folder inside, as exports often have
        for side in SHAPEFILE_SIDES if path.suffix == ".shp" else ():
            if path.with_suffix(side).exists():
                archive.write(path.with_suffix(side), f"data/{path.with_suffix(side).name}")
        archive.writestr("data/README.md", "not data")
    return out


def _read_again(adapter: Any, path: Path) -> Any:
    source = replace(adapter.source, options={**adapter.source.options, "path": path.name})
    return type(adapter)(source, adapter.context)


def _pairs() -> list[tuple[str, str]]:
    return [(name, container) for name in sorted(CASES) for container in ("gz", "zip")
            if not (name == "shapefile" and container == "gz")]  # a Shapefile is several files


@pytest.mark.parametrize(("adapter_name", "container"), _pairs())
def test_a_compressed_file_gives_the_plain_files_frame(adapter_name: str, container: str,
                                                       tmp_path: Path,
                                                       request: pytest.FixtureRequest) -> None:
    plain = CASES[adapter_name](tmp_path, request)
    expected = plain.snapshot()
    assert len(expected.frame), "the plain case reads rows"
    compressed = _read_again(plain, _compress(plain.source.path(), container))
    got = compressed.snapshot()
    pdt.assert_frame_equal(got.frame, expected.frame)
    assert got.rejected == expected.rejected


@pytest.mark.parametrize("inner", ["parquet", "geojson", "gpkg"])
@pytest.mark.parametrize("container", ["gz", "zip"])
def test_the_file_adapter_reads_the_format_inside(inner: str, container: str,
                                                  tmp_path: Path) -> None:
    """``file`` picks its reader from the extension inside the compression."""
    import geopandas as gpd

    frame = pd.DataFrame(all_rows())
    path = tmp_path / f"sample.{inner}"
    if inner == "parquet":
        frame.to_parquet(path)
    else:
        gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(frame["lon"], frame["lat"]),
                         crs="EPSG:4326").to_file(path)
    plain = make_adapter(tmp_path, source_table("file", path=path.name))
    compressed = make_adapter(tmp_path, source_table("file",
                                                     path=_compress(path, container).name))
    pdt.assert_frame_equal(compressed.snapshot().frame, plain.snapshot().frame)


def test_a_zip_with_several_data_files_needs_member(tmp_path: Path) -> None:
    frame = pd.DataFrame(all_rows())
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as archive:
        archive.writestr("2023.csv", frame.iloc[:5].to_csv(index=False))
        archive.writestr("2024.csv", frame.to_csv(index=False))
    with pytest.raises(SourceError, match=r"2 data files \(2023.csv, 2024.csv\).*member"):
        make_adapter(tmp_path, source_table("csv", path="two.zip")).snapshot()
    chosen = make_adapter(tmp_path, source_table("csv", path="two.zip", member="2024.csv"))
    plain_path = tmp_path / "plain.csv"
    frame.to_csv(plain_path, index=False)
    plain = make_adapter(tmp_path, source_table("csv", path="plain.csv"))
    pdt.assert_frame_equal(chosen.snapshot().frame, plain.snapshot().frame)
    with pytest.raises(SourceError, match="no member '2025.csv'; its members are: 2023.csv"):
        make_adapter(tmp_path, source_table("csv", path="two.zip", member="2025.csv")).snapshot()


def test_member_without_a_zip_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"member: only a \.zip path has members"):
        make_adapter(tmp_path, source_table("replay", path="x.csv.gz", member="x.csv"))
