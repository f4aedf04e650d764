"""Run the anonymizer over whole files: decode -> detect + anonymize -> encode, streamed with bounded queues."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from deidcli.anonymizer import FrameAnonymizer
from deidcli.config import DeidConfig
from deidcli.errors import DeidError, InvalidMediaError
from deidcli.media import Job
from deidcli.outputs import atomic_output
from deidcli.tracking import ByteTracker, CoverageSettings, TemporalCoverage
from deidcli.video import EncodeSettings, VideoReader, VideoWriter

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
    seconds: float = 0.0

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
            "frames_with_faces": int(sum(1 for n in self.faces_per_frame if n)),
            "faces_per_frame": self.faces_per_frame,
            "regions_per_frame": self.regions_per_frame,
            "filled_regions": int(sum(self.regions_per_frame) - sum(self.faces_per_frame)),
            "tracks": [
                {"id": tid, "first_frame": a, "last_frame": b, "detected_frames": n, "filled_frames": f}
                for tid, (a, b, n, f) in sorted(self.tracks.items())
            ],
            "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 3),
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


def process_video(
    job: Job,
    anonymizer: FrameAnonymizer,
    cfg: DeidConfig,
    on_start: StartHook | None = None,
    on_advance: AdvanceHook | None = None,
) -> FileResult:
    """Anonymize one video into ``job.dst``; on any failure nothing is left under that name."""
    result = FileResult(str(job.src), str(job.dst), "video")
    t0 = time.perf_counter()
    reader = VideoReader(job.src)
    info = reader.info
    result.width, result.height = info.width, info.height
    if on_start:
        on_start(info.frames or None, job.src.name)
    settings = EncodeSettings(cfg.codec, cfg.crf, cfg.preset, cfg.strip_metadata)
    with atomic_output(job.dst, cfg.overwrite, job.src) as tmp:
        writer = VideoWriter(info, settings, tmp)
        stop = threading.Event()
        decoded: queue.Queue = queue.Queue(QUEUE_FRAMES)
        done: queue.Queue = queue.Queue(QUEUE_FRAMES)

        def read() -> None:
            for frame in reader.frames():
                if not _put(decoded, frame, stop):
                    return
            _put(decoded, _DONE, stop)

        def write() -> None:
            while not stop.is_set():
                try:
                    item = done.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is _DONE:
                    return
                image, pts = item
                writer.write(image, pts)

        stages = [_Stage(read), _Stage(write)]
        for s in stages:
            s.start()
        tracker = ByteTracker(float(info.frame_rate or 25)) if cfg.track else None
        coverage = TemporalCoverage(CoverageSettings.for_rate(info.frame_rate, cfg.lookahead_s, cfg.hold_s))

        def emit(ready) -> bool:
            for frame, dets in ready:
                image = anonymizer.anonymize(frame.image, dets, frame.index)
                result.regions_per_frame.append(len(dets))
                if not _put_checked(done, (image, frame.pts), stages):
                    return False
                if on_advance:
                    on_advance(1)
            return True

        try:
            while True:
                item = _get(decoded, stages)
                if item is _DONE:
                    break
                dets = anonymizer.detect(item.image)
                result.faces_per_frame.append(len(dets))
                if tracker is not None:
                    dets.tracker_id = tracker.update(dets)
                if not emit(coverage.push(item.index, item, dets)):
                    break
            emit(coverage.flush())
            result.tracks = coverage.track_frames
            _put_checked(done, _DONE, stages)
            stages[1].join()
            _raise_stage_errors(stages)
            writer.close()
        except BaseException:
            stop.set()
            writer.abort()
            _drain(done)
            raise
        finally:
            stop.set()
            for s in stages:
                s.join(timeout=5)
    result.frames = len(result.faces_per_frame)
    result.seconds = time.perf_counter() - t0
    return result


def _get(q: queue.Queue, stages: list[_Stage]):
    while True:
        _raise_stage_errors(stages)
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if not stages[0].is_alive() and q.empty():
                _raise_stage_errors(stages)
                raise DeidError("decoder stopped without finishing the video")


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
    on_advance: AdvanceHook | None = None,
) -> FileResult:
    """Anonymize one still image; EXIF (with GPS) is kept unless ``strip_metadata``."""
    result = FileResult(str(job.src), str(job.dst), "image")
    t0 = time.perf_counter()
    if job.src.stat().st_size == 0:
        raise InvalidMediaError(f"{job.src}: file is empty")
    try:
        with Image.open(job.src) as im:
            im.load()
            fmt = im.format
            exif = im.info.get("exif")
            icc = im.info.get("icc_profile")
            rgb = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InvalidMediaError(f"{job.src}: not a readable image ({exc.__class__.__name__})") from None
    if on_start:
        on_start(1, job.src.name)
    out, dets = anonymizer(rgb, 0)
    result.faces_per_frame = result.regions_per_frame = [len(dets)]
    result.frames = 1
    result.height, result.width = rgb.shape[:2]
    save_kwargs: dict = {}
    if not cfg.strip_metadata:
        if exif:
            save_kwargs["exif"] = exif
        if icc:
            save_kwargs["icc_profile"] = icc
    if fmt == "JPEG":
        save_kwargs.update(quality=95, subsampling=0)
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
) -> list[FileResult]:
    """Process every job; a failed file is recorded with its error and the others go on."""
    anonymizer = anonymizer or FrameAnonymizer.from_config(cfg)
    results = []
    for job in jobs:
        fn = process_video if job.kind == "video" else process_image
        try:
            results.append(fn(job, anonymizer, cfg, on_start, on_advance))
        except DeidError as exc:
            results.append(
                FileResult(str(job.src), str(job.dst), job.kind, "error", exc.message, int(exc.exit_code))
            )
    return results
