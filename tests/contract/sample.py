"""One small sample every adapter contract case serves through its own system.

Twelve real NYC 311 requests (from the demo data) plus three rows that must be
rejected, one per reason. Each case loads these rows into its source (a file, a
PostGIS table, MQTT messages, an HTTP API …) and the contract test checks that the
adapter returns exactly the good rows, normalised, and counts the bad ones.
"""

from __future__ import annotations

from typing import Any

GOOD_ROWS: list[dict[str, Any]] = [
    {"id": "54045280", "time": "2022-05-01T00:02:10", "lat": 40.649929, "lon": -74.003222,
     "category": "Illegal Parking", "agency": "NYPD", "status": "Closed",
     "closed_time": "2022-05-01T00:34:39"},
    {"id": "54045289", "time": "2022-05-01T00:07:34", "lat": 40.692115, "lon": -73.823326,
     "category": "Illegal Parking", "agency": "NYPD", "status": "Closed",
     "closed_time": "2022-05-01T00:47:17"},
    {"id": "54049402", "time": "2022-05-01T00:00:03", "lat": 40.83065331987539,
     "lon": -73.92308231033165, "category": "Noise - Residential", "agency": "NYPD",
     "status": "In Progress", "closed_time": None},
    {"id": "54046813", "time": "2022-05-01T00:00:09", "lat": 40.81237834836466,
     "lon": -73.95240115039357, "category": "Noise - Street/Sidewalk", "agency": "NYPD",
     "status": "Closed", "closed_time": "2022-05-01T00:07:46"},
    {"id": "c-0005", "time": "2022-05-01T00:10:00", "lat": 40.7580, "lon": -73.9855,
     "category": "Blocked Driveway", "agency": "NYPD", "status": "Open", "closed_time": None},
    {"id": "c-0006", "time": "2022-05-01T00:11:00", "lat": 40.7527, "lon": -73.9772,
     "category": "Street Condition", "agency": "DOT", "status": "Open", "closed_time": None},
    {"id": "c-0007", "time": "2022-05-01T00:12:00", "lat": 40.7061, "lon": -74.0087,
     "category": "Noise - Commercial", "agency": "NYPD", "status": "Closed",
     "closed_time": "2022-05-01T01:12:00"},
    {"id": "c-0008", "time": "2022-05-01T00:13:00", "lat": 40.6782, "lon": -73.9442,
     "category": "HEAT/HOT WATER", "agency": "HPD", "status": "Open", "closed_time": None},
    {"id": "c-0009", "time": "2022-05-01T00:14:00", "lat": 40.7282, "lon": -73.7949,
     "category": "Illegal Parking", "agency": "NYPD", "status": "Closed",
     "closed_time": "2022-05-01T02:14:00"},
    {"id": "c-0010", "time": "2022-05-01T00:15:00", "lat": 40.5795, "lon": -74.1502,
     "category": "Dead Animal", "agency": "DSNY", "status": "Open", "closed_time": None},
    {"id": "c-0011", "time": "2022-05-01T00:16:00", "lat": 40.8448, "lon": -73.8648,
     "category": "Noise - Residential", "agency": "NYPD", "status": "Closed",
     "closed_time": "2022-05-01T00:46:00"},
    {"id": "c-0012", "time": "2022-05-01T00:17:00", "lat": 40.7411, "lon": -73.9897,
     "category": "Street Light Condition", "agency": "DOT", "status": "Open",
     "closed_time": None},
]

BAD_ROWS: list[dict[str, Any]] = [
    {"id": "bad-1", "time": "2022-05-01T00:20:00", "lat": None, "lon": None,
     "category": "Illegal Parking", "agency": "NYPD", "status": "Open", "closed_time": None},
    {"id": "bad-2", "time": "2022-05-01T00:21:00", "lat": 140.5, "lon": -73.9,
     "category": "Illegal Parking", "agency": "NYPD", "status": "Open", "closed_time": None},
    {"id": "bad-3", "time": "not a time", "lat": 40.7, "lon": -73.9,
     "category": "Illegal Parking", "agency": "NYPD", "status": "Open", "closed_time": None},
]

EXPECTED_REJECTIONS = {"missing coordinates": 1, "coordinates out of range": 1,
                       "unparseable time": 1}

#: The field mapping every case's source uses (normalised name → source column).
FIELDS = {"id": "id", "time": "time", "lat": "lat", "lon": "lon", "category": "category",
          "agency": "agency", "status": "status", "closed_time": "closed_time"}


def all_rows() -> list[dict[str, Any]]:
    return GOOD_ROWS + BAD_ROWS


def source_table(adapter: str, name: str = "contract", **options: Any) -> dict[str, Any]:
    """A ``[[sources]]`` table for the sample on the government layer's requests role."""
    return {"name": name, "layer": "government", "role": "requests", "adapter": adapter,
            **FIELDS, **options}
