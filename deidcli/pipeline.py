"""Run the anonymizer over whole files: decode -> detect + anonymize -> encode, streamed with bounded queues."""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import threading
import time
from functools import partial
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from deidcli.anonymizer import FrameAnonymizer, eight_bit
from deidcli.areas.places import Places, VideoPlaces
from deidcli.config import DeidConfig
from deidcli.consent import ConsentLog
from deidcli.covers import cover_suffix, read_cover, write_cover
from deidcli.detection.camera_motion import CameraMotion
from deidcli.detection.keyframes import KeyframeCount, keyframe_detections
from deidcli.detection.tile_schedule import tile_every
from deidcli.detections import Detections
from deidcli.detections_io import RegionsWriter, Reviewed, detections_path, read_detections
from deidcli.errors import DecodeError, DeidError, InvalidMediaError
from deidcli.image_io import JPEG_OPTIONS, jpeg_round_trip, open_image
from deidcli.media import Job
from deidcli.methods.regions import FallbackLog
from deidcli.methods.stored_check import StoredCheck
from deidcli.outputs import atomic_output, temporary_beside
from deidcli.positions import has_positions
from deidcli.review.corrections import Corrections
from deidcli.targets import TARGETS
from deidcli.timing import StageClock
from deidcli.tracking import ByteTracker, CoverageSettings, TemporalCoverage
from deidcli.video import EncodeSettings, VideoReader, VideoWriter
from deidcli.video.containers import TEXT_SUBTITLES, plan_output, single_stream_plan
from deidcli.video.grafts import write_graft_file
from deidcli.video.probe import subtitle_text
from deidcli.video.reader import Frame
from deidcli.video.writer import Extras

QUEUE_FRAMES = 4  # frames buffered between stages: bounds memory whatever the video's length

# Progress hooks: (total frames or None, description) at the start, then the number of frames just done.
StartHook = Callable[[int | None, str], None]
AdvanceHook = Callable[[int], None]


@dataclass
class FileResult:
    input: str
    output: str
    kind: str
    status: str = "ok"
    error: str | None = None
    exit_code: int = 0
    frames: int = 0
    width: int = 0
    height: int = 0
    faces_per_frame: list[int] = field(default_factory=list)  # detections by the detector
    regions_per_frame: list[int] = field(default_factory=list)  # regions anonymized: detections + tracked fills
    tracks: dict[int, list[int]] = field(default_factory=dict)  # id -> [first, last, detected, filled frames]
    consent: ConsentLog = field(default_factory=ConsentLog)  # faces left visible under --consented
    detections_by_target: dict[str, int] = field(default_factory=dict)
    fallbacks: FallbackLog = field(default_factory=FallbackLog)  # regions a method could not do: frosted instead
    keyframes: KeyframeCount = field(default_factory=KeyframeCount)  # how each frame's regions were found
    tiles: KeyframeCount | None = None  # the same for the tiles' layer, where frames are large enough for tiles
    stages: StageClock = field(default_factory=StageClock)  # wall seconds in decode, detect, tiles, anonymize, encode
    notes: list[str] = field(default_factory=list)  # streams converted or left out, pixel formats, and why
    streams: list[dict] = field(default_factory=list)  # what the output holds of each source stream
    other_video: list[dict] = field(default_factory=list)  # the file's other video streams, anonymized too
    frames_undecodable: int = 0  # source packets that gave no picture (before a keyframe, hidden by an edit list)
    audit_leak_rate: float | None = None  # with --audit / --fail-on-leak
    duration_s: float | None = None  # of the source video, from its container
    places: dict | None = None  # --areas / --geofence: each place's frames placed, tracked, uncertain, masked whole
    seconds: float = 0.0

    def count(self, dets: Detections) -> None:
        """Add one frame's detections (what the detector found, before tracking fills)."""
        self.faces_per_frame.append(len(dets))
        for cid in np.unique(dets.class_id):
            name = TARGETS[int(cid)]
            self.detections_by_target[name] = self.detections_by_target.get(name, 0) + int((dets.class_id == cid).sum())

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {
            "input": self.input,
            "output": self.output,
            "kind": self.kind,
            "status": self.status,
            "error": self.error,
            "exit_code": self.exit_code,
            "frames": self.frames,
            "width": self.width,
            "height": self.height,
            "faces_total": int(sum(self.faces_per_frame)),
            "detections_by_target": self.detections_by_target,
            "frames_with_faces": int(sum(1 for n in self.faces_per_frame if n)),
            "faces_per_frame": self.faces_per_frame,
            "frames_detected": self.keyframes.detected,
            "frames_interpolated": self.keyframes.interpolated,
            "frames_searched": self.keyframes.searched,
            **({"tiles": {"frames_tiled": self.tiles.detected, "frames_interpolated": self.tiles.interpolated,
                          "frames_searched": self.tiles.searched}} if self.tiles is not None else {}),
            "regions_per_frame": self.regions_per_frame,
            "filled_regions": int(sum(self.regions_per_frame) - sum(self.faces_per_frame)),
            "tracks": [
                {"id": tid, "first_frame": a, "last_frame": b, "detected_frames": n, "filled_frames": f}
                for tid, (a, b, n, f) in sorted(self.tracks.items())
            ],
            "consented_visible": self.consent.as_list(),
            "regions_fallback": self.fallbacks.total,
            "regions_fallback_reasons": self.fallbacks.as_dict(),
            "frames_undecodable": self.frames_undecodable,
            "streams": self.streams,
            "other_video_streams": self.other_video,
            "notes": self.notes,
            "audit_leak_rate": self.audit_leak_rate,
            **({"places": self.places} if self.places is not None else {}),
            "duration_s": self.duration_s,
            "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 3),
            "stage_seconds": {k: round(v, 3) for k, v in self.stages.seconds.items()},
        }


_DONE = object()


class _Stage(threading.Thread):
    """A daemon thread that moves items through a bounded queue and keeps the first exception it meets."""

    def __init__(self, target: Callable[[], None]) -> None:
        super().__init__(daemon=True)
        self._target_fn = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._target_fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which re-raises it
            self.error = exc


def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def tracked_regions(
    frames: Iterable[Frame], anonymizer: FrameAnonymizer, cfg: DeidConfig, frame_rate, result: FileResult
) -> Iterator[tuple[Frame, Detections]]:
    """Detect, track and cover: each frame with every region to anonymize, a look-ahead's worth of frames late.

    Two layers of detection, each with its keyframes (deidcli/detection/keyframes.py): the whole frame on every
    ``detect_every``-th frame and, on frames large enough for tiles, the tiles on every ``tile_every``-th
    (deidcli/detection/tile_schedule.py); their faces are merged before tracking."""
    tracker = ByteTracker(float(frame_rate or 25)) if cfg.track else None
    coverage: TemporalCoverage[Frame] = TemporalCoverage(
        CoverageSettings.for_rate(frame_rate, cfg.lookahead_s, cfg.hold_s)
    )
    batch = cfg.detect_batch or (8 if anonymizer.device.type == "cuda" else 1)
    clock = result.stages
    it = iter(frames)
    first = next(it, None)
    if first is None:
        return
    layer = anonymizer.tile_layer(first.image.shape[1], first.image.shape[0])
    items: Iterable = itertools.chain([first], it)
    image_of: Callable = lambda f: f.image  # noqa: E731
    if layer is not None:
        result.tiles = KeyframeCount()
        detect_tiles = clock.timed("tiles", lambda image: layer.detect(eight_bit(image)))
        near_tiles = clock.timed("tiles", lambda image, lone: layer.near(eight_bit(image), lone))
        motion = CameraMotion()
        items = _measured(items, clock.timed("tiles", motion.measure))
        items = keyframe_detections(items, image_of, detect_tiles, tile_every(cfg, frame_rate), result.tiles,
                                    near_tiles, motion=lambda f: motion.offset(f.index))
        image_of = lambda pair: pair[0].image  # noqa: E731
    tiles = layer is None  # without a layer of their own, tiles (if any) run with the whole frame
    for item, dets in keyframe_detections(
        items, image_of, clock.timed("detect", partial(anonymizer.detect_keyframe, tiles=tiles)), cfg.detect_every,
        result.keyframes, clock.timed("detect", partial(anonymizer.detect_near, tiles=tiles)),
        detect_many=clock.timed("detect", partial(anonymizer.detect_keyframes, tiles=tiles)), batch=batch,
    ):
        frame = item
        if layer is not None:
            frame, tiled = item
            dets = layer.merged(dets, tiled)
        result.count(dets)
        if tracker is not None:
            dets.tracker_id = tracker.update(dets)
        yield from coverage.push(frame.index, frame, dets)
    yield from coverage.flush()
    result.tracks = coverage.track_frames


def _measured(frames: Iterable[Frame], measure: Callable[[int, np.ndarray], None]) -> Iterator[Frame]:
    for frame in frames:
        measure(frame.index, frame.image)
        yield frame


def stored_regions(
    frames: Iterable[Frame], path: Path | Reviewed, info, result: FileResult
) -> Iterator[tuple[Frame, Detections]]:
    """Regions from a ``deid detect`` file instead of the detector, with a reviewer's corrections where ``path``
    names them (:class:`~deidcli.detections_io.Reviewed`); the file must cover every frame."""
    corrections = None
    if isinstance(path, Reviewed):
        corrections = Corrections.load(path.corrections)
        if (corrections.width, corrections.height) != (info.width, info.height):
            raise InvalidMediaError(f"{path.corrections}: corrections are for a {corrections.width}x"
                                    f"{corrections.height} video, not {info.width}x{info.height}")
        path = path.detections
        result.notes.append(f"corrections applied: {corrections.summary()}")
    rules = corrections.rules() if corrections is not None else None
    stored = read_detections(path, info.width, info.height)
    for frame in frames:
        dets = next(stored, None)
        if dets is None:
            raise InvalidMediaError(f"{path}: no detections for frame {frame.index}; rerun `deid detect`")
        if corrections is not None:
            dets = corrections.apply(frame.index, dets, rules)
        result.count(dets[dets.confidence > 0])
        yield frame, dets
    if next(stored, None) is not None:
        raise InvalidMediaError(f"{path}: holds more frames than the video; was it made for another file?")


class _Producer:
    """A stage that runs an iterator (the decoder's frames, the detector's regions) in its own thread into a
    bounded queue, read back as a plain iterator."""

    def __init__(self, items: Iterable, stop: threading.Event) -> None:
        self.queue: queue.Queue = queue.Queue(QUEUE_FRAMES)
        self._items, self._stop = items, stop
        self.stage = _Stage(self._run)

    def _run(self) -> None:
        for item in self._items:
            if not _put(self.queue, item, self._stop):
                return
        _put(self.queue, _DONE, self._stop)

    def items(self, stages: list[_Stage]) -> Iterator:
        while True:
            item = _get(self.queue, stages, self.stage)
            if item is _DONE:
                return
            yield item


def _anonymize_stream(
    reader: VideoReader,
    writer: VideoWriter,
    anonymizer: FrameAnonymizer,
    cfg: DeidConfig,
    result: FileResult,
    on_advance: AdvanceHook | None = None,
    detections: Path | Reviewed | None = None,
    check: StoredCheck | None = None,
    places: VideoPlaces | None = None,
    on_regions: Callable[[Frame, Detections], None] | None = None,
) -> None:
    """Decode | detect + anonymize | encode one video stream through ``writer``, which is closed (or aborted on any
    failure) before this returns. The probes of the faces given to a method an encoder can undo are added to
    ``check``, by the index of the frame written. ``places`` adds each frame's areas to its regions (and takes
    away those inside a keep area)."""
    info = reader.info
    stop = threading.Event()
    clock = result.stages
    decoder = _Producer(clock.timed_iter("decode", reader.frames()), stop)
    done: queue.Queue = queue.Queue(QUEUE_FRAMES)
    encode = clock.timed("encode", writer.write)

    def write() -> None:
        while not stop.is_set():
            try:
                item = done.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is _DONE:
                return
            encode(*item)

    stages = [decoder.stage, _Stage(write)]
    frames = decoder.items(stages)
    if detections is not None:
        regions = stored_regions(frames, detections, info, result)
    else:
        regions = tracked_regions(frames, anonymizer, cfg, info.frame_rate, result)
    # Detection and tracking in a thread of their own, so the detector's next frame overlaps this frame's
    # anonymization (both release the GIL): on 2 cores the main thread had done them one after the other.
    found = _Producer(regions, stop)
    stages.append(found.stage)
    try:
        for s in stages:  # inside the try: a signal now still stops and joins every thread before deid exits
            s.start()
        for frame, dets in found.items(stages):
            if places is not None:
                dets = places.apply(dets, frame.index, frame.pts)
            if on_regions is not None:
                on_regions(frame, dets)
            changed: list[tuple[int, int, int, int]] = []
            given: list = []
            t = time.perf_counter()
            # the frame methods (dedetect) must hold in the picture as stored, 4:2:0 and all, not only in RGB
            coding = writer.stored if frame.image.dtype == np.uint8 else None
            image = anonymizer.anonymize(frame.image, dets, frame.index, result.consent, result.fallbacks, changed,
                                         coding=coding, given=given)
            clock.add("anonymize", time.perf_counter() - t)
            for method, probe, faces in given if check is not None else ():
                check.add(len(result.regions_per_frame), method, probe, faces)  # by the index written
            result.regions_per_frame.append(len(dets))
            # the writer pastes only what changed into the decoded picture, when the reader kept it
            if not _put_checked(done, (image, frame.pts, frame.planes, changed), stages):
                break
            if on_advance:
                on_advance(1)
        _put_checked(done, _DONE, stages)
        stages[1].join()
        _raise_stage_errors(stages)
        clock.timed("encode", writer.close)()
    except BaseException:
        stop.set()
        # The encoder thread may be inside a mux on the writer's container: kill ffmpeg (so a write blocked on its
        # pipe fails at once), wait for every thread, and only then close the container. Closing it under a
        # running mux crashed deid with SIGSEGV on a signal mid-run, now and then, instead of exiting with 130.
        writer.kill_encoder()
        _drain(done)
        _join_started(stages)
        writer.abort()
        raise
    finally:
        stop.set()
        _join_started(stages)
    result.frames_undecodable += reader.undecodable


def _join_started(stages: list[threading.Thread]) -> None:
    for s in stages:
        if s.ident is not None:  # started
            s.join(timeout=30)  # each polls `stop` every 0.1 s; a native call (a detector pass) ends first


def _prepare_extras(job: Job, info, plan, anonymizer: FrameAnonymizer, cfg: DeidConfig, settings: EncodeSettings,
                    result: FileResult, temps: contextlib.ExitStack, on_advance: AdvanceHook | None) -> Extras:
    """Anonymize the file's other video streams and cover pictures, and gather its opaque telemetry, into hidden
    files beside the output (removed when ``temps`` closes)."""
    extras = Extras()

    def temporary(tag: str, suffix: str) -> Path:
        path = temporary_beside(job.dst, tag, suffix)
        temps.callback(path.unlink, missing_ok=True)
        return path

    video_indices = [v.index for v in info.video_streams]  # file order, as VideoReader counts them
    for o in plan.streams:
        s = o.source
        if o.action != "encode" or s.index == info.index:
            continue
        if s.role == "video":
            reader = VideoReader(job.src, video=video_indices.index(s.index), deep=True, planes=True)
            path = temporary(f"stream{s.index}", ".nut")
            part = FileResult(str(job.src), str(path), "video")
            writer = VideoWriter(reader.info, settings, path, single_stream_plan(reader.info, plan.encoder))
            _anonymize_stream(reader, writer, anonymizer, cfg, part, on_advance)
            result.other_video.append({"stream": s.index, "frames": len(part.faces_per_frame),
                                       "detections": int(sum(part.faces_per_frame)),
                                       "regions_fallback": part.fallbacks.as_dict()})
            result.fallbacks.merge(part.fallbacks)
            extras.pictures[s.index] = path
        elif s.role == "cover":
            picture = read_cover(job.src, s)
            if picture is None:
                raise DecodeError(f"{job.src}: cover picture (stream {s.index}) cannot be decoded, so it cannot "
                                  f"be anonymized")
            anonymized, dets = anonymizer(picture, 0, result.consent, result.fallbacks)
            path = temporary(f"cover{s.index}", cover_suffix(s))
            write_cover(anonymized, s, path)
            result.notes.append(f"stream {s.index}: cover picture anonymized ({len(dets)} detections)")
            extras.pictures[s.index] = path
    grafts = [o.source for o in plan.streams if o.action == "graft"]
    if grafts:
        extras.grafts = temporary("telemetry", ".mp4")
        write_graft_file(job.src, grafts, extras.grafts)
        names = ", ".join(f"{g.fourcc} ({g.metadata.get('handler_name', 'no name')})" for g in grafts)
        result.notes.append(f"telemetry tracks copied as they are: {names}")
    return extras


def _subtitles_with_positions(info, cfg: DeidConfig) -> dict[int, str]:
    """Under --strip-metadata, the text subtitle tracks that carry GPS positions (cameras that embed their
    telemetry as subtitles): they go with the rest of the metadata."""
    if not cfg.strip_metadata:
        return {}
    return {s.index: "it carries GPS positions (--strip-metadata)" for s in info.streams
            if s.role == "subtitle" and s.codec in TEXT_SUBTITLES and has_positions(subtitle_text(info.path, s.index))}


def encode_quality(cfg: DeidConfig, anonymizer: FrameAnonymizer, notes: list[str]) -> int:
    """The crf to encode at: the configured one, else 18 (visually lossless), or 0 where a method's change is one an
    encoder can quantize away (ifgvm, dedetect: checked after encoding, exit 14), so their default run can pass."""
    if cfg.crf is not None:
        return cfg.crf
    fragile = sorted({s.method.name for s in anonymizer.styles.values() if s.method.stored_probe is not None})
    if fragile:
        notes.append(f"{', '.join(fragile)}: encoded losslessly (crf 0), as a lossy encoder undoes the change")
        return 0
    return EncodeSettings.crf


def process_video(
    job: Job,
    anonymizer: FrameAnonymizer,
    cfg: DeidConfig,
    on_start: StartHook | None = None,
    on_advance: AdvanceHook | None = None,
    detections: Path | Reviewed | None = None,
    places: Places | None = None,
) -> FileResult:
    """Anonymize one video into ``job.dst``; on any failure nothing is left under that name.

    Every video stream is anonymized (a second camera, a cover picture), every other stream is kept as the plan
    says (:func:`deidcli.video.containers.plan_output`). With ``detections`` (a ``deid detect`` file) its regions
    are used for the first video stream and the detector does not run there. ``places`` (areas, geofences) are
    placed in the first video stream's frames; its telemetry is checked and its ground tracked before any output.
    """
    result = FileResult(str(job.src), str(job.dst), "video")
    t0 = time.perf_counter()
    # 10-bit sources keep their precision outside the faces; 4:2:0 ones their decoded pixels
    reader = VideoReader(job.src, deep=True, planes=True)
    info = reader.info
    result.width, result.height, result.duration_s = info.width, info.height, info.duration_s
    settings = EncodeSettings(cfg.codec, encode_quality(cfg, anonymizer, result.notes), cfg.preset,
                              cfg.strip_metadata, cfg.exact_size)
    plan = plan_output(info, job.dst, cfg.codec, cfg.strip_metadata, _subtitles_with_positions(info, cfg))
    result.notes += plan.notes
    result.streams = [{"index": o.source.index, "type": o.source.type, "codec": o.source.codec,
                       "fourcc": o.source.fourcc or None, "action": o.action,
                       **({"to": o.codec} if o.action in ("encode", "convert") else {})} for o in plan.streams]
    video_places = None
    if places is not None:
        if places.needs_ground and on_start:
            on_start(info.frames or None, f"{job.src.name}: tracking the ground")
        video_places = places.for_video(job.src, info, on_advance if places.needs_ground else None)
    if on_start:
        on_start(sum(s.packets for s in info.video_streams) or None, job.src.name)
    with atomic_output(job.dst, cfg.overwrite, job.src) as tmp, contextlib.ExitStack() as temps:
        extras = _prepare_extras(job, info, plan, anonymizer, cfg, settings, result, temps, on_advance)
        writer = VideoWriter(info, settings, tmp, plan, extras)
        if writer.pix_fmt_note:
            result.notes.append(f"stream {info.index}: {writer.pix_fmt_note}")
        check = StoredCheck()
        kept = temps.enter_context(_KeptRegions(job.dst, job.src, info)) if cfg.keep_detections else None
        _anonymize_stream(reader, writer, anonymizer, cfg, result, on_advance, detections, check, video_places,
                          kept.write if kept else None)
        # the adversarial methods are made for 8-bit frames: the file as encoded must keep them, or none is published
        if note := check.verify(tmp):
            result.notes.append(note)
        if kept is not None:
            kept.publish()
            result.notes.append(f"regions kept for `deid review` in {kept.path.name}")
    if result.frames_undecodable:
        result.notes.append(f"{result.frames_undecodable} frame(s) of the source cannot be decoded (no keyframe "
                            f"before them, or hidden by an edit list): nothing of them is written")
    if video_places is not None:
        result.places = video_places.report()
        if result.other_video:
            result.notes.append("areas and geofences are placed in the main video stream only; the other video "
                                "streams had their faces (and other targets) anonymized")
    result.frames = len(result.faces_per_frame)
    result.seconds = time.perf_counter() - t0
    return result


class _KeptRegions:
    """The regions a run anonymized, written as a ``deid detect`` file beside the output (``--keep-detections``):
    ``deid review`` shows them and ``deid run --detections`` renders from them again. Published with the output,
    never half written."""

    def __init__(self, dst: Path, src: Path, info) -> None:
        self.path = detections_path(dst)
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self._fh = open(self._tmp, "w")
        self._lines = RegionsWriter(self._fh, src, info)

    def write(self, frame: Frame, dets: Detections) -> None:
        self._lines.write(frame.index, frame.pts, dets)

    def publish(self) -> None:
        self._fh.close()
        os.replace(self._tmp, self.path)

    def __enter__(self) -> "_KeptRegions":
        return self

    def __exit__(self, *exc) -> None:
        self._fh.close()
        self._tmp.unlink(missing_ok=True)


def detect_video(
    src: Path,
    dst: Path,
    anonymizer: FrameAnonymizer,
    cfg: DeidConfig,
    on_start: StartHook | None = None,
    on_advance: AdvanceHook | None = None,
) -> FileResult:
    """Write the regions ``deid run`` would anonymize, one JSON line per frame, without writing video."""
    result = FileResult(str(src), str(dst), "detections")
    t0 = time.perf_counter()
    reader = VideoReader(src)
    info = reader.info
    result.width, result.height = info.width, info.height
    if on_start:
        on_start(info.frames or None, src.name)
    stop = threading.Event()
    decoder = _Producer(reader.frames(), stop)
    try:
        decoder.stage.start()
        with atomic_output(dst, cfg.overwrite, src) as tmp, open(tmp, "w") as fh:
            lines = RegionsWriter(fh, src, info)
            for frame, dets in tracked_regions(decoder.items([decoder.stage]), anonymizer, cfg, info.frame_rate, result):
                lines.write(frame.index, frame.pts, dets)
                result.regions_per_frame.append(len(dets))
                if on_advance:
                    on_advance(1)
    finally:
        stop.set()
        if decoder.stage.ident is not None:
            decoder.stage.join(timeout=30)
    result.frames = len(result.faces_per_frame)
    result.seconds = time.perf_counter() - t0
    return result


def _get(q: queue.Queue, stages: list[_Stage], source: _Stage | None = None):
    """The next item of ``q``, filled by the ``source`` stage (the decoder, ``stages[0]``, by default)."""
    source = source or stages[0]
    while True:
        _raise_stage_errors(stages)
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if not source.is_alive() and q.empty():
                _raise_stage_errors(stages)
                raise DeidError("a stage stopped without finishing the video") from None


def _put_checked(q: queue.Queue, item, stages: list[_Stage]) -> bool:
    while True:
        _raise_stage_errors(stages)
        if not stages[1].is_alive():
            return False
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue


def _raise_stage_errors(stages: list[_Stage]) -> None:
    for s in stages:
        if s.error is not None:
            raise s.error


def _drain(q: queue.Queue) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return


def process_image(
    job: Job, anonymizer: FrameAnonymizer, cfg: DeidConfig, on_start: StartHook | None = None,
    on_advance: AdvanceHook | None = None, places: Places | None = None,
) -> FileResult:
    """Anonymize one still image; EXIF (with GPS) is kept unless ``strip_metadata``."""
    result = FileResult(str(job.src), str(job.dst), "image")
    t0 = time.perf_counter()
    if job.src.stat().st_size == 0:
        raise InvalidMediaError(f"{job.src}: file is empty")
    try:
        with open_image(job.src) as im:
            im.load()
            fmt = im.format
            exif = im.info.get("exif")
            icc = im.info.get("icc_profile")
            rgb = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InvalidMediaError(f"{job.src}: not a readable image ({exc.__class__.__name__})") from None
    if on_start:
        on_start(1, job.src.name)
    # A whole-frame method (de-detection) checks its result as it will be stored: a JPEG reads back changed.
    coding = partial(jpeg_round_trip, **JPEG_OPTIONS) if fmt == "JPEG" else None
    dets = anonymizer.detect(rgb)
    result.count(dets)
    regions = dets
    if places is not None:
        photo = places.for_image(job.src, rgb.shape[1], rgb.shape[0])
        regions = photo.apply(dets, 0, None)
        result.places = photo.report()
    out = anonymizer.anonymize(rgb, regions, 0, result.consent, result.fallbacks, coding=coding)
    result.regions_per_frame = [len(regions)]
    result.frames = 1
    result.height, result.width = rgb.shape[:2]
    save_kwargs: dict = {}
    if not cfg.strip_metadata:
        if exif:
            save_kwargs["exif"] = exif
        if icc:
            save_kwargs["icc_profile"] = icc
    if fmt == "JPEG":
        save_kwargs.update(JPEG_OPTIONS)
    with atomic_output(job.dst, cfg.overwrite, job.src) as tmp:
        Image.fromarray(out).save(tmp, format=fmt or None, **save_kwargs)
    if on_advance:
        on_advance(1)
    result.seconds = time.perf_counter() - t0
    return result


def run_jobs(
    jobs: Iterable[Job],
    cfg: DeidConfig,
    anonymizer: FrameAnonymizer | None = None,
    on_start: StartHook | None = None,
    on_advance: AdvanceHook | None = None,
    detections: Path | Reviewed | None = None,
    places: Places | None = None,
) -> list[FileResult]:
    """Process every job; a failed file is recorded with its error and the others go on. ``places``: the areas
    and geofences of ``cfg``, read once (read here when not given)."""
    places = places or Places.from_config(cfg)
    anonymizer = anonymizer or FrameAnonymizer.from_config(cfg)
    results = []
    for job in jobs:
        try:
            if job.kind == "video":
                results.append(process_video(job, anonymizer, cfg, on_start, on_advance, detections, places))
            else:
                results.append(process_image(job, anonymizer, cfg, on_start, on_advance, places))
        except DeidError as exc:
            results.append(
                FileResult(str(job.src), str(job.dst), job.kind, "error", exc.message, int(exc.exit_code))
            )
    return results
