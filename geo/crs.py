"""Coordinates into WGS84: any EPSG CRS through pyproj, and China's GCJ-02 / BD-09 datums.

Chinese map providers (Amap/Gaode, Tencent: GCJ-02; Baidu: BD-09) publish
coordinates shifted by an obfuscation formula, not a projection, so pyproj has no
code for them. The forward GCJ-02 shift is the published formula; its inverse has
no closed form and is solved here by fixed-point iteration to ~1e-9 degrees.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

CHINA_DATUMS = ("GCJ-02", "BD-09")

_A = 6378245.0  # Krasovsky 1940 semi-major axis used by the GCJ-02 formula
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0

Floats = NDArray[np.float64]


class UnknownCRSError(ValueError):
    """A CRS neither pyproj nor the China datums know; the message says what is accepted.

    Geometry sits below config, so this is a plain ``ValueError``; config turns it
    into a ``ConfigError`` that names the key.
    """


def check_crs(crs: str) -> None:
    """Refuse a CRS pyproj does not know, naming what is accepted."""
    if crs.upper() in CHINA_DATUMS:
        return
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        CRS.from_user_input(crs)
    except CRSError as exc:
        raise UnknownCRSError(
            f"unknown CRS {crs!r}; use an EPSG code such as 'EPSG:2263', "
            f"or one of {', '.join(CHINA_DATUMS)}"
        ) from exc


def _outside_china(lon: Floats, lat: Floats) -> NDArray[np.bool_]:
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _shift(lon: Floats, lat: Floats) -> tuple[Floats, Floats]:
    """The GCJ-02 offset (degrees) at WGS84 ``lon``/``lat``."""
    x = lon - 105.0
    y = lat - 35.0
    common = (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    dlat = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
            + common
            + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
            + (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0)
    dlon = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
            + common
            + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
            + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0)
    rad_lat = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = dlat * 180.0 / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = dlon * 180.0 / (_A / sqrt_magic * np.cos(rad_lat) * np.pi)
    outside = _outside_china(lon, lat)
    return np.where(outside, 0.0, dlon), np.where(outside, 0.0, dlat)


def wgs84_to_gcj02(lon: Floats, lat: Floats) -> tuple[Floats, Floats]:
    dlon, dlat = _shift(lon, lat)
    return lon + dlon, lat + dlat


def gcj02_to_wgs84(lon: Floats, lat: Floats, iterations: int = 10) -> tuple[Floats, Floats]:
    """Invert the GCJ-02 shift: find WGS84 points whose shifted position is the input."""
    wgs_lon, wgs_lat = lon.copy(), lat.copy()
    for _ in range(iterations):
        fwd_lon, fwd_lat = wgs84_to_gcj02(wgs_lon, wgs_lat)
        wgs_lon = wgs_lon - (fwd_lon - lon)
        wgs_lat = wgs_lat - (fwd_lat - lat)
    return wgs_lon, wgs_lat


def bd09_to_gcj02(lon: Floats, lat: Floats) -> tuple[Floats, Floats]:
    x = lon - 0.0065
    y = lat - 0.006
    z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta), z * np.sin(theta)


def bd09_to_gcj02_exact(lon: Floats, lat: Floats, iterations: int = 5) -> tuple[Floats, Floats]:
    """Invert :func:`gcj02_to_bd09` to ~1e-9°: the published inverse is off by up to ~0.1 m."""
    gcj_lon, gcj_lat = bd09_to_gcj02(lon, lat)
    for _ in range(iterations):
        fwd_lon, fwd_lat = gcj02_to_bd09(gcj_lon, gcj_lat)
        gcj_lon, gcj_lat = gcj_lon - (fwd_lon - lon), gcj_lat - (fwd_lat - lat)
    return gcj_lon, gcj_lat


def gcj02_to_bd09(lon: Floats, lat: Floats) -> tuple[Floats, Floats]:
    z = np.sqrt(lon * lon + lat * lat) + 0.00002 * np.sin(lat * _X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def to_wgs84(lon: Floats, lat: Floats, crs: str) -> tuple[Floats, Floats]:
    """Convert coordinate arrays in ``crs`` to WGS84 longitude/latitude.

    NaN stays NaN; the caller rejects those rows with a reason.
    """
    name = crs.upper()
    if name in ("EPSG:4326", "WGS84", "OGC:CRS84"):
        return lon, lat
    if name == "GCJ-02":
        return gcj02_to_wgs84(lon, lat)
    if name == "BD-09":
        return gcj02_to_wgs84(*bd09_to_gcj02_exact(lon, lat))
    from pyproj import Transformer

    transformer = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    out_lon, out_lat = transformer.transform(lon, lat)
    return np.asarray(out_lon, dtype=float), np.asarray(out_lat, dtype=float)
