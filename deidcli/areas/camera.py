"""The camera model that places ground zones in a frame (docs/how-it-works.md, Places: the camera model).

A pinhole with the principal point at the frame's centre, square pixels, no lens distortion. Pixel coordinates are
continuous: pixel (col i, row j) covers [i, i+1) x [j, j+1), so the centre is (W/2, H/2). The world is east, north,
up in metres; the ground is the plane up = 0 and the camera stands ``height`` metres above it. Yaw is clockwise
from true north, pitch 0 at the horizon and -90 straight down (the top of the frame then faces the yaw), roll 0
level, positive turning the camera clockwise about its view as seen from behind it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from shapely.geometry import MultiPolygon, Polygon, box

NEAR_M = 0.5  # ground closer than this to the camera's image plane is cut off (it would project to infinity)


def hfov_from_focal(focal_mm: float) -> float:
    """Horizontal field of view in degrees of a 35 mm-equivalent focal length: 2 atan(36 / 2f)."""
    return math.degrees(2 * math.atan(36.0 / (2.0 * focal_mm)))


@dataclass(frozen=True)
class CameraPose:
    east: float
    north: float
    height: float  # metres above the ground plane
    yaw: float
    pitch: float
    roll: float
    hfov: float  # degrees

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unit vectors (east, north, up) of the image's right, down, and the view (forward)."""
        y, p, r = (math.radians(v) for v in (self.yaw, self.pitch, self.roll))
        forward = np.array([math.sin(y) * math.cos(p), math.cos(y) * math.cos(p), math.sin(p)])
        right = np.array([math.cos(y), -math.sin(y), 0.0])
        up = np.cross(right, forward)
        right, up = math.cos(r) * right - math.sin(r) * up, math.sin(r) * right + math.cos(r) * up
        return right, -up, forward

    def ground_to_image(self, width: int, height: int) -> np.ndarray:
        """3x3 homography from ground (east, north, 1) to pixels (x, y, 1)."""
        right, down, forward = self.axes()
        rot = np.stack([right, down, forward])  # world -> camera
        f = (width / 2) / math.tan(math.radians(self.hfov) / 2)
        k = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])
        centre = np.array([self.east, self.north, self.height])
        # a ground point (e, n, 0) in camera axes: rot @ (P - C) = rot[:, :2] @ (e, n) - rot @ C
        return k @ np.column_stack([rot[:, 0], rot[:, 1], -rot @ centre])

    def in_front(self, reach: float = 1e5) -> Polygon:
        """The ground at least NEAR_M in front of the image plane, within ``reach`` metres: the half-plane of depth
        >= NEAR_M, as a (large) polygon to clip zones with."""
        _, _, forward = self.axes()
        g = forward[:2]
        c = np.array([self.east, self.north])
        # depth(e, n) = g . ((e, n) - c) - forward_up * height; solve depth = NEAR_M along g
        depth_at_c = -forward[2] * self.height
        norm = float(np.hypot(*g))
        if norm < 1e-9:  # straight down: every ground point is height metres deep
            return box(c[0] - reach, c[1] - reach, c[0] + reach, c[1] + reach) if depth_at_c >= NEAR_M else Polygon()
        u = g / norm
        v = np.array([-u[1], u[0]])
        s0 = (NEAR_M - depth_at_c) / norm  # distance along u from c where depth reaches NEAR_M
        base = c + u * s0
        pts = [base - v * reach, base + v * reach, base + v * reach + u * reach, base - v * reach + u * reach]
        return Polygon(pts)


def _parts(geom) -> list[Polygon]:
    if geom.is_empty:
        return []
    if isinstance(geom, Polygon):
        return [geom]
    if isinstance(geom, MultiPolygon):
        return list(geom.geoms)
    return [g for g in getattr(geom, "geoms", []) if isinstance(g, Polygon) and not g.is_empty]


def project_ground(zone: Polygon, pose: CameraPose, width: int, height: int) -> list[np.ndarray]:
    """The parts of a ground polygon (east, north metres) seen in front of the camera, as pixel polygons ``(K, 2)``
    clipped to a window three frames wide around the frame (what lies beyond is off screen anyway, and a point near
    the horizon would project thousands of frames away)."""
    h = pose.ground_to_image(width, height)
    window = box(-width, -height, 2 * width, 2 * height)
    out = []
    for part in _parts(zone.intersection(pose.in_front())):
        ring = np.asarray(part.exterior.coords[:-1])
        pts = np.column_stack([ring, np.ones(len(ring))]) @ h.T
        img = Polygon(pts[:, :2] / pts[:, 2:3])
        if not img.is_valid:
            img = img.buffer(0)
        out += [np.asarray(p.exterior.coords[:-1]) for p in _parts(img.intersection(window))]
    return out
