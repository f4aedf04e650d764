"""The synthetic flights' own consistency: the camera conventions docs/how-it-works.md states, the rendered pixels
against the homography, the ground-truth masks against a direct test of each pixel's centre, the GeoJSON and the SRT."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import av
import cv2
import numpy as np
import pytest

import flights as F


def _one(pose: F.Pose, w: int = 640, h: int = 360) -> F.Flight:
    return F.Flight("t", (pose,), 30, w, h)


def _to_px(pose: F.Pose, *ground: tuple[float, float]) -> np.ndarray:
    return F.apply(F.ground_to_image(_one(pose), 0), np.array(ground, float))


def _inside(pts: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd point in polygon, vectorised."""
    x, y, out = pts[:, 0], pts[:, 1], np.zeros(len(pts), bool)
    for (x1, y1), (x2, y2) in zip(poly, np.roll(poly, -1, axis=0)):
        crosses = (y1 > y) != (y2 > y)
        out ^= crosses & (x < x1 + (y - y1) * (x2 - x1) / np.where(y2 == y1, 1, y2 - y1))
    return out


def _grey_texture(dot: tuple[float, float], radius_m: float = 0.4, gsd: float = 0.05) -> tuple[np.ndarray, float]:
    tex = np.full((2000, 2000, 3), 60, np.uint8)
    u, v = dot[0] / gsd + 1000, 1000 - dot[1] / gsd  # continuous texture coordinates
    cv2.circle(tex, (round((u - 0.5) * 256), round((v - 0.5) * 256)), round(radius_m / gsd * 256), (255,) * 3, -1,
               cv2.LINE_AA, 8)
    return tex, gsd


def test_orientation_conventions():
    f = 640 * 24 / 36  # (W / 2) / tan(hfov / 2) with hfov = 2 atan(36 / 48)
    down = F.Pose(0, 0, 50, 0, -90)
    r = F.camera_to_world(down)
    assert np.allclose(r.T @ r, np.eye(3)) and np.isclose(np.linalg.det(r), 1)
    assert np.allclose(r[:, 2], [0, 0, -1]) and np.allclose(r[:, 1], [0, -1, 0])  # looks down, top of frame north
    centre, north, east = _to_px(down, (0, 0), (0, 10), (10, 0))
    assert np.allclose(centre, [320, 180])
    assert np.allclose(north, [320, 180 - f * 10 / 50]) and np.allclose(east, [320 + f * 10 / 50, 180])
    assert np.allclose(_to_px(down, (50 * 18 / 24, 0)), [[640, 180]])  # the hfov's edge is the frame's edge
    # pitch -90, yaw 90: the top faces east, north is at the frame's left
    centre, north, east = _to_px(F.Pose(0, 0, 50, 90, -90), (0, 0), (0, 10), (10, 0))
    assert north[0] < 320 and np.isclose(north[1], 180) and east[1] < 180 and np.isclose(east[0], 320)
    # yaw 0, pitch 0: looking north, image right = east, down = world down
    far, right = _to_px(F.Pose(0, 0, 10, 0, 0), (0, 100), (5, 100))
    assert np.allclose(far, [320, 180 + f * 10 / 100]) and np.allclose(right, [320 + f * 5 / 100, 180 + f * 10 / 100])
    # positive roll turns the camera clockwise: what was straight up moves up-left, by exactly the roll
    (x, y), = _to_px(F.Pose(0, 0, 50, 0, -90, 10), (0, 10))
    assert np.allclose([x - 320, y - 180], f * 10 / 50 * np.array([-math.sin(math.radians(10)),
                                                                    -math.cos(math.radians(10))]))
    # pitch -55, yaw 200: the centre ray meets the ground alt / tan(55) along the heading
    pose = F.Pose(3, -4, 60, 200, -55)
    (e, n), = F.apply(F.image_to_ground(_one(pose), 0), [[320, 180]])
    d = 60 / math.tan(math.radians(55))
    assert np.allclose([e, n], [3 + d * math.sin(math.radians(200)), -4 + d * math.cos(math.radians(200))])
    assert (F.ground_to_image(_one(pose), 0) @ [e, n, 1])[2] > 0  # in front: positive third coordinate
    assert F.sees_only_ground(_one(pose), 0)
    # the axes for any yaw and pitch, and roll as a turn about the viewing axis (right tilting down)
    y, p, r = (math.radians(a) for a in (200, -55, 7))
    level, rolled = F.camera_to_world(pose), F.camera_to_world(F.Pose(3, -4, 60, 200, -55, 7))
    assert np.allclose(level[:, 2], [math.cos(p) * math.sin(y), math.cos(p) * math.cos(y), math.sin(p)])
    assert np.allclose(level[:, 0], [math.cos(y), -math.sin(y), 0])
    assert np.allclose(rolled, level @ [[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    assert not F.sees_only_ground(_one(F.Pose(0, 0, 10, 0, -10)), 0)


@pytest.mark.parametrize("pose", [F.Pose(1, 2, 40, 33, -90), F.Pose(-2, -30, 35, 20, -55, 3, 35),
                                  F.Pose(20, 5, 25, 250, -70, -4, 28)])
@pytest.mark.parametrize("ss", [1, 2])
def test_dot_lands_where_projected(pose, ss):
    dot = (7.3, -4.1)
    frame, = F.render_frames(_one(pose), _grey_texture(dot), ss=ss)
    weight = np.clip(frame[..., 1].astype(float) - 60, 0, None)
    ys, xs = np.mgrid[:360, :640]
    found = np.array([(weight * xs).sum(), (weight * ys).sum()]) / weight.sum() + 0.5  # centres -> continuous
    assert np.abs(found - _to_px(pose, dot)[0]).max() < 0.1


@pytest.mark.parametrize("name,frames", [("oblique", (0, 59)), ("held_low_roll", (10, 40)),
                                         ("turning", (71,)), ("held_high_nadir", (33,))])
def test_zone_masks_are_the_pixel_centres_inside(name, frames):
    whole = F.flight(name)
    fl = dataclasses.replace(whole, poses=tuple(whole.poses[i] for i in frames))
    ys, xs = np.mgrid[:fl.height, :fl.width]
    centres = np.column_stack([xs.ravel() + 0.5, ys.ravel() + 0.5])
    for zone in F.zones().values():
        for i, mask in enumerate(F.zone_masks(fl, zone)):
            ground = F.apply(F.image_to_ground(fl, i), centres)
            truth = np.any([_inside(ground, p) for p in zone], axis=0).reshape(fl.height, fl.width)
            assert truth.sum() > 50
            assert (mask != truth).sum() <= 3


def test_mask_areas_and_growth():
    pose = F.Pose(2, 1, 60, 40, -90)
    fl = _one(pose)
    m2_per_px = (60 / (640 * 24 / 36)) ** 2
    garden = F.zones()["garden"][0]
    x, y = garden.T
    area = 0.5 * (x @ np.roll(y, -1) - y @ np.roll(x, -1))
    assert area > 0  # counter-clockwise
    perimeter = np.linalg.norm(garden - np.roll(garden, -1, axis=0), axis=1).sum()
    plain, = F.zone_masks(fl, garden)
    grown, = F.zone_masks(fl, garden, grow_m=2.0)
    assert plain.sum() * m2_per_px == pytest.approx(area, rel=0.01)
    assert grown.sum() * m2_per_px == pytest.approx(area + 2 * perimeter + math.pi * 4, rel=0.01)
    assert not (plain & ~grown).any()


def test_polygon_drawn_on_a_frame_follows_the_ground():
    fl = F.flight("turning")
    drawn = np.array([[100.0, 80.0], [300.0, 95.0], [260.0, 250.0], [120.0, 230.0]])  # pixels on frame 10
    ground = F.apply(F.image_to_ground(fl, 10), drawn)
    masks = list(F.zone_masks(fl, ground))
    ys, xs = np.mgrid[:360, :640]
    expected = _inside(np.column_stack([xs.ravel() + 0.5, ys.ravel() + 0.5]), drawn).reshape(360, 640)
    assert (masks[10] != expected).sum() <= 3
    back = F.apply(F.ground_to_image(fl, 10), ground)
    assert np.allclose(back, drawn, atol=1e-6)
    assert not np.array_equal(masks[0], masks[10]) and masks[0].sum() > 0  # it moved, and it is still in view


@pytest.mark.parametrize("origin", [F.MUNICH, F.STANFORD, F.SYDNEY])
def test_geojson_round_trips(origin, tmp_path):
    zones = F.zones()
    path = F.write_geojson(tmp_path / "zones.geojson", zones, *origin)
    fc = json.loads(path.read_text())
    kinds = {f["properties"]["name"]: f["geometry"]["type"] for f in fc["features"]}
    assert kinds == {"garden": "Polygon", "shed": "Polygon", "beds": "MultiPolygon"}
    for feat in fc["features"]:
        g = feat["geometry"]
        for poly in [g["coordinates"]] if g["type"] == "Polygon" else g["coordinates"]:
            ring = np.array(poly[0])
            assert (ring[0] == ring[-1]).all()
            assert np.abs(ring - [origin[1], origin[0]]).max() < 0.001  # lon, lat order
            lon, lat = ring[:-1].T
            assert lon @ np.roll(lat, -1) - lat @ np.roll(lon, -1) > 0  # counter-clockwise
    back = F.geojson_to_m(fc, *origin)
    for name, polys in zones.items():
        for a, b in zip(polys, back[name], strict=True):
            assert np.abs(a - b).max() < 0.01


def _srt_blocks(text: str) -> list[dict]:
    out = []
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        t0 = re.match(r"(\d+):(\d+):(\d+),(\d+) --> ", lines[1]).groups()
        fields = dict(re.findall(r"(\w+): ([-\d./]+)", lines[-1]))
        out.append({"n": int(lines[0]), "ms": ((int(t0[0]) * 60 + int(t0[1])) * 60 + int(t0[2])) * 1000 + int(t0[3]),
                    **fields})
    return out


def test_video_srt_and_log(tmp_path):
    whole = F.flight("held_high_nadir", 320, 180)  # 29.97 fps, yaw from 170 to 200
    fl = dataclasses.replace(whole, poses=whole.poses[:6] + whole.poses[-6:])
    out = F.render(fl, _grey_texture((0, 0), 2.0), tmp_path, ss=1)
    assert out.video.stem == out.srt.stem and out.srt.suffix == ".SRT"
    with av.open(str(out.video)) as box:
        stream = box.streams.video[0]
        times = [float(fr.pts * stream.time_base) for fr in box.decode(stream)]
        assert stream.codec_context.name == "h264" and stream.width == 320
    blocks = _srt_blocks(out.srt.read_text())
    assert len(blocks) == len(times) == 12
    for k, (b, t) in enumerate(zip(blocks, times)):
        assert b["n"] == k + 1 and b["ms"] == round(t * 1000) == round(k * 1000 / fl.fps)
        p = fl.poses[k]
        (e, n), = F.latlon_to_m(fl.lat0, fl.lon0, [[float(b["latitude"]), float(b["longitude"])]])
        assert abs(e - p.east_m) < 0.002 and abs(n - p.north_m) < 0.002  # the telemetry says the pose exactly
        assert float(b["rel_alt"]) == p.alt_m and float(b["focal_len"]) == p.focal_len_mm
        assert -180 <= float(b["gb_yaw"]) < 180 and (float(b["gb_yaw"]) - p.yaw_deg) % 360 == pytest.approx(0)
        assert float(b["gb_pitch"]) == p.pitch_deg and float(b["gb_roll"]) == p.roll_deg
    assert float(blocks[-1]["gb_yaw"]) < 0  # past 180: DJI writes it negative
    assert len(_srt_blocks(F.write_srt(fl, tmp_path / "cut.SRT", cut_after=5).read_text())) == 5
    assert "gb_yaw" not in F.write_srt(fl, tmp_path / "plain.SRT", gimbal=False).read_text()
    rows = out.log.read_text().splitlines()
    assert rows[0] == "time_s,lat,lon,rel_alt_m,yaw_deg,pitch_deg,roll_deg,hfov_deg" and len(rows) == 13
    assert float(rows[1].split(",")[-1]) == pytest.approx(2 * math.degrees(math.atan(36 / 80)))


def test_flights_are_well_formed():
    garden = F.zones()["garden"][0]
    for name in F.TUNING + F.HELD_OUT:
        fl = F.flight(name)
        assert 48 <= len(fl) <= 72 and 25 <= fl.fps <= 30 and (fl.width, fl.height) == (640, 360)
        assert all(F.sees_only_ground(fl, i) for i in range(len(fl)))
        areas = [m.sum() for m in F.zone_masks(fl, garden)]
        if name == "enter_leave":
            assert areas[0] == areas[-1] == 0 and max(areas) > 20000
        else:
            assert min(areas) > 5000, name
    assert F.flight("nadir", 1280, 720).width == 1280
    assert not set(F.TUNING) & set(F.HELD_OUT)


def test_sdd_texture_covers_every_flight():
    tex, gsd = F.ground_texture()
    assert 0.05 <= gsd <= 0.1 and tex.dtype == np.uint8 and tex.shape[2] == 3
    half = np.array(tex.shape[1::-1]) * gsd / 2
    for name in F.TUNING + F.HELD_OUT:
        fl = F.flight(name)
        for i in (0, len(fl) - 1):
            corners = F.apply(F.image_to_ground(fl, i), [[0, 0], [640, 0], [0, 360], [640, 360]])
            assert (np.abs(corners) < half).all(), name
    frame, = F.render_frames(F.flight("oblique").head(1), (tex, gsd))
    assert frame.shape == (360, 640, 3) and frame.std() > 10
