"""What the map shows at a zoom: the H3 resolution, the whole city or the viewport, points.

One decision, taken here for the figure (:func:`render.figures.plan_hexes`), for the
viewport tracking and the point picking of ``callbacks.map``, and for the benchmarks,
so the page never asks for a view the figure would draw differently.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from config.city import MapSettings


@dataclass(frozen=True)
class ZoomScale:
    """The map's scale at one zoom (see :func:`zoom_scale`)."""

    #: H3 resolution of the hexagons.
    res: int
    #: The finest resolution drawn for the whole city; finer ones draw only the viewport.
    whole_city_res: int
    #: Close enough that layers with point roles draw single points instead of hexagons.
    points: bool

    @property
    def whole_city(self) -> bool:
        """Coarse enough to draw every cell of the city (no viewport needed)."""
        return self.res <= self.whole_city_res

    @property
    def needs_viewport(self) -> bool:
        """The figure depends on the viewport (fine hexagons, or points)."""
        return not self.whole_city or self.points

    def coarser(self) -> ZoomScale:
        """One resolution down (when the viewport holds more cells than a browser may get)."""
        return replace(self, res=self.res - 1)


def zoom_scale(zoom: float, settings: MapSettings) -> ZoomScale:
    """The map's scale at ``zoom``.

    The resolution is the last ``res_by_zoom`` step whose zoom is reached; the first
    two steps are city-wide (the whole city is drawn up to the second step's
    resolution); from ``points_zoom`` on, point layers draw single points.

    >>> zoom_scale(12.0, MapSettings(res_by_zoom=((0.0, 7), (9.0, 8), (11.5, 9))))
    ZoomScale(res=9, whole_city_res=8, points=False)
    """
    steps = settings.res_by_zoom
    res = steps[0][1]
    for min_zoom, step_res in steps:
        if zoom >= min_zoom:
            res = step_res
    return ZoomScale(res=res, whole_city_res=steps[min(1, len(steps) - 1)][1],
                     points=zoom >= settings.points_zoom)


__all__ = ["ZoomScale", "zoom_scale"]
