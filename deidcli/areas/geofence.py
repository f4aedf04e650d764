"""The zones of ``--geofence``: RFC 7946 GeoJSON, WGS84 Polygon and MultiPolygon features, each with an optional
``action`` property (``mask`` by default, or ``keep``); and the local metres they are placed in.

A zone's holes are masked too: a hole is a place inside a private one, and hiding it costs less than a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pyproj import CRS, Transformer
from shapely.geometry import Polygon

from deidcli.areas.spec import ACTIONS, check_ring, read_json
from deidcli.errors import AreaInputError

WGS84_NAMES = {"urn:ogc:def:crs:OGC:1.3:CRS84", "urn:ogc:def:crs:OGC::CRS84", "EPSG:4326", "urn:ogc:def:crs:EPSG::4326"}


@dataclass(frozen=True)
class Zone:
    """One polygon of a feature (a MultiPolygon gives several)."""

    name: str  # the feature's "name" property, or "feature N" (with ", part K" for a MultiPolygon's parts)
    lonlat: np.ndarray  # (K, 2) exterior ring, degrees, not closed
    action: str = "mask"


def _crs_is_wgs84(doc: dict, where: str) -> None:
    """RFC 7946 has no ``crs`` member; an old-style one naming anything but WGS84 longitude/latitude is refused."""
    crs = doc.get("crs")
    if crs is None:
        return
    name = (crs.get("properties") or {}).get("name") if isinstance(crs, dict) else None
    if name not in WGS84_NAMES:
        raise AreaInputError(f"{where}: coordinates must be WGS84 longitude, latitude (RFC 7946); the file names "
                             f"crs {name!r}: reproject it (e.g. ogr2ogr -t_srs EPSG:4326)")


def _ring(coords, where: str) -> np.ndarray:
    poly = check_ring(coords, where, degrees=True)
    ring = np.asarray(poly.exterior.coords[:-1])
    lon, lat = ring[:, 0], ring[:, 1]
    if (np.abs(lon) > 180).any() or (np.abs(lat) > 90).any():
        raise AreaInputError(f"{where}: coordinates out of range for WGS84 longitude, latitude (projected metres, "
                             f"or latitude first?)")
    return ring


def parse_geofence(doc, source: str) -> list[Zone]:
    if not isinstance(doc, dict) or doc.get("type") not in ("FeatureCollection", "Feature", "Polygon", "MultiPolygon"):
        raise AreaInputError(f"{source}: not GeoJSON (a FeatureCollection, Feature, Polygon or MultiPolygon)")
    _crs_is_wgs84(doc, source)
    if doc["type"] == "FeatureCollection":
        features = doc.get("features")
        if not isinstance(features, list):
            raise AreaInputError(f"{source}: a FeatureCollection needs a list of features")
    elif doc["type"] == "Feature":
        features = [doc]
    else:
        features = [{"type": "Feature", "geometry": doc, "properties": {}}]
    zones: list[Zone] = []
    for i, feature in enumerate(features, 1):
        where = f"{source}: feature {i}"
        if not isinstance(feature, dict) or not isinstance(feature.get("geometry"), dict):
            raise AreaInputError(f"{where}: a feature needs a geometry")
        props = feature.get("properties") or {}
        name = str(props.get("name") or f"feature {i}")
        where = f"{source}: feature {i} ({name})" if props.get("name") else where
        action = props.get("action", "mask")
        if action not in ACTIONS:
            raise AreaInputError(f"{where}: action must be {' or '.join(ACTIONS)}, not {action!r}")
        geom = feature["geometry"]
        kind, coords = geom.get("type"), geom.get("coordinates")
        if kind == "Polygon":
            polygons = [coords]
        elif kind == "MultiPolygon":
            polygons = coords
        else:
            raise AreaInputError(f"{where}: geometry {kind!r} is not a Polygon or MultiPolygon (a zone encloses ground)")
        if not isinstance(polygons, list) or not polygons:
            raise AreaInputError(f"{where}: no coordinates")
        for k, rings in enumerate(polygons, 1):
            part = f"{where}, polygon {k}" if kind == "MultiPolygon" else where
            if not isinstance(rings, list) or not rings:
                raise AreaInputError(f"{part}: a polygon is a list of linear rings")
            zones.append(Zone(f"{name}, part {k}" if kind == "MultiPolygon" else name, _ring(rings[0], part), action))
    if not zones:
        raise AreaInputError(f"{source}: no zones in the file")
    return zones


def load_geofence(path: Path) -> list[Zone]:
    return parse_geofence(read_json(path, "GeoJSON"), str(path))


class LocalMetres:
    """East and north metres about an origin on the WGS84 ellipsoid (an azimuthal equidistant projection there:
    distances and bearings from the origin are exact, and within the few kilometres a flight covers the scale
    error stays under a millimetre a metre)."""

    def __init__(self, lat0: float, lon0: float) -> None:
        self.lat0, self.lon0 = float(lat0), float(lon0)
        local = CRS.from_proj4(f"+proj=aeqd +lat_0={self.lat0} +lon_0={self.lon0} +datum=WGS84 +units=m")
        self._fwd = Transformer.from_crs(CRS.from_epsg(4326), local, always_xy=True)

    def __call__(self, lon, lat) -> np.ndarray:
        """``(N, 2)`` east, north in metres of longitudes and latitudes in degrees."""
        e, n = self._fwd.transform(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
        return np.stack([np.atleast_1d(e), np.atleast_1d(n)], axis=1)

    def polygon(self, zone: Zone) -> Polygon:
        return Polygon(self(zone.lonlat[:, 0], zone.lonlat[:, 1]))
