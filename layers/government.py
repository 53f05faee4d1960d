"""政 Government: service requests from the public, incidents, and government service points.

Requests (311 / 12345 hotline cases) feed the event queue; incidents (crimes, crashes,
fires: what happened, recorded by an agency) are counted and mapped but are not cases
for the queue; service points are where the public is served.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from geo.hexes import haversine_km
from layers.base import Field, Layer, Metric, PlaceRows, Role, Selector

#: Status values (lower case) that mean a request is finished, whatever the city calls them.
CLOSED_STATUSES = frozenset({"closed", "resolved", "completed", "cancelled", "canceled", "done"})


def derive_request_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``is_open`` and ``hours_to_close``, the columns request metrics rest on.

    A request is closed when it has a closing time or its status says so.
    """
    closed_time = frame["closed_time"] if "closed_time" in frame else pd.Series(
        pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]")
    status = frame["status"] if "status" in frame else pd.Series("", index=frame.index)
    closed = closed_time.notna() | status.fillna("").str.strip().str.lower().isin(CLOSED_STATUSES)
    hours = (closed_time - frame["time"]).dt.total_seconds() / 3600.0
    return frame.assign(
        is_open=~closed,
        state=closed.map({True: "closed", False: "open"}),
        hours_to_close=hours.where(hours >= 0),
    )


REQUESTS = Role(
    name="requests",
    geometry="point",
    title_zh="诉求工单",
    title_en="Service requests",
    fields=(
        Field("category", title_zh="诉求类型", title_en="Request type", breakdown=True),
        Field("agency", title_zh="承办部门", title_en="Agency", breakdown=True),
        Field("status", title_zh="状态", title_en="Status", breakdown=True),
        Field("closed_time", "time", "办结时间", "Closed time"),
        Field("descriptor", title_zh="描述", title_en="Descriptor"),
        Field("channel", title_zh="渠道", title_en="Channel", breakdown=True),
    ),
    derive=derive_request_columns,
    derived_breakdowns=(Field("state", title_zh="办理状态", title_en="Open / closed",
                              breakdown=True),),
    feeds_events=True,
)
INCIDENTS = Role(
    name="incidents",
    geometry="point",
    title_zh="事件记录",
    title_en="Incidents",
    fields=(
        Field("category", title_zh="类型", title_en="Type", breakdown=True),
        Field("severity", title_zh="严重程度", title_en="Severity", breakdown=True),
        Field("agency", title_zh="报告部门", title_en="Reporting agency", breakdown=True),
        Field("descriptor", title_zh="描述", title_en="Descriptor"),
        Field("victims", "float", "伤亡人数", "People hurt"),
    ),
    # Recorded incidents are facts to count and map, not cases for someone to handle.
    feeds_events=False,
)
SERVICE_POINTS = Role(
    name="service_points",
    geometry="point",
    title_zh="政务服务点",
    title_en="Government service points",
    fields=(Field("category", title_zh="类型", title_en="Type", breakdown=True),),
)

class Government(Layer):
    """Government also lists, in a place's profile, the service points nearest to it."""

    def profile_extras(self, data: PlaceRows, select: Selector, lat: float, lon: float
                       ) -> dict[str, Any]:
        return {"nearest_service_points": nearest_service_points(data, lat, lon,
                                                                 layer_id=self.id)}


def nearest_service_points(data: PlaceRows, lat: float, lon: float, n: int = 5,
                           layer_id: str = "government") -> list[dict[str, Any]]:
    """The ``n`` government service points nearest to a place, with distances in km."""
    points = data.frame(layer_id, SERVICE_POINTS.name)
    if points.empty:
        return []
    distance = haversine_km(lat, lon, points["lat"].to_numpy(), points["lon"].to_numpy())
    order = np.argsort(distance)[:n]
    return [{
        "id": str(points["id"].iloc[i]),
        "name": None if pd.isna(points["name"].iloc[i]) else str(points["name"].iloc[i]),
        "category": None if pd.isna(points["category"].iloc[i]) else str(points["category"].iloc[i]),
        "lat": round(float(points["lat"].iloc[i]), 6), "lon": round(float(points["lon"].iloc[i]), 6),
        "distance_km": round(float(distance[i]), 3),
    } for i in order]


LAYER = Government(
    id="government",
    title_zh="政务",
    title_en="Government",
    symbol="政",
    roles={"requests": REQUESTS, "incidents": INCIDENTS, "service_points": SERVICE_POINTS},
    default_role="requests",
    base_metrics=(
        Metric("requests", "诉求工单", "Service requests", role="requests", unit_zh="件",
               unit_en="requests"),
        Metric("open", "未办结", "Open requests", role="requests", where=(("is_open", (True,)),),
               unit_zh="件", unit_en="requests"),
        Metric("hours_to_close", "办结时长中位数", "Median time to close", role="requests",
               agg="median", column="hours_to_close", unit_zh="小时", unit_en="hours", decimals=1),
        Metric("incidents", "事件记录", "Incidents", role="incidents", unit_zh="起",
               unit_en="incidents"),
        Metric("victims", "伤亡人数", "People hurt", role="incidents", agg="sum",
               column="victims", unit_zh="人", unit_en="people"),
        Metric("service_points", "服务点", "Service points", role="service_points", unit_zh="个",
               unit_en="points"),
    ),
    colorscale=("#230b14", "#4d1228", "#86193c", "#c2334a", "#ef6b4f", "#ffd08a"),
    overlay="points",
    overlay_role="service_points",
    point_roles=("requests", "incidents", "service_points"),
    point_colour="#ff6b8b",
)
