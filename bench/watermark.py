"""Indicators at the clock's now vs at the data's watermark, and alerts per reading vs per episode.

A synthetic city (SYNTHETIC: seeded random numbers) has 12 air-quality stations
reporting hourly PM2.5 for 7 days through two streaming sources: ``fast`` (6
stations, each hour delivered 5 minutes after it) and ``slow`` (6 stations, each hour
delivered 30–150 minutes late, as a provincial feed pushes them). The city clock
advances in 10-minute steps; at each step what has arrived is ingested through the
real normalisation and live windows, then::

    .venv/bin/python bench/watermark.py

prints, over every step from hour 27 (when every 24-hour window lies within the data),

* the share of evaluations whose hourly mean is empty, at the clock's now (what
  citybrain did) and at the watermark (what it does);
* the share whose 24-hour mean covers fewer than 24 complete hours (hours with all 12
  stations' readings in the window), both ways;
* the alerts a ``reading`` rule (PM2.5 > 75) raises when each reading carries a
  made-up id on the devices role (what a city had to do) and when readings are
  observations of their station (``things/readings``), against the episodes counted
  with pandas.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import parse_config  # noqa: E402
from data.base import normalise  # noqa: E402
from layers import LAYERS  # noqa: E402
from ops.signs.alerts import AlertBook  # noqa: E402
from ops.signs.indicators import evaluate, values_at  # noqa: E402
from ops.signs.rules import parse_rules  # noqa: E402
from ops.signs.settings import parse_indicator  # noqa: E402
from store.city import CityData  # noqa: E402

T0 = pd.Timestamp("2024-03-01 00:00", tz="UTC")
DAYS, STATIONS, LIMIT = 7, 12, 75.0


def readings(seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    hours = DAYS * 24
    frames = []
    slow_lag = rng.uniform(30, 150, hours)  # one delivery per hour for the slow feed
    for s in range(STATIONS):
        walk = np.clip(60 + np.cumsum(rng.normal(0, 8, hours)), 5, 200)
        slow = s >= STATIONS // 2
        frames.append(pd.DataFrame({
            "station": f"st{s:02d}", "feed": "slow" if slow else "fast",
            "t": T0 + pd.to_timedelta(np.arange(hours), unit="h"), "pm": walk.round(1),
            "lat": 31.2 + 0.01 * s, "lon": 121.4 + 0.01 * s,
            "arrives": T0 + pd.to_timedelta(np.arange(hours), unit="h")
            + pd.to_timedelta(slow_lag if slow else np.full(hours, 5.0), unit="m")}))
    return pd.concat(frames, ignore_index=True)


def city(folder: Path, role: str) -> CityData:
    fields = {"entity": "station", "time": "t", "reading": "pm", "lat": "lat", "lon": "lon"} \
        if role == "readings" else {"id": "rid", "time": "t", "reading": "pm", "lat": "lat",
                                    "lon": "lon", "label": "station"}
    config = parse_config({
        "city": {"name": "Bench", "center": {"lat": 31.2, "lon": 121.4}},
        "cache": {"directory": str(folder / "cache")},
        "live": {"window": "2h", "history": "3d"},
        "sources": [{"name": feed, "layer": "things", "role": role, "adapter": "replay",
                     "path": "unused.csv", **fields} for feed in ("fast", "slow")]}, folder)
    data = CityData(config)
    for source in config.sources:
        data.adapter(source)
    return data


def run(role: str, raw: pd.DataFrame, folder: Path) -> dict[str, float]:
    data = city(folder, role)
    now = {"t": T0}
    data.clock.now = lambda: now["t"]  # type: ignore[method-assign]
    rules = parse_rules([{"name": "pm", "kind": "reading", "layer": "things", "role": role,
                          "column": "reading", "above": LIMIT, "max_alerts": 10_000}], [],
                        sources=data.config.sources)
    book = AlertBook(rules)
    hourly = parse_indicator({"name": "h", "layer": "things", "role": role, "kind": "mean",
                              "over": "buckets", "column": "reading", "bucket": "1h"})
    sources = {s.name: s for s in data.config.sources}
    raw = raw.assign(rid=raw["station"] + "@" + raw["t"].dt.strftime("%m%d%H"))
    empty_now = empty_mark = short_now = short_mark = steps = raised = 0
    delivered = pd.Timestamp.min.tz_localize("UTC")
    moment = T0
    while moment <= T0 + pd.Timedelta(days=DAYS):
        now["t"] = moment
        arrived = raw.loc[(raw["arrives"] > delivered) & (raw["arrives"] <= moment)]
        for feed, rows in arrived.groupby("feed"):
            batch = normalise(rows.drop(columns=["arrives", "feed"]), sources[str(feed)],
                              LAYERS["things"].roles[role], data.context, versions_supersede=True)
            batch.replace = False
            data.apply_batch(sources[str(feed)], batch)
        delivered = moment
        data.expire()
        raised += len(book.evaluate(data, moment).raised)
        if moment >= T0 + pd.Timedelta(hours=27):  # every window within the data
            steps += 1
            old = values_at(data, hourly, [moment], now=moment)[0]
            new = evaluate(data, hourly, moment, with_forecast=False)
            empty_now += int(np.isnan(old))
            empty_mark += int(not np.isfinite(new.value))
            seen = raw.loc[raw["arrives"] <= moment]
            for end, counter in ((moment, "now"), (new.time, "mark")):
                window = seen.loc[(seen["t"] > end - pd.Timedelta(hours=24)) & (seen["t"] <= end)]
                complete = int((window.groupby("t")["station"].nunique() == STATIONS).sum())
                if complete < 24:
                    if counter == "now":
                        short_now += 1
                    else:
                        short_mark += 1
        moment += pd.Timedelta(minutes=10)
    return {"steps": steps, "empty_now": empty_now / steps, "empty_mark": empty_mark / steps,
            "short_now": short_now / steps, "short_mark": short_mark / steps, "raised": raised}


def episodes(raw: pd.DataFrame) -> int:
    total = 0
    for _, group in raw.groupby("station"):
        breach = (group.sort_values("t")["pm"] > LIMIT).to_numpy()
        total += int((breach & ~np.concatenate([[False], breach[:-1]])).sum())
    return total


def main() -> None:
    raw = readings()
    with tempfile.TemporaryDirectory() as tmp:
        per_reading = run("devices", raw, Path(tmp))
        per_entity = run("readings", raw, Path(tmp))
    print(f"{STATIONS} stations, {DAYS} days hourly, {per_entity['steps']} evaluations "
          "(every 10 city minutes from hour 27)")
    print(f"hourly mean empty:           at now {per_entity['empty_now']:.1%}   "
          f"at watermark {per_entity['empty_mark']:.1%}")
    print(f"24-h mean < 24 full hours:   at now {per_entity['short_now']:.1%}   "
          f"at watermark {per_entity['short_mark']:.1%}")
    print(f"reading rule alerts:         id per reading {per_reading['raised']}   "
          f"per entity {per_entity['raised']}   episodes (pandas) {episodes(raw)}   "
          f"readings above {LIMIT:g}: {int((raw['pm'] > LIMIT).sum())}")
    met = per_entity["empty_mark"] == 0
    print(f"TARGET empty hourly means at the watermark: {per_entity['empty_mark']:.1%} vs target "
          f"0 % — {'MET' if met else 'NOT MET'}")
    met = per_entity["raised"] == episodes(raw)
    print(f"TARGET reading-rule alerts per entity: {per_entity['raised']} vs target "
          f"{episodes(raw)} episodes — {'MET' if met else 'NOT MET'}")


if __name__ == "__main__":
    main()
