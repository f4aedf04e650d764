"""The flight's telemetry, read so that a geofence (a zone on the map) can be placed in every video frame.

Placing a zone in a frame needs where the camera was and where it pointed at that frame's time. DJI drones write
this as an ``.SRT`` subtitle file beside each clip (or as a subtitle stream inside it); other flights come as a
CSV flight log. Both are read into one :class:`Telemetry` on the video's clock: :meth:`Telemetry.at` interpolates
it at frame times and :meth:`Telemetry.uncovered` says which frames it does not cover, so that those are refused
rather than guessed.

SRT samples are placed by each block's time line (``HH:MM:SS,mmm --> HH:MM:SS,mmm``), never by the block's number:
numbers are wrong or out of order in real files. A sample's time is its block's start. Layouts read (examples in
JuanIrache/DJI_SRT_Parser ``samples/``, CallMarcus/dji-drone-metadata-embedder ``docs/SRT_FORMATS.md`` and
PhilipQuirke/SkyCombAnalystHelp's flight-log notes; the models are those their samples came from):

``dji-modern``
    ``[latitude: 48.137154] [longitude: 11.576124] [rel_alt: 60.000 abs_alt: 580.000]``, ``[focal_len: 24.00]`` in
    mm, one block a frame: Mavic 3, Mavic 3 Pro, Mini 3 Pro, Mini 4 Pro, Air 3, Air 3S, Neo 2. Enterprise models
    (Mavic 3T) add the gimbal's ``[gb_yaw: 76.8 gb_pitch: -49.1 gb_roll: 0.0]``.
``dji-mavic2``
    ``[latitude : -34.869950] [longtitude : -57.823395] [altitude: 74.725998]`` (DJI's spelling; the Air 2 and
    Air 2S spell ``longitude``), ``[focal_len : 240]`` in tenths of a mm: Mavic 2 Pro, Mavic 2 Zoom, Mavic 2
    Enterprise, Mavic Air 2, Air 2S. ``altitude`` is read as the height above take-off.
``dji-legacy``
    ``HOME(149.0251,-20.2532) 2017.08.05 14:11:51`` then ``GPS(149.0251,-20.2533,16) BAROMETER:1.9``, one block a
    second: Phantom 3/4, Inspire 1, Mavic Pro. GPS is (longitude, latitude, satellites); early firmware writes the
    height as ``Hb:1.9``. The Matrice 300 writes ``GPS(36.6146,-6.1120,0.0M) BAROMETER:0.3M``: when the third value
    carries the ``M`` unit the order is (latitude, longitude, ...), as in every sample of it found.
``dji-mavic-pro``
    ``F/2.8, SS 1000, ISO 100, EV 0, GPS (8.6763, 49.4120, 18), D 24.65m, H 20.50m, H.S 0.00m/s, V.S 0.00m/s``,
    GPS (longitude, latitude, satellites), H the height above take-off: Mavic Mini, Phantom 4 Pro, Phantom 4 RTK;
    the RTK adds the gimbal's ``G.PRY (-24.4°, 0.0°, 110.4°)`` (pitch, roll, yaw).

Never read as the aircraft's pose: ``HOME(..)`` (where the pilot stood), ``D`` (distance from home), ``F.PRY`` and
the Mavic 2 Enterprise's ``[Drone: Yaw:.. Pitch:.. Roll:..]`` (the airframe's attitude, not the camera's). A block
with latitude and longitude both 0 (no GPS fix yet) has no position and is skipped, as is one without a position.

A CSV flight log has the header ``time_s, lat, lon, rel_alt_m, yaw_deg, pitch_deg, roll_deg`` and optionally
``hfov_deg`` (any order, any case), times in seconds from the video's start, strictly increasing.
"""

from __future__ import annotations

import codecs
import csv
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deidcli.errors import AreaInputError, TelemetryUnusableError
from deidcli.positions import is_sidecar

FIELDS = ("lat", "lon", "rel_alt", "abs_alt", "yaw", "pitch", "roll", "focal_len", "hfov")
ORIENTATION = ("yaw", "pitch", "roll")
_CIRCULAR = frozenset({"lon", "yaw", "roll"})  # interpolated the short way round, returned in [-180, 180)
# SRT times are written to the millisecond, so a frame time within 1 ms of the telemetry's first sample or end is
# the same instant, rounded; anything further out is not covered.
EDGE_TOLERANCE_S = 0.001


@dataclass(frozen=True, eq=False)
class Telemetry:
    """A flight's samples on the video's clock, one value per sample in every array (NaN where the log lacks the
    field). The arrays are read-only copies."""

    source: str  # the path read, or e.g. "subtitle stream 2 of clip.mp4"
    layout: str  # "dji-modern", "dji-mavic2", "dji-legacy", "dji-mavic-pro" or "csv"
    time_s: np.ndarray  # seconds from the video's start, strictly increasing
    end_s: float  # until when the last sample holds (the last SRT block's end; for CSV its last time)
    lat: np.ndarray  # degrees WGS84
    lon: np.ndarray
    rel_alt: np.ndarray  # metres above take-off
    abs_alt: np.ndarray  # metres above sea level
    yaw: np.ndarray  # gimbal yaw, degrees clockwise from true north
    pitch: np.ndarray  # gimbal pitch, 0 horizon, -90 straight down
    roll: np.ndarray
    focal_len: np.ndarray  # 35 mm-equivalent focal length, mm
    hfov: np.ndarray  # horizontal field of view, degrees, where the log gives it

    def __post_init__(self) -> None:
        n = len(self.time_s)
        for name in ("time_s", *FIELDS):
            a = np.array(getattr(self, name), dtype=np.float64)
            if a.shape != (n,):
                raise ValueError(f"telemetry {name} has shape {a.shape}, not ({n},)")
            a.flags.writeable = False
            object.__setattr__(self, name, a)
        object.__setattr__(self, "end_s", float(self.end_s))
        if n == 0 or np.any(np.diff(self.time_s) <= 0) or not self.end_s >= self.time_s[-1]:
            raise ValueError("telemetry needs samples at strictly increasing times, ending at or after the last")

    def _within(self, t: np.ndarray) -> np.ndarray:
        """Whether each time lies in the telemetry's span, to within :data:`EDGE_TOLERANCE_S`. A block's end is the
        next block's start, so a frame at ``end_s`` (to the ms) is the first frame without telemetry; but a frame at
        the last sample's own time is covered even where ``end_s`` is that time (a CSV log)."""
        until = max(self.time_s[-1] + EDGE_TOLERANCE_S, self.end_s - EDGE_TOLERANCE_S)
        return (t >= self.time_s[0] - EDGE_TOLERANCE_S) & (t <= until)

    def __len__(self) -> int:
        return len(self.time_s)

    def has(self, name: str) -> bool:
        """Whether any sample carries ``name`` (one of :data:`FIELDS`)."""
        if name not in FIELDS:
            raise ValueError(f"no telemetry field {name!r}; fields are {', '.join(FIELDS)}")
        return bool(np.isfinite(getattr(self, name)).any())

    def at(self, times: np.ndarray) -> dict[str, np.ndarray]:
        """Each field linearly interpolated at ``times`` (seconds). Longitude, yaw and roll go the short way round
        (359 -> 1 passes through 0, not 180) and come back in [-180, 180). A field missing at one of the two
        bracketing samples stays NaN; after the last sample (until ``end_s``) the last one holds; a time outside
        the telemetry's span (:meth:`_within`) gets NaN everywhere rather than a clamped guess. Gaps are not checked
        here: that is :meth:`uncovered`'s."""
        t = np.asarray(times, dtype=np.float64)
        n = len(self)
        inside = self._within(t)
        i = np.clip(np.searchsorted(self.time_s, t, side="right") - 1, 0, n - 1)
        j = np.minimum(i + 1, n - 1)
        span = self.time_s[j] - self.time_s[i]
        with np.errstate(invalid="ignore", divide="ignore"):
            w = np.where(span > 0, np.clip((t - self.time_s[i]) / span, 0.0, 1.0), 0.0)
        out = {}
        for name in FIELDS:
            v = getattr(self, name)
            a, b = v[i], v[j]
            if name in _CIRCULAR:
                step = np.where(w == 0, 0.0, (b - a + 180.0) % 360.0 - 180.0)
                val = (a + w * step + 180.0) % 360.0 - 180.0
            else:
                val = np.where(w == 0, a, a + w * (b - a))  # exactly on a sample: its value, whatever comes next
            out[name] = np.where(inside, val, np.nan)
        return out

    def uncovered(self, times: np.ndarray, max_gap_s: float = 1.0) -> np.ndarray:
        """True for each time the telemetry does not cover: before the first sample or at/after ``end_s`` (see
        :meth:`_within`), or strictly between two samples more than ``max_gap_s`` apart (exactly 1.0 s apart is
        covered: old DJI models write one block a second)."""
        t = np.asarray(times, dtype=np.float64)
        out = ~self._within(t)
        i = np.searchsorted(self.time_s, t, side="right") - 1
        inner = (i >= 0) & (i < len(self) - 1)
        ii = i[inner]
        gap = self.time_s[ii + 1] - self.time_s[ii]
        out[inner] |= (t[inner] > self.time_s[ii]) & (gap > max_gap_s + 1e-9)
        return out


# ---------------------------------------------------------------------------------------------------- reading
def read_telemetry(path: Path) -> Telemetry:
    """A DJI .SRT or a CSV flight log, told apart by content: SRT if it has ``-->`` time lines, else CSV."""
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AreaInputError(f"{source}: cannot read the telemetry ({exc.strerror})") from None
    text = _decode(data, source)
    if not text.strip():
        raise AreaInputError(f"{source} line 1: empty, no telemetry samples")
    if "-->" in text:
        return parse_srt(text, source)
    first = next(n for n, line in enumerate(text.splitlines(), 1) if line.strip())
    if "," not in text.splitlines()[first - 1]:
        raise AreaInputError(f"{source} line {first}: neither an SRT (no '00:00:01,000 --> 00:00:02,000' time "
                             "lines) nor a CSV flight log (no comma-separated header)")
    return parse_csv(text, source)


def _decode(data: bytes, source: str) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace")
    if b"\0" in data:
        line = data.count(b"\n", 0, data.index(b"\0")) + 1
        raise AreaInputError(f"{source} line {line}: not a text file (a NUL byte); expected a DJI .SRT or a CSV")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")  # a degree sign saved by a Windows editor; the rest is ASCII


def find_sidecar(video: Path) -> Path | None:
    """The .SRT DJI writes beside a clip: ``DJI_0001.SRT`` (or ``.srt``) for ``DJI_0001.MP4``; None if none."""
    try:
        found = sorted(p for p in video.parent.iterdir() if p.is_file() and is_sidecar(p, {video.stem.lower()}))
    except OSError:
        return None
    exact = [p for p in found if p.stem == video.stem]
    return (exact or found or [None])[0]


def _clock_line(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def read_embedded(video: Path) -> Telemetry | None:
    """The telemetry a DJI camera embeds as a text subtitle stream of the clip (the .SRT's blocks as packets, each
    at its own time), or None when no subtitle stream of the file parses as one. GoPro GPMF and DJI's binary
    ``djmd`` tracks are not read."""
    import av

    from deidcli.video.probe import open_media

    try:
        with open_media(video) as c:
            streams = [s for s in c.streams if s.type == "subtitle"]
            for stream in streams:
                blocks = []
                for n, packet in enumerate(c.demux(stream), 1):
                    if not packet.size or packet.pts is None:
                        continue
                    start = float(packet.pts * packet.time_base)
                    end = start + float((packet.duration or 0) * packet.time_base)
                    data = bytes(packet)
                    if stream.codec_context.name == "mov_text":
                        data = data[2:]  # a two-byte length before the words
                    text = data.decode("utf-8", errors="replace")
                    blocks.append(f"{n}\n{_clock_line(start)} --> {_clock_line(end)}\n{text.strip()}\n")
                if not blocks:
                    continue
                try:
                    return parse_srt("\n".join(blocks), f"subtitle stream {stream.index} of {video}")
                except (AreaInputError, TelemetryUnusableError):
                    c.seek(0)
                    continue
    except av.error.FFmpegError:
        return None
    return None


def describe(t: Telemetry) -> dict:
    """What the report says about the telemetry used."""
    return {
        "source": t.source,
        "layout": t.layout,
        "samples": len(t),
        "first_s": round(float(t.time_s[0]), 3),
        "last_s": round(float(t.time_s[-1]), 3),
        "end_s": round(float(t.end_s), 3),
        "max_spacing_s": round(float(np.diff(t.time_s).max()), 3) if len(t) > 1 else None,
        "orientation": [f for f in ORIENTATION if t.has(f)],
        "fields": [f for f in FIELDS if t.has(f)],
    }


# --------------------------------------------------------------------------------------------------------- SRT
_CLOCK = r"(\d+):(\d{1,2}):(\d{1,2})[,.](\d{1,3})"  # DJI writes ',' before the ms; some tools write '.'
_TIME_LINE = re.compile(rf"^\s*{_CLOCK}\s*-->\s*{_CLOCK}\s*$")
_TAG = re.compile(r"<[^>]*>")
_KEYED = re.compile(r"(?<![\w.])(latitude|longitude|longtitude|rel_alt|abs_alt|altitude|focal_len|gb_yaw|gb_pitch|"
                    r"gb_roll)\s*:\s*([^\s\],]*)")
_GPS = re.compile(r"\bGPS\s*\(([^)]*)\)")
_GIMBAL = re.compile(r"\bG\.PRY\s*\(([^)]*)\)")
_BARO = re.compile(r"\b(?:BAROMETER|Hb)\s*[:(]\s*([^\s)]*)")
_HEIGHT = re.compile(r"(?:^|[\s,])H\s+(-?\d+(?:\.\d+)?)\s*m\b")  # "H 20.50m", not "H.S 0.00m/s"
_POSITION_KEYS = frozenset({"latitude", "longitude", "longtitude", "GPS"})
_NOT_GIVEN = frozenset({"n/a", "na", "nan"})


def parse_srt(text: str, source: str) -> Telemetry:
    """Every DJI layout in the module's docstring; a sample per block that has a position, at its start time."""
    blocks: list[_Block] = []
    for n, raw in enumerate(text.lstrip("\ufeff").splitlines(), 1):
        line = _TAG.sub(" ", raw)
        m = _TIME_LINE.match(line)
        if m:
            start, end = _clock(m.groups()[:4]), _clock(m.groups()[4:])
            blocks.append(_Block(start, max(start, end), n))
        elif "-->" in line:
            raise AreaInputError(f"{source} line {n}: time line {raw.strip()!r} is not "
                                 "'HH:MM:SS,mmm --> HH:MM:SS,mmm'")
        elif blocks:  # text before the first time line (a block number, a BOM) places nothing
            blocks[-1].scan(line, n, source)
    if not blocks:
        raise AreaInputError(f"{source} line 1: no SRT time lines ('00:00:01,000 --> 00:00:02,000')")
    samples = [s for s in (b.sample(source) for b in blocks) if s is not None]
    if not samples:
        raise TelemetryUnusableError(f"{source}: none of its {len(blocks)} subtitle blocks gives the aircraft's "
                                     "position (no GPS fix, or a model that writes none)")
    lat = np.array([s[2]["lat"] for s in samples])
    lon = np.array([s[2]["lon"] for s in samples])
    if np.all(np.abs(lat) <= math.pi / 2) and np.all(np.abs(lon) <= math.pi):
        raise TelemetryUnusableError(
            f"{source}: every position is within {math.pi / 2:.3f} degrees of latitude and {math.pi:.3f} of "
            "longitude of 0,0 (open Atlantic): these look like radians, which a Mavic Air 2 firmware wrote; "
            "refused rather than guessed")
    layout = Counter(s[3] for s in samples).most_common(1)[0][0]
    return _telemetry(source, layout, samples)


def _clock(parts: tuple[str, ...]) -> float:
    h, m, s, frac = parts
    return (int(h) * 3600 + int(m) * 60 + int(s)) + int(frac) / 10 ** len(frac)


class _Block:
    """One subtitle block: its time line and the raw values found in the lines after it."""

    def __init__(self, start: float, end: float, line: int) -> None:
        self.start, self.end, self.line = start, end, line
        self.raw: dict[str, tuple[str, int]] = {}  # key -> (token, line)

    def scan(self, line: str, n: int, source: str) -> None:
        found = [(k, v) for k, v in _KEYED.findall(line)]
        found += [(key, m.group(1)) for key, pattern in (("GPS", _GPS), ("G.PRY", _GIMBAL), ("BAROMETER", _BARO),
                                                         ("H", _HEIGHT)) if (m := pattern.search(line))]
        for key, token in found:
            if key in self.raw and key in _POSITION_KEYS:
                # Two positions in one block: a time line is missing, and the second would get the first's time.
                raise AreaInputError(f"{source} line {n}: a second position in the block timed at line "
                                     f"{self.line} (a missing time line?)")
            self.raw.setdefault(key, (token, n))

    def sample(self, source: str) -> tuple[float, float, dict[str, float], str] | None:
        """(start, end, fields, layout), or None where the block gives no position."""
        f = dict.fromkeys(FIELDS, math.nan)

        def num(key: str, what: str | None = None) -> float:
            if key not in self.raw:
                return math.nan
            token, line = self.raw[key]
            return _number(token, what or key, source, line)

        keyed = [k for k in ("latitude", "longitude", "longtitude") if k in self.raw]
        if keyed:
            where = self.raw[keyed[0]][1]
            f["lat"] = num("latitude")
            f["lon"] = num("longitude") if "longitude" in self.raw else num("longtitude", "longitude")
            modern = "rel_alt" in self.raw or "abs_alt" in self.raw
            mavic2 = not modern and ("longtitude" in self.raw or "altitude" in self.raw)
            layout = "dji-mavic2" if mavic2 else "dji-modern"
            f["rel_alt"], f["abs_alt"] = (num("altitude"), math.nan) if mavic2 else (num("rel_alt"), num("abs_alt"))
            f["yaw"], f["pitch"], f["roll"] = num("gb_yaw"), num("gb_pitch"), num("gb_roll")
            if "focal_len" in self.raw:
                token, line = self.raw["focal_len"]
                f["focal_len"] = _focal_mm(token, source, line)
        elif "GPS" in self.raw:
            token, where = self.raw["GPS"]
            parts = [p.strip() for p in token.split(",")]
            if len(parts) < 2:
                raise AreaInputError(f"{source} line {where}: GPS({token}) lacks longitude and latitude")
            a, b = (_number(p, "GPS value", source, where) for p in parts[:2])
            # GPS(lon, lat, satellites); the Matrice 300's GPS(lat, lon, 0.0M) is told by the unit on its third value
            f["lat"], f["lon"] = (a, b) if len(parts) > 2 and parts[2].endswith("M") else (b, a)
            if abs(f["lat"]) > 90:
                raise AreaInputError(f"{source} line {where}: GPS({token}) read as (longitude, latitude, ..) gives "
                                     f"latitude {f['lat']:g}, outside -90..90")
            layout = "dji-mavic-pro" if "H" in self.raw or "G.PRY" in self.raw else "dji-legacy"
            f["rel_alt"] = num("H", "H") if "H" in self.raw else num("BAROMETER", "height")
            if "G.PRY" in self.raw:
                pry, ln = self.raw["G.PRY"]
                angles = [_number(p, "G.PRY angle", source, ln) for p in pry.split(",")]
                if len(angles) != 3:
                    raise AreaInputError(f"{source} line {ln}: G.PRY({pry}) is not (pitch, roll, yaw)")
                f["pitch"], f["roll"], f["yaw"] = angles
        else:
            return None
        if math.isnan(f["lat"]) or math.isnan(f["lon"]) or (f["lat"] == 0 and f["lon"] == 0):
            return None  # "n/a", or 0,0 before the GPS has a fix
        _check_position(f["lat"], f["lon"], source, where)
        return self.start, self.end, f, layout


def _number(token: str, what: str, source: str, line: int) -> float:
    """A value as written, with a trailing unit (``0.0M``, ``-24.4°``) allowed; NaN for ``n/a``."""
    t = token.strip().replace("Â", "").rstrip("°")
    t = re.sub(r"(?<=\d)\s*[mM]$", "", t)
    if t.lower() in _NOT_GIVEN:
        return math.nan
    try:
        value = float(t)
    except ValueError:
        raise AreaInputError(f"{source} line {line}: {what} {token!r} is not a number") from None
    if math.isinf(value):
        raise AreaInputError(f"{source} line {line}: {what} {token!r} is not a number")
    return value


def _focal_mm(token: str, source: str, line: int) -> float:
    """35 mm-equivalent focal length in mm. Older cameras (Mavic 2, Air 2S) write tenths of a mm as an integer
    (``240`` = 24 mm); newer ones write mm with decimals, up to ``166.00`` on the Mavic 3 Pro's tele camera. So an
    integer over 100 is tenths, and a value written with decimals is mm whatever its size."""
    value = _number(token, "focal_len", source, line)
    return value / 10 if re.fullmatch(r"\s*\d+\s*", token) and value > 100 else value


def _check_position(lat: float, lon: float, source: str, line: int) -> None:
    if not -90 <= lat <= 90:
        raise AreaInputError(f"{source} line {line}: latitude {lat} is outside -90..90")
    if not -180 <= lon <= 180:
        raise AreaInputError(f"{source} line {line}: longitude {lon} is outside -180..180")


def _telemetry(source: str, layout: str, samples: list[tuple[float, float, dict[str, float], str]]) -> Telemetry:
    """Samples sorted by time; of several at one time the first in the file is kept."""
    samples = sorted(samples, key=lambda s: s[0])
    kept = [s for k, s in enumerate(samples) if k == 0 or s[0] > samples[k - 1][0]]
    cols = {name: np.array([s[2][name] for s in kept]) for name in FIELDS}
    return Telemetry(source=source, layout=layout, time_s=np.array([s[0] for s in kept]), end_s=kept[-1][1],
                     **cols)


# --------------------------------------------------------------------------------------------------------- CSV
_CSV_REQUIRED = {"time_s": "time", "lat": "lat", "lon": "lon", "rel_alt_m": "rel_alt", "yaw_deg": "yaw",
                 "pitch_deg": "pitch", "roll_deg": "roll"}
_CSV_OPTIONAL = {"hfov_deg": "hfov"}


def parse_csv(text: str, source: str) -> Telemetry:
    """A flight log with the header ``time_s, lat, lon, rel_alt_m, yaw_deg, pitch_deg, roll_deg[, hfov_deg]``."""
    rows = [(n, [c.strip() for c in next(csv.reader([line]))])
            for n, line in enumerate(text.lstrip("\ufeff").splitlines(), 1) if line.strip()]
    if not rows:
        raise AreaInputError(f"{source} line 1: empty, no telemetry samples")
    head_line, head = rows[0]
    names = [h.lower() for h in head]
    missing = [c for c in _CSV_REQUIRED if c not in names]
    if missing:
        raise AreaInputError(f"{source} line {head_line}: missing column(s) {', '.join(missing)}; a flight log's "
                             f"header is {', '.join(_CSV_REQUIRED)} (and optionally hfov_deg)")
    columns = {**_CSV_REQUIRED, **_CSV_OPTIONAL}
    index = {field: names.index(col) for col, field in columns.items() if col in names}
    samples: list[tuple[float, float, dict[str, float], str]] = []
    previous = -math.inf
    for n, cells in rows[1:]:
        if len(cells) != len(names):
            raise AreaInputError(f"{source} line {n}: {len(cells)} values for the header's {len(names)} columns")
        f = dict.fromkeys(FIELDS, math.nan)
        for col, field in columns.items():
            if field not in index:
                continue
            token = cells[index[field]]
            if col in _CSV_OPTIONAL and not token:
                continue
            value = _number(token, col, source, n)
            if math.isnan(value) and field in ("time", "lat", "lon"):
                raise AreaInputError(f"{source} line {n}: {col} {token!r} is not a number")
            f[field] = value
        t = f.pop("time")
        if t <= previous:
            raise AreaInputError(f"{source} line {n}: time_s {t:g} does not increase (the line before has "
                                 f"{previous:g})")
        previous = t
        _check_position(f["lat"], f["lon"], source, n)
        if f["lat"] == 0 and f["lon"] == 0:
            continue  # 0,0: no GPS fix
        samples.append((t, t, f, "csv"))
    if not samples:
        raise AreaInputError(f"{source} line {head_line}: a header but no samples with a position")
    return _telemetry(source, "csv", samples)
