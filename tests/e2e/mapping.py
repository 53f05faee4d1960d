"""Reaching into the drawn map from a browser test: the graph, and screen points on it."""

from __future__ import annotations

from typing import Any

#: The Plotly graph div of the map.
GD = "document.querySelector('#map .js-plotly-plot')"

_SCREEN_POINT = f"""([lon, lat]) => {{
    const map = {GD}._fullLayout.map._subplot.map;
    const box = map.getContainer().getBoundingClientRect();
    const point = map.project([lon, lat]);
    return [box.left + point.x, box.top + point.y];
}}"""


def screen_point(page: Any, lon: float, lat: float) -> tuple[float, float]:
    """The page pixel where MapLibre draws ``lon``/``lat`` now (for a real mouse)."""
    x, y = page.evaluate(_SCREEN_POINT, [lon, lat])
    return float(x), float(y)
