"""Share of the demo city's points whose served cell equals h3's ``latlng_to_cell``.

Loads a city (the NYC demo by default) and, for every point of every point source,
compares the cell each resolution counts it in with ``h3.latlng_to_cell(lat, lon, res)``
(h3-py's own call, one point at a time): the cells served now
(:func:`geo.exact.cells_of_rows`) and, for comparison, the earlier roll-up (the
parent of the point's ``base_res`` cell)::

    .venv/bin/python bench/exact_cells.py [--config cities/nyc/snapshot.toml]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import h3  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench._common import print_table, verdict  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    from app import load_config
    from geo.exact import cells_of_rows
    from geo.hexes import parents
    from layers import LAYERS
    from store.city import CityData

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="cities/nyc/snapshot.toml",
                        help="a city config (default: the NYC demo, every source read once)")
    args = parser.parse_args(argv)
    config = load_config(Path(args.config))
    data = CityData.load(config)
    frames = [data.frame(s.layer, s.role, s.name) for s in config.sources
              if LAYERS[s.layer].roles[s.role].geometry != "area"]
    rows = pd.concat([f[["lat", "lon", "cell", *[c for c in f if c.startswith("cell_")]]]
                      for f in frames if len(f)], ignore_index=True)
    table, worst = [], 1.0
    for res in config.map.served_resolutions:
        truth = np.array([h3.str_to_int(h3.latlng_to_cell(a, b, res))
                          for a, b in zip(rows["lat"], rows["lon"], strict=True)], dtype=np.int64)
        before = parents(rows["cell"].to_numpy(), res) if res <= config.map.base_res else truth
        now = cells_of_rows(rows, res)
        worst = min(worst, float(np.mean(now == truth)))
        table.append([str(res), f"{len(rows):,}", f"{np.mean(before == truth):.2%}",
                      f"{np.mean(now == truth):.2%}", f"{int(np.sum(now != truth))}"])
    print_table(f"{config.city.name}: points whose cell equals h3.latlng_to_cell",
                ["res", "points", "roll-up (before)", "served (now)", "now differing"], table)
    print(verdict("share of points in latLngToCell's cell, worst served resolution",
                  worst * 100, 100.0, "%", higher_is_better=True))


if __name__ == "__main__":
    main()
