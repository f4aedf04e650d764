"""Every place to hide (or keep) placed in each frame: areas drawn in pixels, fixed on the screen or held on the
ground, and geofence zones placed from the flight's telemetry. Each frame's places become regions of the ``area``
target in its Detections record, anonymized like any other region.

Fail closed: a ground area the tracker cannot place masks the whole frame; a frame the telemetry does not cover
refuses the file (or, with ``telemetry_gaps="mask"``, masks the frame whole); a keep area is shrunk by its
uncertainty, and dropped where it cannot be placed. Every such frame is counted in the report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from shapely.geometry import Polygon, box
from shapely.ops import unary_union

from deidcli.areas.camera import CameraPose, hfov_from_focal, project_ground
from deidcli.areas.geofence import LocalMetres, Zone, load_geofence
from deidcli.areas.spec import AreaSpec, load_areas
from deidcli.areas.telemetry import Telemetry, describe, find_sidecar, read_embedded, read_telemetry
from deidcli.config import DeidConfig
from deidcli.detections import Detections, objects
from deidcli.errors import AreaInputError, TelemetryUnusableError
from deidcli.targets import CLASS_ID

# Area regions carry track ids from here on: a random method's grain is seeded by its area, not redrawn each frame,
# and never shares a seed with a ByteTrack id.
AREA_TRACK_BASE = 1 << 40
# A ground area grown by more than this share of the frame's diagonal is reported uncertain, not tracked.
UNCERTAIN_SHARE = 0.01
# A ground area grows by at least this many pixels, on its own frame too: the encoder's 4:2:0 chroma and its
# transform smear a mask's edge over 2-3 px, which left the drawn edge of a garden half shown (0.7% of it).
MIN_GROWTH_PX = 4.0


@dataclass
class AreaLog:
    """What happened to one area (or zone) over a video, for the report."""

    name: str
    kind: str  # frame, ground or geofence
    action: str
    placed: int = 0  # frames in which it was placed in view (drawn there, fixed, or projected from the telemetry)
    tracked: int = 0  # ground: frames held by the tracker within its usual margin
    uncertain: int = 0  # ground: frames where it was grown by the tracker's larger uncertainty
    masked_whole: list[int] = field(default_factory=list)  # frames masked whole because it could not be placed

    def as_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "action": self.action, "frames_placed": self.placed,
                "frames_tracked": self.tracked, "frames_uncertain": self.uncertain,
                "frames_masked_whole": len(self.masked_whole), "masked_whole": _ranges(self.masked_whole)}


def _ranges(frames: list[int]) -> list[list[int]]:
    """[[first, last], ...] of runs of consecutive frame numbers."""
    out: list[list[int]] = []
    for f in frames:
        if out and f == out[-1][1] + 1:
            out[-1][1] = f
        else:
            out.append([f, f])
    return out


def _pixels(geom) -> list[np.ndarray]:
    parts = [geom] if isinstance(geom, Polygon) else list(getattr(geom, "geoms", []))
    return [np.asarray(p.exterior.coords[:-1]) for p in parts if isinstance(p, Polygon) and not p.is_empty]


@dataclass
class Places:
    """The places of a run, read and checked before any frame: the areas file and the geofence's zones."""

    areas: list[AreaSpec]
    zones: list[Zone]
    cfg: DeidConfig

    @classmethod
    def from_config(cls, cfg: DeidConfig) -> "Places | None":
        if not (cfg.areas or cfg.geofence):
            return None
        areas = load_areas(Path(cfg.areas)) if cfg.areas else []
        zones = load_geofence(Path(cfg.geofence)) if cfg.geofence else []
        return cls(areas, zones, cfg)

    @property
    def needs_ground(self) -> bool:
        return any(a.anchor == "ground" for a in self.areas)

    def for_video(self, path: Path, info, progress=None) -> "VideoPlaces":
        """The places of one video: its telemetry read and checked against the video's length, and the ground's
        motion tracked in a pre-pass when an area is held on the ground (``progress(n)`` per frame read)."""
        fps = float(info.frame_rate) if info.frame_rate else 25.0
        flight = Flight.for_video(path, info, fps, self.cfg) if self.zones else None
        motion = None
        if self.needs_ground:
            from deidcli.areas.ground_track import small_frames, track_ground

            frames = small_frames(path)
            if progress is not None:
                frames = _counted(frames, progress)
            motion = track_ground(frames, info.width, info.height)
            for a in self.areas:
                if a.anchor == "ground" and a.frame >= len(motion.segment):
                    raise AreaInputError(f"{self.cfg.areas}: {a.name} is drawn on frame {a.frame}, but {path} has "
                                         f"{len(motion.segment)} frames")
        return VideoPlaces(self, info.width, info.height, info.time_base, fps, flight, motion)

    def for_image(self, path: Path, width: int, height: int) -> "VideoPlaces":
        """A photo is one frame: its areas apply as drawn; a geofence needs a video's telemetry."""
        if self.zones:
            raise TelemetryUnusableError(f"{path}: a geofence is placed from a video's telemetry; a photo has none "
                                         f"(draw the place with --areas instead)")
        return VideoPlaces(self, width, height, Fraction(1, 1), 1.0, None, None)


def _counted(frames, progress):
    for f in frames:
        progress(1)
        yield f


@dataclass
class Flight:
    """The telemetry of one video, checked to place zones in every frame, and the camera's pose at any time."""

    telemetry: Telemetry
    local: LocalMetres
    cfg: DeidConfig
    notes: list[str]

    @classmethod
    def for_video(cls, path: Path, info, fps: float, cfg: DeidConfig) -> "Flight":
        if info.rotation:  # the camera model's "top of the frame" is the picture's as shown, not as stored
            raise TelemetryUnusableError(f"{path}: the video is shown rotated by {info.rotation} degrees; a geofence "
                                         f"is placed in unrotated drone footage only")
        source = Path(cfg.telemetry) if cfg.telemetry else find_sidecar(path)
        if source is not None and not source.is_file():
            raise AreaInputError(f"{source}: no such telemetry file")
        t = read_telemetry(source) if source is not None else read_embedded(path)
        if t is None:
            raise TelemetryUnusableError(f"{path}: a geofence needs the flight's telemetry: no .SRT beside the video "
                                         f"and no DJI subtitle track in it; give --telemetry FILE (a DJI .SRT or a "
                                         f"CSV flight log)")
        source = t.source
        notes = []
        missing = [n for n, flag in (("pitch", cfg.camera_pitch), ("yaw", cfg.camera_yaw)) if flag is None
                   and not t.has(n)]
        if missing:
            raise TelemetryUnusableError(
                f"{source}: no gimbal {' or '.join(missing)} in the telemetry ({t.layout}); give --camera-pitch "
                f"and --camera-yaw (e.g. -90 for a mapping flight straight down) rather than let deid guess")
        if cfg.hfov is None and not (t.has("hfov") or t.has("focal_len")):
            raise TelemetryUnusableError(f"{source}: no focal length in the telemetry ({t.layout}); give --hfov "
                                         f"DEGREES (the camera's horizontal field of view)")
        height = "abs_alt" if cfg.ground_alt is not None else "rel_alt"
        if not t.has(height):
            raise TelemetryUnusableError(f"{source}: no {height} in the telemetry ({t.layout})" + (
                "; drop --ground-alt to use the height above take-off" if cfg.ground_alt is not None else ""))
        if not t.has("roll"):
            notes.append("no gimbal roll in the telemetry: taken as level (0)")
        for name, value in (("pitch", cfg.camera_pitch), ("yaw", cfg.camera_yaw), ("hfov", cfg.hfov)):
            if value is not None:
                notes.append(f"camera {name} {value:g} degrees, from the command line")
        flight = cls(t, LocalMetres(float(t.lat[0]), float(t.lon[0])), cfg, notes)
        # Checked before any frame is read, on the times the container states; each frame is checked again on its
        # own time as it is placed (a variable frame rate).
        n = info.frames or (int(round(info.duration_s * fps)) if info.duration_s else 0)
        if n and cfg.telemetry_gaps == "refuse":
            flight.check(np.arange(n) / fps, path)
        return flight

    def check(self, times: np.ndarray, path: Path) -> None:
        bad = np.flatnonzero(self.telemetry.uncovered(times))
        if len(bad):
            runs = _ranges([int(b) for b in bad])
            where = ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in runs[:3]) + (" ..." if len(runs) > 3 else "")
            raise TelemetryUnusableError(
                f"{path}: the telemetry ({self.telemetry.source}) does not cover frame(s) {where} (a gap over 1 s, or "
                f"it ends before the video); nothing written; --telemetry-gaps mask masks such frames whole instead")

    def pose(self, time_s: float) -> CameraPose | None:
        """The camera at ``time_s``, or None where the telemetry does not cover it."""
        if self.telemetry.uncovered(np.array([time_s]))[0]:
            return None
        s = {k: float(v[0]) for k, v in self.telemetry.at(np.array([time_s])).items()}
        cfg = self.cfg
        height = s["abs_alt"] - cfg.ground_alt if cfg.ground_alt is not None else s["rel_alt"]
        pitch = cfg.camera_pitch if cfg.camera_pitch is not None else s["pitch"]
        yaw = cfg.camera_yaw if cfg.camera_yaw is not None else s["yaw"]
        roll = s["roll"] if math.isfinite(s["roll"]) else 0.0
        hfov = cfg.hfov or (s["hfov"] if math.isfinite(s["hfov"]) else
                            hfov_from_focal(s["focal_len"]) if math.isfinite(s["focal_len"]) else math.nan)
        values = (s["lat"], s["lon"], height, pitch, yaw, hfov)
        if not all(math.isfinite(v) for v in values):
            return None
        east, north = self.local(s["lon"], s["lat"])[0]
        return CameraPose(float(east), float(north), float(height), yaw, pitch, roll, hfov)

    def describe(self) -> dict:
        return {**describe(self.telemetry), "origin": [self.local.lat0, self.local.lon0], "notes": self.notes}


@dataclass
class Placement:
    """One frame's places: the pixel polygons to mask and to keep, each with the index of its place's log, the
    places that could not be placed (the whole frame is then the one polygon to mask), and each place's state."""

    masks: list[tuple[int, np.ndarray]] = field(default_factory=list)
    keeps: list[tuple[int, np.ndarray]] = field(default_factory=list)
    whole: list[int] = field(default_factory=list)
    states: dict[int, str] = field(default_factory=dict)


class VideoPlaces:
    """The places of one video, frame by frame: :meth:`apply` adds each frame's area regions to its Detections."""

    def __init__(self, places: Places, width: int, height: int, time_base: Fraction, fps: float,
                 flight: Flight | None, motion) -> None:
        self.places, self.width, self.height = places, width, height
        self.time_base, self.fps, self.flight, self.motion = time_base, fps, flight, motion
        self.frame = box(0, 0, width, height)
        self.diagonal = math.hypot(width, height)
        self.first_pts: int | None = None
        self.logs = [AreaLog(a.name, a.anchor, a.action) for a in places.areas] + \
                    [AreaLog(z.name, "geofence", z.action) for z in places.zones]
        self.telemetry_masked: list[int] = []  # frames masked whole: the telemetry did not cover them
        margin = places.cfg.area_margin
        self.zones_m: list[Polygon] = []
        if flight is not None:
            for z in places.zones:  # grown on the ground by the margin; a keep zone shrinks by it
                self.zones_m.append(flight.local.polygon(z).buffer(margin if z.action == "mask" else -margin))
        # each area grown on its own frame by its own margin (shrunk for keep)
        self.drawn = [Polygon(a.polygon).buffer(a.margin if a.action == "mask" else -a.margin, join_style="mitre")
                      for a in places.areas]

    def time_of(self, index: int, pts: int | None) -> float:
        """Seconds from the video's first frame: the telemetry's time line starts there."""
        if pts is None or self.first_pts is None and index > 0:
            return index / self.fps
        if self.first_pts is None:
            self.first_pts = pts
        return float((pts - self.first_pts) * self.time_base)

    def place(self, index: int, time_s: float) -> "Placement":
        """This frame's places, each counted in its log."""
        out = Placement()

        def add(k: int, geom, action: str, state: str) -> bool:
            geom = geom.intersection(self.frame) if not geom.is_empty else geom
            if geom.is_empty:
                out.states[k] = "not in view"
                return False
            (out.masks if action == "mask" else out.keeps).extend((k, p) for p in _pixels(geom))
            out.states[k] = state if action == "mask" else f"keep, {state}"
            self.logs[k].placed += 1
            return True

        for k, (area, drawn) in enumerate(zip(self.places.areas, self.drawn)):
            log = self.logs[k]
            if not area.active(time_s):
                out.states[k] = "inactive"
                continue
            if area.anchor == "frame" or self.motion is None:  # a photo: a ground area is where it was drawn
                add(k, drawn, area.action, "placed")
                continue
            if drawn.is_empty:
                continue
            ring = np.asarray(drawn.exterior.coords[:-1])
            # a frame the pre-pass did not see (the decoders counted differently) is not placed; its own frame
            # always is, grown like any tracked frame (its edge is as uncertain as where it was drawn)
            mapped = self.motion.map_polygon(ring, area.frame, index) if index < len(self.motion.segment) else None
            if mapped is None and index == area.frame:
                mapped = (ring, MIN_GROWTH_PX)
            if mapped is None:  # not placed: the whole frame hides it wherever it is; a keep area is dropped
                out.states[k] = "masked whole" if area.action == "mask" else "keep dropped: not placed"
                if area.action == "mask":
                    log.masked_whole.append(index)
                    out.whole.append(k)
                continue
            pts, grow = mapped[0], max(mapped[1], MIN_GROWTH_PX)
            geom = Polygon(pts) if len(pts) >= 3 else Polygon()  # none of it near this frame's view
            geom = (geom if geom.is_valid else geom.buffer(0)).buffer(grow if area.action == "mask" else -grow,
                                                                         join_style="mitre")
            state = "placed" if index == area.frame else \
                "uncertain" if grow > UNCERTAIN_SHARE * self.diagonal else "tracked"
            if add(k, geom, area.action, state) and state != "placed":
                if state == "uncertain":
                    log.uncertain += 1
                else:
                    log.tracked += 1
        if self.flight is not None:
            self._place_zones(index, time_s, add, out)
        if out.whole:
            out.masks = [(out.whole[0], np.asarray(self.frame.exterior.coords[:-1]))]
        return out

    def _place_zones(self, index: int, time_s: float, add, out: "Placement") -> None:
        base = len(self.places.areas)
        pose = self.flight.pose(time_s)
        if pose is None:
            if self.places.cfg.telemetry_gaps != "mask":
                self.flight.check(np.array([time_s]), Path(self.flight.telemetry.source))
            self.telemetry_masked.append(index)
            for k, z in enumerate(self.places.zones, base):
                out.states[k] = "masked whole: no telemetry" if z.action == "mask" else "keep dropped: no telemetry"
                if z.action == "mask":
                    self.logs[k].masked_whole.append(index)
                    out.whole.append(k)
            return
        for k, ground in enumerate(self.zones_m, base):
            parts = project_ground(ground, pose, self.width, self.height) if not ground.is_empty else []
            geom = unary_union([Polygon(p).buffer(0) for p in parts]) if parts else Polygon()
            add(k, geom, self.places.zones[k - base].action, "placed")

    def apply(self, dets: Detections, index: int, pts: int | None) -> Detections:
        """``dets`` without the regions that lie wholly inside a keep area, with this frame's areas to mask added
        as ``area`` regions (polygons; track ids from AREA_TRACK_BASE)."""
        placed = self.place(index, self.time_of(index, pts))
        if placed.keeps and len(dets):
            keep = unary_union([Polygon(p) for _, p in placed.keeps])
            inside = np.array([box(*b).within(keep) for b in dets.xyxy], dtype=bool)
            dets = dets[~inside]
        if not placed.masks:
            return dets
        polygons = objects([p for _, p in placed.masks])
        xyxy = np.array([[*p.min(axis=0), *p.max(axis=0)] for _, p in placed.masks], dtype=np.float32)
        tids = np.array([AREA_TRACK_BASE + k for k, _ in placed.masks], dtype=np.int64)
        n = len(placed.masks)
        areas = Detections(xyxy, np.ones(n), np.full(n, CLASS_ID["area"]), None, tids, polygons)
        return Detections.concat([dets, areas])

    def report(self) -> dict:
        out: dict = {"areas": [log.as_dict() for log in self.logs]}
        if self.flight is not None:
            out["telemetry"] = self.flight.describe()
            out["telemetry"]["frames_masked_whole"] = _ranges(self.telemetry_masked)
            out["area_margin_m"] = self.places.cfg.area_margin
        if self.motion is not None:
            out["ground_tracking"] = {"frames": int(len(self.motion.segment)),
                                      "frames_untracked": int((self.motion.segment < 0).sum()),
                                      "segments": int(len(set(self.motion.segment[self.motion.segment >= 0])))}
        return out
