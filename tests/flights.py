"""Synthetic drone flights with exact ground truth, for testing geofences and ground-tracked areas.

A reference implementation of the camera model docs/how-it-works.md states, written independently of the product's
(scipy's rotations, pyproj.Geod's geodesics, no map projection): a textured flat ground (z = 0, east-north-up
metres around the flight's origin) seen by a pinhole camera ``alt_m`` above it, rendered to an H.264 mp4 with a
DJI-style ``.SRT`` beside it, and for every frame the true pixels of any polygon on the ground.

Pixel coordinates are continuous (pixel (i, j) covers [i, i+1) x [j, j+1), the centre of a W x H frame is
(W/2, H/2)); OpenCV's warps index pixel centres, so every matrix handed to OpenCV is shifted by half a pixel.
Every pose is quantised to what the SRT can say (0.1 degree, 1 mm, 1e-7 degree of lat/lon, 0.01 mm of focal
length), so the telemetry describes the rendering exactly.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Iterator, NamedTuple

import cv2
import numpy as np
from pyproj import Geod
from scipy.spatial.transform import Rotation

GEOD = Geod(ellps="WGS84")
SDD = ("persons", "stanford_drone_sdd_quad_video2_reference.jpg")
MUNICH, STANFORD, SYDNEY = (48.137154, 11.576124), (37.427475, -122.169719), (-33.856784, 151.215297)
HOME_ALT_M = 520.0  # abs_alt = rel_alt + this
START = datetime(2024, 5, 1, 10, 0, 0)
# Camera axes (x right, y down, z forward) in the body frame (east, north, up at yaw = pitch = roll = 0).
_CAM_IN_BODY = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


# ---------------------------------------------------------------------------------------------- ground
def ground_texture(gsd_m: float = 0.05, reps: int = 4) -> tuple[np.ndarray, float]:
    """The Stanford Drone Dataset's aerial frame of the Main Quad (RGB), mirrored by ``cv2.BORDER_REFLECT`` into a
    square ``reps`` image widths across (about 400 m, +-200 m), its centre on the world origin, north up; returns
    it and its metres per pixel. 0.05 m/px is what the scene says: pedestrians are 8-10 px across (0.4-0.5 m), the arcade's arches
    ~80 px (4 m). Skips the calling test when ../shared is absent."""
    from conftest import shared

    img = cv2.cvtColor(cv2.imread(str(shared(*SDD)), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    h, w = img.shape[:2]
    side = reps * max(h, w)
    px, py = (side - w) // 2, (side - h) // 2
    return cv2.copyMakeBorder(img, py, py, px, px, cv2.BORDER_REFLECT), gsd_m


def _texture_to_ground(texture: np.ndarray, gsd: float) -> np.ndarray:
    """Continuous texture pixel (u, v, 1) -> ground (east, north, 1): centre on the origin, rows go south."""
    h, w = texture.shape[:2]
    return np.array([[gsd, 0, -gsd * w / 2], [0, -gsd, gsd * h / 2], [0, 0, 1]])


# ---------------------------------------------------------------------------------------------- flights
@dataclass(frozen=True)
class Pose:
    east_m: float
    north_m: float
    alt_m: float  # above the ground plane (take-off height)
    yaw_deg: float  # clockwise from true north
    pitch_deg: float  # 0 horizon, -90 straight down
    roll_deg: float = 0.0  # positive: camera clockwise seen from behind
    focal_len_mm: float = 24.0  # 35 mm equivalent


@dataclass(frozen=True)
class Flight:
    name: str
    poses: tuple[Pose, ...]
    fps: float
    width: int = 640
    height: int = 360
    lat0: float = MUNICH[0]
    lon0: float = MUNICH[1]

    def __len__(self) -> int:
        return len(self.poses)

    def lat_lon(self, i: int) -> tuple[float, float]:
        p = self.poses[i]
        return m_to_latlon(self.lat0, self.lon0, np.array([[p.east_m, p.north_m]]))[0]

    def head(self, n: int) -> Flight:
        """The first n frames (short flights for fast tests)."""
        return replace(self, poses=self.poses[:n])


def hfov_deg(pose: Pose) -> float:
    return math.degrees(2 * math.atan(36 / (2 * pose.focal_len_mm)))


def m_to_latlon(lat0: float, lon0: float, en: np.ndarray) -> np.ndarray:
    """(N, 2) east, north metres -> (N, 2) lat, lon: the geodesic from the origin of that length and azimuth."""
    en = np.asarray(en, float).reshape(-1, 2)
    az, dist = np.degrees(np.arctan2(en[:, 0], en[:, 1])), np.hypot(en[:, 0], en[:, 1])
    lon, lat, _ = GEOD.fwd(np.full(len(en), lon0), np.full(len(en), lat0), az, dist)
    return np.column_stack([lat, lon])


def latlon_to_m(lat0: float, lon0: float, latlon: np.ndarray) -> np.ndarray:
    """(N, 2) lat, lon -> (N, 2) east, north metres (inverse of :func:`m_to_latlon`)."""
    ll = np.asarray(latlon, float).reshape(-1, 2)
    az, _, dist = GEOD.inv(np.full(len(ll), lon0), np.full(len(ll), lat0), ll[:, 1], ll[:, 0])
    az = np.radians(az)
    return np.column_stack([dist * np.sin(az), dist * np.cos(az)])


def _aim(target: tuple[float, float], yaw: float, alt: float, pitch: float, along: float = 0.0, across: float = 0.0,
         roll: float = 0.0, focal: float = 24.0) -> Pose:
    """The pose whose centre ray meets the ground at `target`, then moved `along` / `across` (to the right of) its
    heading."""
    back = alt / math.tan(math.radians(-pitch))  # ~0 at -90
    s, c = math.sin(math.radians(yaw)), math.cos(math.radians(yaw))
    east, north = target[0] + (along - back) * s + across * c, target[1] + (along - back) * c - across * s
    return Pose(east, north, alt, yaw, pitch, roll, focal)


def _A(t: float) -> float:
    return 2 * t - 1  # [0, 1] -> [-1, 1]


# name: (frames, fps, origin, pose at t in [0, 1])
_FLIGHTS = {
    # straight down at 60 m, drifting 12 m forward while yawing 20 -> 35 degrees
    "nadir": (60, 30, MUNICH, lambda t: _aim((3, -2), 20 + 15 * t, 60, -90, along=6 * _A(t))),
    # -55 at 60 m looking north-north-east, flying 24 m sideways past the garden
    "oblique": (60, 30, MUNICH, lambda t: _aim((0, 0), 10, 60, -55, across=12 * _A(t))),
    # -60 at 50 m, orbiting the garden through 105 degrees of yaw (-20 -> 85)
    "turning": (72, 25, MUNICH, lambda t: _aim((0, 0), -20 + 105 * t, 50, -60)),
    # straight down, climbing 40 -> 90 m while zooming 24 -> 48 mm, yawing 0 -> 10
    "climbing": (60, 30, MUNICH, lambda t: Pose(2, -3, 40 + 50 * t, 10 * t, -90, 0, 24 + 24 * t)),
    # straight down at 30 m flying 52 m north: the garden enters at the top, crosses and leaves at the bottom
    "enter_leave": (72, 25, MUNICH, lambda t: Pose(0.5, -25 + 52 * t, 30, 0, -90)),
    # held out: -45 at 45 m looking south-south-west (yaw 200 -> 215), sideways 12 m; west longitudes
    "held_oblique45": (60, 25, STANFORD, lambda t: _aim((2, 0), 200 + 15 * t, 45, -45, across=6 * _A(t))),
    # held out: -70 at 40 m, 28 mm, yaw 120 -> 140, rolling +-4 degrees, 8 m forward; southern latitudes
    "held_low_roll": (54, 30, SYDNEY, lambda t: _aim((0, 0), 120 + 20 * t, 40, -70, along=4 * _A(t),
                                                     roll=4 * math.sin(2 * math.pi * t), focal=28)),
    # held out: -88 at 100 m, 40 mm, 29.97 fps, yaw 170 -> 200 (across +-180 in the SRT), drifting south-east
    "held_high_nadir": (66, 30000 / 1001, STANFORD, lambda t: Pose(5 * _A(t), -4 * _A(t), 100, 170 + 30 * t, -88,
                                                                  0, 40)),
    # held out, the acceptance angles: straight down at 75 m, yaw -60 -> -95, 18 m diagonal drift, 25 fps
    "held_nadir": (64, 25, SYDNEY, lambda t: _aim((-3, 4), -60 - 35 * t, 75, -90, along=9 * _A(t), across=3 * t)),
    # held out: -55 at 35 m, 26 mm, looking west (yaw 265 -> 250), closing in 10 m on the garden
    "held_oblique55": (60, 30, STANFORD, lambda t: _aim((1, 1), 265 - 15 * t, 35, -55, along=-5 * _A(t),
                                                         focal=26)),
}
TUNING = ("nadir", "oblique", "turning", "climbing", "enter_leave")
HELD_OUT = ("held_oblique45", "held_low_roll", "held_high_nadir", "held_nadir", "held_oblique55")


def flight(name: str, width: int = 640, height: int = 360) -> Flight:
    """A named flight (see ``TUNING`` and ``HELD_OUT``) at any frame size (the field of view is horizontal), its
    poses quantised to the SRT's precision."""
    n, fps, origin, pose_at = _FLIGHTS[name]
    raw = [pose_at(k / (n - 1)) for k in range(n)]
    en = latlon_to_m(*origin, np.round(m_to_latlon(*origin, [[p.east_m, p.north_m] for p in raw]), 7))
    poses = tuple(Pose(float(e), float(no), round(p.alt_m, 3), round(p.yaw_deg, 1) + 0.0, round(p.pitch_deg, 1),
                       round(p.roll_deg, 1) + 0.0, round(p.focal_len_mm, 2)) for p, (e, no) in zip(raw, en))
    return Flight(name, poses, fps, width, height, *origin)


# ---------------------------------------------------------------------------------------------- camera
def camera_to_world(pose: Pose) -> np.ndarray:
    """3x3 whose columns are the camera's x (right), y (down), z (forward) axes in east-north-up."""
    body = Rotation.from_euler("ZXY", [-pose.yaw_deg, pose.pitch_deg, pose.roll_deg], degrees=True)
    return body.as_matrix() @ _CAM_IN_BODY


def intrinsics(flight: Flight, i: int) -> np.ndarray:
    f = (flight.width / 2) / math.tan(math.radians(hfov_deg(flight.poses[i])) / 2)
    return np.array([[f, 0, flight.width / 2], [0, f, flight.height / 2], [0, 0, 1]])


def ground_to_image(flight: Flight, i: int) -> np.ndarray:
    """3x3 homography: ground (east, north, 1) metres -> continuous pixel (x, y, 1) of frame i. Not normalised:
    the third coordinate is the depth along the viewing axis, positive in front of the camera."""
    p = flight.poses[i]
    rt = camera_to_world(p).T
    t = -rt @ np.array([p.east_m, p.north_m, p.alt_m])
    return intrinsics(flight, i) @ np.column_stack([rt[:, 0], rt[:, 1], t])


def image_to_ground(flight: Flight, i: int) -> np.ndarray:
    """3x3 homography: continuous pixel (x, y, 1) of frame i -> ground (east, north, 1)."""
    return np.linalg.inv(ground_to_image(flight, i))


def apply(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """(N, 2) points through a 3x3 homography."""
    p = np.asarray(pts, float).reshape(-1, 2)
    q = np.column_stack([p, np.ones(len(p))]) @ h.T
    return q[:, :2] / q[:, 2:]


def sees_only_ground(flight: Flight, i: int) -> bool:
    """Every corner's ray goes down (no sky in frame i)."""
    w, h = flight.width, flight.height
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], float)
    rays = camera_to_world(flight.poses[i]) @ np.linalg.inv(intrinsics(flight, i)) @ corners.T
    return bool((rays[2] < 0).all())


_HALF = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])  # OpenCV index (pixel centres) -> continuous


def _cv_inverse_map(h_src_to_dst: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """The matrix for warpPerspective(..., WARP_INVERSE_MAP): dst index -> src index, for a continuous-coordinate
    homography src -> dst, the destination rendered at `scale` times its size."""
    s = np.diag([scale, scale, 1.0])
    return np.linalg.inv(_HALF) @ np.linalg.inv(s @ h_src_to_dst) @ _HALF


# ---------------------------------------------------------------------------------------------- rendering
def render_frames(flight: Flight, texture: tuple[np.ndarray, float], ss: int = 2) -> Iterator[np.ndarray]:
    """RGB uint8 frames: the ground texture through each pose's homography, supersampled ss x ss."""
    tex, gsd = texture
    a = _texture_to_ground(tex, gsd)
    for i in range(len(flight)):
        if not sees_only_ground(flight, i):
            raise ValueError(f"{flight.name} frame {i} sees the sky")
        m = _cv_inverse_map(ground_to_image(flight, i) @ a, ss)
        big = cv2.warpPerspective(tex, m, (flight.width * ss, flight.height * ss),
                                  flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
        yield big if ss == 1 else cv2.resize(big, (flight.width, flight.height), interpolation=cv2.INTER_AREA)


class Rendered(NamedTuple):
    video: Path
    srt: Path
    log: Path


def write_mp4(frames: Iterator[np.ndarray], path: Path, width: int, height: int, fps: float) -> Path:
    """Raw rgb24 frames through the bundled ffmpeg into H.264 (crf 12, yuv420p), frame k at k / fps."""
    import imageio_ffmpeg

    rate = str(Fraction(fps).limit_denominator(1001))
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo",
           "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", rate, "-i", "-", "-c:v", "libx264", "-crf", "12",
           "-pix_fmt", "yuv420p", "-r", rate, str(path)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    try:
        for frame in frames:
            proc.stdin.write(np.ascontiguousarray(frame).tobytes())
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    proc.stdin.close()
    if proc.wait():
        raise RuntimeError(f"ffmpeg failed writing {path}")
    return path


def _ms(k: int, fps: float) -> int:
    return round(k * 1000 / fps)


def _clock(ms: int) -> str:
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def write_srt(flight: Flight, path: Path, cut_after: int | None = None, gimbal: bool = True) -> Path:
    """DJI's current .SRT layout, one block per frame (block k from k / fps to (k + 1) / fps); `cut_after` N keeps
    only frames 1..N (telemetry cut midway); `gimbal=False` leaves out gb_yaw/gb_pitch/gb_roll (consumer models)."""
    blocks = []
    for k, p in enumerate(flight.poses[:cut_after]):
        lat, lon = flight.lat_lon(k)
        t0, t1 = _ms(k, flight.fps), _ms(k + 1, flight.fps)
        when = (START + timedelta(milliseconds=t0)).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        yaw = (p.yaw_deg + 180) % 360 - 180
        angles = f"[gb_yaw: {yaw:.1f} gb_pitch: {p.pitch_deg:.1f} gb_roll: {p.roll_deg:.1f}] " if gimbal else ""
        blocks.append(
            f"{k + 1}\n{_clock(t0)} --> {_clock(t1)}\n"
            f'<font size="28">FrameCnt: {k + 1}, DiffTime: {round(1000 / flight.fps)}ms\n{when}\n'
            f"[iso: 100] [shutter: 1/1000.0] [fnum: 1.7] [ev: 0] [color_md: default] "
            f"[focal_len: {p.focal_len_mm:.2f}] [latitude: {lat:.7f}] [longitude: {lon:.7f}] "
            f"[rel_alt: {p.alt_m:.3f} abs_alt: {p.alt_m + HOME_ALT_M:.3f}] {angles}[ct: 5500] </font>\n")
    Path(path).write_text("\n".join(blocks), encoding="utf-8")
    return Path(path)


def write_log(flight: Flight, path: Path) -> Path:
    """A CSV flight log: time_s,lat,lon,rel_alt_m,yaw_deg,pitch_deg,roll_deg,hfov_deg, one row per frame."""
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["time_s", "lat", "lon", "rel_alt_m", "yaw_deg", "pitch_deg", "roll_deg", "hfov_deg"])
        for k, p in enumerate(flight.poses):
            lat, lon = flight.lat_lon(k)
            out.writerow([f"{k / flight.fps:.6f}", f"{lat:.7f}", f"{lon:.7f}", f"{p.alt_m:.3f}", f"{p.yaw_deg:.1f}",
                          f"{p.pitch_deg:.1f}", f"{p.roll_deg:.1f}", f"{hfov_deg(p):.6f}"])
    return Path(path)


def render(flight: Flight, texture: tuple[np.ndarray, float], out_dir: Path, cut_after: int | None = None,
           gimbal: bool = True, ss: int = 2) -> Rendered:
    """<name>.mp4, <name>.SRT and <name>.csv in out_dir (see :func:`write_srt` for cut_after and gimbal)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    video = write_mp4(render_frames(flight, texture, ss), out / f"{flight.name}.mp4", flight.width, flight.height,
                      flight.fps)
    return Rendered(video, write_srt(flight, out / f"{flight.name}.SRT", cut_after, gimbal),
                    write_log(flight, out / f"{flight.name}.csv"))


# ---------------------------------------------------------------------------------------------- zones
def zones() -> dict[str, list[np.ndarray]]:
    """Zones on the ground, east/north metres around the origin, each a list of counter-clockwise polygons:
    `garden` a 22 x 19 m quadrilateral, `shed` a 7 x 7 m L (concave), `beds` two pieces (a MultiPolygon)."""
    a = lambda *pts: np.array(pts, float)  # noqa: E731
    return {"garden": [a((-10, -9), (12, -7), (9, 11), (-11, 8))],
            "shed": [a((14, 12), (21, 12), (21, 15), (17, 15), (17, 19), (14, 19))],
            "beds": [a((-22, -14), (-14, -16), (-17, -8)), a((-25, 12), (-20, 12), (-20, 16), (-25, 17))]}


def geojson(zone_polys: dict[str, list[np.ndarray]], lat0: float, lon0: float) -> dict:
    """RFC 7946 FeatureCollection (lon, lat; closed counter-clockwise rings): one polygon -> Polygon, several ->
    MultiPolygon. Full float precision, so it round-trips to the metres well under a centimetre."""
    feats = []
    for name, polys in zone_polys.items():
        rings = []
        for poly in polys:
            ll = m_to_latlon(lat0, lon0, poly)
            ring = [[float(lon), float(lat)] for lat, lon in ll]
            rings.append([ring + [ring[0]]])
        geom = ({"type": "Polygon", "coordinates": rings[0]} if len(rings) == 1
                else {"type": "MultiPolygon", "coordinates": rings})
        feats.append({"type": "Feature", "properties": {"name": name}, "geometry": geom})
    return {"type": "FeatureCollection", "features": feats}


def write_geojson(path: Path, zone_polys: dict[str, list[np.ndarray]], lat0: float, lon0: float) -> Path:
    Path(path).write_text(json.dumps(geojson(zone_polys, lat0, lon0), indent=1), encoding="utf-8")
    return Path(path)


def geojson_to_m(fc: dict, lat0: float, lon0: float) -> dict[str, list[np.ndarray]]:
    """The inverse of :func:`geojson` (exterior rings, without the closing point)."""
    out = {}
    for feat in fc["features"]:
        g = feat["geometry"]
        polys = [g["coordinates"]] if g["type"] == "Polygon" else g["coordinates"]
        out[feat["properties"]["name"]] = [latlon_to_m(lat0, lon0, np.array(p[0][:-1])[:, ::-1]) for p in polys]
    return out


def _signed_distance(pts: np.ndarray, polys: list[np.ndarray]) -> np.ndarray:
    """Metres from each point to the nearest edge of the polygons, negative inside (even-odd)."""
    x, y = pts[:, 0], pts[:, 1]
    dist, inside = np.full(len(pts), np.inf), np.zeros(len(pts), bool)
    for poly in polys:
        for (x1, y1), (x2, y2) in zip(poly, np.roll(poly, -1, axis=0)):
            dx, dy = x2 - x1, y2 - y1
            t = np.clip(((x - x1) * dx + (y - y1) * dy) / (dx * dx + dy * dy), 0, 1)
            dist = np.minimum(dist, np.hypot(x - x1 - t * dx, y - y1 - t * dy))
            if y1 != y2:
                inside ^= ((y1 > y) != (y2 > y)) & (x < x1 + (y - y1) * dx / dy)
    return np.where(inside, -dist, dist)


def zone_masks(flight: Flight, zone: np.ndarray | list[np.ndarray], grow_m: float = 0.0,
               res_m: float = 0.05) -> Iterator[np.ndarray]:
    """Per frame, bool (H, W): the pixels whose centre sees the zone (one polygon or a list of them) grown by
    grow_m metres. The zone's signed distance is sampled on the ground every res_m, warped into each frame with the
    frame's homography (bilinear: exact along straight edges) and thresholded at grow_m."""
    polys = [zone] if isinstance(zone, np.ndarray) and zone.ndim == 2 else list(zone)
    polys = [np.asarray(p, float) for p in polys]
    pts = np.concatenate(polys)
    pad = grow_m + 4 * res_m
    e0, n1 = pts[:, 0].min() - pad, pts[:, 1].max() + pad
    w, h = (math.ceil((pts[:, 0].max() + pad - e0) / res_m), math.ceil((n1 - pts[:, 1].min() + pad) / res_m))
    to_ground = np.array([[res_m, 0, e0], [0, -res_m, n1], [0, 0, 1]])  # raster continuous -> ground
    cols, rows = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    ground = apply(to_ground, np.column_stack([cols.ravel(), rows.ravel()]))
    sdf = _signed_distance(ground, polys).reshape(h, w).astype(np.float32)
    for i in range(len(flight)):
        m = _cv_inverse_map(ground_to_image(flight, i) @ to_ground)
        yield cv2.warpPerspective(sdf, m, (flight.width, flight.height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=1e9) <= grow_m
