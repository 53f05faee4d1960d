"""What small-cell suppression costs on a city: cells hidden, people still counted, time.

For every person-level metric's count (``[privacy] person_sources``), at the API's
resolutions: cells with data, cells below k (primary), cells hidden in all
(primary + secondary), and the share of rows still shown to the public; and how long
one suppression decision takes (all resolutions 0..base, every admin unit)::

    .venv/bin/python bench/privacy.py [--config cities/nyc/snapshot.toml]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> None:
    from app import load_config
    from layers import LAYERS
    from render.privacy import PRIVACY_SECTION, Disclosure
    from store.city import CityData

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="cities/nyc/snapshot.toml",
                        help="a city config (default: the NYC demo, every source read once)")
    args = parser.parse_args(argv)
    config = load_config(Path(args.config))
    data = CityData.load(config)
    disclosure = Disclosure(data, config.section(PRIVACY_SECTION))
    for layer in LAYERS.values():
        for metric in layer.metrics(config.sources):
            if metric.agg != "count" or metric.where or metric.source \
                    or not disclosure.person_level(layer.id, metric.role):
                continue
            started = time.perf_counter()
            found = disclosure.suppression(layer.id, metric)
            elapsed = time.perf_counter() - started
            assert found is not None
            print(f"{layer.id}/{metric.name} (k = {found.k}): decided in {elapsed:.2f} s, "
                  f"{len(found.hidden_groups)} admin units hidden")
            for res in range(7, 11):
                values = data.cells(layer.id, metric, res)
                hidden = found.mask(values.index)
                small = int(((values > 0) & (values < found.k)).sum())
                shown = float(values[~hidden].sum())
                print(f"  res {res}: {len(values):,} cells with data, {small:,} below k, "
                      f"{int(hidden.sum()):,} hidden ({int(hidden.sum()) - small:,} secondary); "
                      f"{shown:,.0f} of {float(values.sum()):,.0f} rows shown "
                      f"({shown / float(values.sum()):.1%})")


if __name__ == "__main__":
    main()
