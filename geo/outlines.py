"""Polygon outlines as lat/lon line lists, the shape a map line trace takes."""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from geo.hexes import gc_paused


def outline_lines(geometries: Any) -> tuple[list[float | None], list[float | None]]:
    """Exterior and interior rings of polygons as lat/lon lists with None separators."""
    lats: list[float | None] = []
    lons: list[float | None] = []
    with gc_paused():
        for geom in geometries:
            if geom is None or geom.is_empty:
                continue
            for ring in (r for part in shapely.get_parts(geom) for r in shapely.get_rings(part)):
                coords = np.round(shapely.get_coordinates(ring), 5)
                lons.extend(coords[:, 0].tolist())
                lats.extend(coords[:, 1].tolist())
                lons.append(None)
                lats.append(None)
    return lats, lons
