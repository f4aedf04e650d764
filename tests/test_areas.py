"""Places: the areas file and the GeoJSON refused with the file and the area or feature named, the camera model's
conventions, polygons as regions, keep areas, and `deid areas`."""

from __future__ import annotations

import json
import math

import av
import numpy as np
import pytest
from shapely.geometry import Polygon

from deidcli.areas.camera import CameraPose, hfov_from_focal, project_ground
from deidcli.areas.geofence import LocalMetres, parse_geofence
from deidcli.areas.places import Places
from deidcli.areas.spec import parse_areas
from deidcli.config import DeidConfig
from deidcli.detections import Detections
from deidcli.errors import AreaInputError, ConfigError, ExitCode
from deidcli.methods.regions import polygon_mask

from conftest import run_cli

SQUARE = [[10, 10], [60, 10], [60, 50], [10, 50]]


def _square(lon=11.576, lat=48.137, d=0.0002):
    return [[lon, lat], [lon + d, lat], [lon + d, lat + d], [lon, lat + d], [lon, lat]]


@pytest.mark.parametrize("items, says", [
    ([], "no areas"),
    ([{"polygon": [[0, 0], [10, 0]]}], "area 1: a polygon needs at least three distinct points"),
    ([{"polygon": SQUARE}, {"polygon": [[0, 0], [10, 10], [10, 0], [0, 10]]}], "area 2: the polygon crosses itself"),
    ([{"polygon": SQUARE, "action": "blur"}], "area 1: action must be mask or keep"),
    ([{"polygon": SQUARE, "anchor": "sky"}], "area 1: anchor must be frame or ground"),
    ([{"polygon": SQUARE, "start": 5, "end": 2}], "area 1: end (2) is before start (5)"),
    ([{"polygon": SQUARE, "frame": 1.5}], "area 1: frame must be a whole frame number"),
    ([{"polygon": [[0, 0], [1, "x"], [2, 2]]}], "area 1: the polygon's points must be pairs of numbers"),
    ([{"poly": SQUARE}], "area 1: unknown key(s) poly"),
])
def test_a_bad_areas_file_is_refused_naming_the_area(items, says):
    with pytest.raises(AreaInputError, match="areas.json: " + says.replace("(", r"\(").replace(")", r"\)")):
        parse_areas({"areas": items}, "areas.json")


def test_an_areas_file_reads_as_drawn():
    (a, b) = parse_areas({"areas": [{"polygon": SQUARE, "anchor": "ground", "frame": 12, "name": "pool"},
                                    {"polygon": SQUARE, "action": "keep", "start": 1, "end": 2}]}, "f")
    assert (a.name, a.anchor, a.frame, a.action) == ("pool", "ground", 12, "mask")
    assert np.allclose(a.polygon, SQUARE)
    assert b.active(1.5) and not b.active(2.5) and not b.active(0.5)


@pytest.mark.parametrize("doc, says", [
    ({"type": "FeatureCollection", "features": []}, "no zones"),
    ({"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:25832"}},
      "features": []}, "WGS84"),
    ({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
                                                  "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}}]},
     "feature 1: geometry 'LineString' is not a Polygon"),
    ({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [_square()]}},
        {"type": "Feature", "properties": {"name": "yard"},
         "geometry": {"type": "Polygon", "coordinates": [[[691000, 5334000], [691100, 5334000], [691100, 5334100]]]}}]},
     r"feature 2 \(yard\): coordinates out of range"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}, "crosses itself"),
    ({"type": "Feature", "properties": {"action": "hide"}, "geometry": {"type": "Polygon", "coordinates": [_square()]}},
     "action must be mask or keep"),
    ({"type": "Topology"}, "not GeoJSON"),
])
def test_a_bad_geofence_is_refused_naming_the_feature(doc, says):
    with pytest.raises(AreaInputError, match="zones.geojson: .*" + says):
        parse_geofence(doc, "zones.geojson")


def test_a_multipolygon_gives_each_part_as_a_zone_and_metres_are_geodesic():
    doc = {"type": "Feature", "properties": {"name": "farm", "action": "keep"},
           "geometry": {"type": "MultiPolygon", "coordinates": [[_square()], [_square(11.577)]]}}
    zones = parse_geofence(doc, "z")
    assert [z.name for z in zones] == ["farm, part 1", "farm, part 2"] and zones[0].action == "keep"
    local = LocalMetres(48.137, 11.576)
    # 0.0002 degrees: pyproj's geodesic distances, not a spherical constant
    from pyproj import Geod

    east = Geod(ellps="WGS84").inv(11.576, 48.137, 11.5762, 48.137)[2]
    north = Geod(ellps="WGS84").inv(11.576, 48.137, 11.576, 48.1372)[2]
    poly = local.polygon(zones[0])
    minx, miny, maxx, maxy = poly.bounds
    assert maxx - minx == pytest.approx(east, abs=0.01) and maxy - miny == pytest.approx(north, abs=0.01)


def _pixel(pose, e, n, w=640, h=360):
    v = pose.ground_to_image(w, h) @ [e, n, 1]
    return v[:2] / v[2]


def test_camera_conventions():
    hfov = hfov_from_focal(24)
    assert hfov == pytest.approx(73.74, abs=0.01)
    down = CameraPose(0, 0, 60, 0, -90, 0, hfov)
    assert np.allclose(_pixel(down, 0, 0), [320, 180])  # the principal point, straight below
    assert _pixel(down, 0, 10)[1] < 180 and _pixel(down, 10, 0)[0] > 320  # north up, east right
    f = 320 / math.tan(math.radians(hfov) / 2)
    assert _pixel(down, 10, 0)[0] - 320 == pytest.approx(f * 10 / 60)
    east = CameraPose(0, 0, 60, 90, -90, 0, hfov)  # facing east, straight down: the top of the frame is east
    assert _pixel(east, 10, 0)[1] < 180 and _pixel(east, 0, 10)[0] < 320
    oblique = CameraPose(0, 0, 60, 0, -45, 0, hfov)
    assert np.allclose(_pixel(oblique, 0, 60), [320, 180])  # 45 degrees down from 60 m: 60 m ahead
    rolled = CameraPose(0, 0, 60, 0, -90, 10, hfov)  # the camera turned clockwise: the picture turns anticlockwise
    x, y = _pixel(rolled, 10, 0)
    assert x > 320 and y < 180  # east, to the right, turns up above the centre line


def test_a_zone_behind_the_camera_or_beyond_the_frame_is_clipped():
    pose = CameraPose(0, 0, 60, 0, -20, 0, hfov_from_focal(24))
    behind = Polygon([(-10, -50), (10, -50), (10, -30), (-10, -30)])
    assert project_ground(behind, pose, 640, 360) == []
    # a long strip from behind the camera to far ahead: the part in front, clipped to a window around the frame
    strip = Polygon([(-5, -100), (5, -100), (5, 5000), (-5, 5000)])
    (part,) = project_ground(strip, pose, 640, 360)
    assert part[:, 0].min() >= -640 and part[:, 1].max() <= 720 and np.isfinite(part).all()
    horizon = 180 - 320 / math.tan(math.radians(hfov_from_focal(24)) / 2) * math.tan(math.radians(20))
    assert part[:, 1].min() > horizon  # ground stays below the horizon
    # a distant zone is small, but there
    far = Polygon([(-2, 900), (2, 900), (2, 904), (-2, 904)])
    (tiny,) = project_ground(far, pose, 640, 360)
    assert polygon_mask(360, 640, tiny).sum() >= 1


def test_a_polygon_mask_covers_every_pixel_its_edge_touches():
    m = polygon_mask(20, 20, np.array([[2.5, 2.5], [10.2, 2.5], [10.2, 7.7], [2.5, 7.7]]))
    ys, xs = np.nonzero(m)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (2, 10, 2, 7)


def _places(tmp_path, areas, **cfg):
    path = tmp_path / "areas.json"
    path.write_text(json.dumps({"areas": areas}))
    return Places.from_config(DeidConfig().with_overrides(areas=str(path), **cfg))


def test_frame_areas_become_regions_and_keep_areas_leave_faces_visible(tmp_path):
    places = _places(tmp_path, [{"polygon": SQUARE, "end": 1.0},
                                {"polygon": [[100, 100], [300, 100], [300, 300], [100, 300]], "action": "keep"}])
    photo = places.for_image(tmp_path / "x.jpg", 400, 400)
    faces = Detections([[150, 150, 180, 190], [280, 150, 320, 190]], [0.9, 0.9], [0, 0], tracker_id=[1, 2])
    out = photo.apply(faces, 0, None)
    assert out.class_id.tolist() == [0, 4]  # the face inside the keep area is left; the one across its edge is not
    assert out.xyxy[0].tolist() == [280, 150, 320, 190] and out.tracker_id[0] == 2
    assert Polygon(out.polygons[1]).equals(Polygon(SQUARE)) and out.polygons[0] is None
    assert out.xyxy[1].tolist() == [10, 10, 60, 50]


def test_area_target_needs_places():
    with pytest.raises(ConfigError, match="area target needs --areas or --geofence"):
        DeidConfig().with_overrides(targets="face,area")
    assert DeidConfig().with_overrides(geofence="z.geojson").targets == "face,area"


def test_a_bad_areas_file_exits_16_before_any_frame(tmp_path, sample):
    bad = tmp_path / "areas.json"
    bad.write_text('{"areas": [{"polygon": [[0, 0], [10, 10], [10, 0], [0, 10]]}]}')
    out = tmp_path / "out.mp4"
    r = run_cli("run", sample, "-o", out, "--areas", bad, "-q")
    assert r.returncode == ExitCode.AREA_INPUT_INVALID
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "area 1: the polygon crosses itself" in r.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]
    broken = tmp_path / "zones.geojson"
    broken.write_text('{"type": "FeatureCollection",\n "features": [}')
    r = run_cli("run", sample, "-o", out, "--geofence", broken, "-q")
    assert r.returncode == ExitCode.AREA_INPUT_INVALID and "zones.geojson line 2" in r.stderr


def test_a_frame_area_is_solid_in_every_frame_and_deid_areas_draws_it(tmp_path, sample):
    areas = tmp_path / "areas.yaml"
    areas.write_text("areas:\n  - polygon: [[20, 20], [150, 30], [140, 120], [30, 110]]\n")
    out = tmp_path / "out.mp4"
    r = run_cli("run", sample, "-o", out, "--areas", areas, "--method", "area=solid", "--color", "255,0,255", "-q",
                "--report", tmp_path / "r.json")
    assert r.returncode == 0, r.stderr
    inside = np.zeros((360, 640), bool)
    inside[35:100, 45:130] = True  # well inside the polygon (the encoder's chroma blurs its edge)
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert frames and all((np.abs(f[inside].astype(int) - [255, 0, 255]) < 12).all() for f in frames)
    log = json.loads((tmp_path / "r.json").read_text())["files"][0]["places"]["areas"][0]
    assert log["frames_placed"] == len(frames) and log["kind"] == "frame"
    sheet = tmp_path / "sheet.png"
    r = run_cli("areas", sample, "--areas", areas, "-o", sheet, "--every", "1", "-q", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["frames_shown"] == 4 and sheet.stat().st_size > 10_000


def test_a_keep_area_leaves_the_faces_inside_it_as_they_were(tmp_path, sample):
    """A stage with consenting performers: the face inside the keep area is not anonymized; outside one is."""
    keep = tmp_path / "keep.json"
    keep.write_text(json.dumps([{"polygon": [[0, 0], [640, 0], [640, 360], [0, 360]], "action": "keep"}]))
    plain, kept = tmp_path / "plain.mp4", tmp_path / "kept.mp4"
    assert run_cli("run", sample, "-o", plain, "-q").returncode == 0
    r = run_cli("run", sample, "-o", kept, "--areas", keep, "-q", "--json")
    assert r.returncode == 0, r.stderr
    with av.open(str(sample)) as a, av.open(str(plain)) as b, av.open(str(kept)) as c:
        pairs = zip(a.decode(video=0), b.decode(video=0), c.decode(video=0))
        src, anon, left = (f.to_ndarray(format="rgb24").astype(int) for f in next(pairs))
    face = (slice(60, 180), slice(250, 390))  # the astronaut's face in the first frame
    assert np.abs(anon[face] - src[face]).mean() > 20  # anonymized without the keep area
    assert np.abs(left[face] - src[face]).mean() < 3  # left as it was inside it (the encoder's error only)
    assert json.loads(r.stdout)["files"][0]["places"]["areas"][0]["action"] == "keep"


def test_detections_carry_polygons_through_concat_indexing_and_scaling():
    square = np.array([[0.0, 0.0], [4, 0], [4, 4], [0, 4]])
    faces = Detections([[1, 1, 2, 2], [3, 3, 4, 4]], [0.9, 0.8], [0, 0], tracker_id=[7, 8])
    areas = Detections([[0, 0, 4, 4]], [1], [4], tracker_id=[1 << 40], polygons=[square])
    both = Detections.concat([faces, areas])
    assert both.tracker_id.tolist() == [7, 8, 1 << 40]  # tracked faces keep their ids beside an area
    assert both.polygons[0] is None and np.array_equal(both.polygons[2], square)
    assert np.array_equal(both[2].polygons[0], square) and both[:2].polygons.tolist() == [None, None]
    assert np.array_equal(both.scaled(2, 0.5).polygons[2], square * [2, 0.5])
    assert Detections.concat([faces, Detections([[0, 0, 1, 1]], [1], [1])]).tracker_id is None
