"""Observations joined to their entities: a station's readings take the station's place.

An entity (a device, a station) is a row of an ordinary point source: id,
location, attributes. Observations of it (a role with an ``entity`` field, such as
``things/readings``) carry the entity's id, a time and values, and often no
coordinates. Their source names the entity source in config
(``entity_source = "stations"``); :func:`locate` fills what an observation lacks
from its entity when a batch arrives, so that every later step (H3 cells, the map,
indicators, rules) sees located rows.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

#: Columns an observation takes from its entity when it has none of its own.
_LOCATION = ("lat", "lon", "cell")


def locate(observations: pd.DataFrame, entities: pd.DataFrame) -> tuple[pd.DataFrame, Counter[str]]:
    """Observations with their entity's location, name and missing attributes.

    Rows without coordinates (``cell == 0`` from :func:`data.base.normalise`) take
    their entity's ``lat``, ``lon``, ``cell`` and exact cells at the other served
    resolutions (``cell_<res>``); rows with coordinates keep them (a
    mobile sensor is where it says). Every row takes the entity's ``name`` when it
    has none, and any column both frames share (``category``, ``status`` …) where
    its own text value is missing. Unlocated rows whose entity is unknown are dropped
    and counted as ``unknown entity``.

    >>> obs = pd.DataFrame({"entity": ["s1"], "lat": [np.nan], "lon": [np.nan], "cell": [0]})
    >>> ent = pd.DataFrame({"id": ["s1"], "lat": [31.2], "lon": [121.5], "cell": [1]})
    >>> locate(obs, ent)[0][["lat", "lon", "cell"]].values.tolist()
    [[31.2, 121.5, 1.0]]
    """
    rejected: Counter[str] = Counter()
    if observations.empty:
        return observations, rejected
    unplaced = observations["cell"].to_numpy() == 0
    if entities.empty or "id" not in entities:
        if unplaced.any():
            rejected["unknown entity"] += int(unplaced.sum())
        return observations.loc[~unplaced].reset_index(drop=True), rejected
    # The newest version of each entity (a device that moved is where it is now).
    by_id = entities.drop_duplicates("id", keep="last").set_index("id")
    keys = observations["entity"].astype("string")
    found = keys.isin(by_id.index).fillna(False).to_numpy(dtype=bool)
    unknown = unplaced & ~found
    if unknown.any():
        rejected["unknown entity"] += int(unknown.sum())
    out = observations.loc[~unknown].copy()
    keys, unplaced = keys[~unknown], unplaced[~unknown]
    matched = by_id.reindex(keys.to_numpy())
    exact_cells = [c for c in out.columns if c.startswith("cell_")]
    if unplaced.any():
        # A served resolution the entities were not indexed at: computed from lat/lon.
        out = out.drop(columns=[c for c in exact_cells if c not in matched.columns])
    location = (*_LOCATION, *(c for c in exact_cells if c in out.columns))
    for column in location:
        values = out[column].to_numpy().copy()
        values[unplaced] = matched[column].to_numpy()[unplaced]
        out[column] = values.astype(np.int64 if column.startswith("cell") else float)
    # Text attributes only: a reading's missing value is missing, not the device's last one.
    shared = [c for c in out.columns if c in matched.columns
              and c not in location + ("id", "time", "source", "entity")
              and not pd.api.types.is_numeric_dtype(out[c])
              and not pd.api.types.is_datetime64_any_dtype(out[c])]
    for column in shared:
        fill = pd.Series(matched[column].to_numpy(), index=out.index)
        out[column] = out[column].where(out[column].notna(), fill)
    return out.reset_index(drop=True), rejected


__all__ = ["locate"]
