"""What makes an output of a corpus case correct: nothing lost, every face anonymized.

:func:`problems` compares an input with deid's output and lists, in words, everything that was lost or changed
that should not have been: frames, timestamps, size, rotation, colour tags, streams of every kind with their
codecs, languages, titles and flags, chapters, global metadata, audio length, and any face still visible (in every
video stream and in the cover picture). An empty list is a correct output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

# Tags a muxer writes of its own accord; they say nothing about the content.
MUXER_TAGS = {"encoder", "major_brand", "minor_version", "compatible_brands", "duration", "ENCODER", "DURATION",
              "_STATISTICS_TAGS", "_STATISTICS_WRITING_APP", "_STATISTICS_WRITING_DATE_UTC", "BPS", "NUMBER_OF_FRAMES",
              "NUMBER_OF_BYTES", "vendor_id", "handler_name", "timecode",
              # MXF identifies each new file with new ids
              "material_package_umid", "product_uid", "uid", "generation_uid", "company_name", "product_name",
              "product_version", "toolkit_version", "application_platform"}
STREAM_TAGS = ("language", "title")
DISPOSITIONS = ("default", "forced", "attached_pic")


@dataclass
class StreamView:
    type: str
    codec: str | None
    tags: dict
    flags: tuple[str, ...]
    duration: float | None  # from its packets: first start to last end
    handler: str | None


@dataclass
class FileView:
    streams: list[StreamView]
    tags: dict
    chapters: list[tuple[float, float]]


def _flags(stream) -> tuple[str, ...]:
    d = stream.disposition
    return tuple(n for n in DISPOSITIONS if d & getattr(av.stream.Disposition, n))


def view(path: Path) -> FileView:
    with av.open(str(path), metadata_errors="ignore") as c:
        spans: dict[int, list[float]] = {}
        for p in c.demux():
            if p.pts is not None and p.size and p.time_base:
                start, end = float(p.pts * p.time_base), float((p.pts + (p.duration or 0)) * p.time_base)
                a, b = spans.get(p.stream.index, [start, end])
                spans[p.stream.index] = [min(a, start), max(b, end)]
        streams = []
        for s in c.streams:
            span = spans.get(s.index)
            streams.append(StreamView(
                s.type, s.codec_context.codec.canonical_name if s.codec_context else None,
                {k: v for k, v in s.metadata.items() if k in STREAM_TAGS}, _flags(s),
                span[1] - span[0] if span else None, s.metadata.get("handler_name"),
            ))
        chapters = [(round(float(ch["start"] * ch["time_base"]), 3), round(float(ch["end"] * ch["time_base"]), 3))
                    for ch in c.chapters()]
        return FileView(streams, dict(c.metadata), chapters)


def _is_cover(s: StreamView) -> bool:
    return s.type == "video" and "attached_pic" in s.flags


def _timecode(s: StreamView, codec: str | None) -> bool:
    return s.type == "data" and codec == "none" and (s.handler or "").lower().find("time") >= 0


def _by_type(v: FileView, kind: str) -> list[StreamView]:
    if kind == "video":
        return [s for s in v.streams if s.type == "video" and not _is_cover(s)]
    if kind == "cover":
        return [s for s in v.streams if _is_cover(s)]
    return [s for s in v.streams if s.type == kind]


def frames(path: Path, stream: int = 0) -> tuple[list[float], list[np.ndarray], dict]:
    """Timestamps (s), RGB pictures and first-frame properties of the ``stream``-th video stream (not cover art)."""
    from deidcli.video.isobmff import clean_apertures

    with av.open(str(path), metadata_errors="ignore") as c:
        vs = [s for s in c.streams.video if not s.disposition & av.stream.Disposition.attached_pic][stream]
        # a clean aperture at the top left: the picture padded to even sides for 4:2:0 chroma, shown at its size
        left, top, width, height = clean_apertures(path).get(vs.id, (0, 0, None, None))
        crop = (slice(None, height), slice(None, width)) if not (left or top) else (slice(None), slice(None))
        times, images, props = [], [], {}
        for f in c.decode(vs):
            if not props:
                props = {"size": (width or f.width, height or f.height) if not (left or top) else (f.width, f.height),
                         "rotation": int(round(getattr(f, "rotation", 0) or 0))}
                for key in ("color_primaries", "color_trc", "colorspace", "color_range"):
                    props[key] = int(getattr(f, key, 0) or 0)
            times.append(float(f.pts * f.time_base) if f.pts is not None else float("nan"))
            images.append(f.to_ndarray(format="rgb24")[crop])
        return times, images, props


def cover(path: Path) -> np.ndarray | None:
    import io

    from PIL import Image

    with av.open(str(path), metadata_errors="ignore") as c:
        for s in c.streams.video:
            if s.disposition & av.stream.Disposition.attached_pic:
                for p in c.demux(s):
                    if p.size:
                        return np.asarray(Image.open(io.BytesIO(bytes(p))).convert("RGB"))
    return None


def faces_left(original: list[np.ndarray], output: list[np.ndarray], detector, confirmer=None) -> list[str]:
    """Faces found in the original still visible in the output, by the audit's rule: CenterFace at full size,
    candidates scored 0.5-0.8 confirmed by MTCNN; a face leaks when its region is unchanged (SSIM >= 0.5) or a
    confident face (>= 0.8) is still detected there."""
    from skimage.metrics import structural_similarity

    from deidcli.detections import box_iou

    left = []
    for i, (a, b) in enumerate(zip(original, output)):
        dets = detector.detect(a, 1.0)
        keep = dets.confidence >= 0.5
        if confirmer is not None:
            keep &= np.array([c >= 0.8 or confirmer(a, box) for box, c in zip(dets.xyxy, dets.confidence)], bool)
        boxes = dets.xyxy[keep]
        if not len(boxes) or a.shape != b.shape:
            continue
        again = detector.detect(b, 1.0)
        for box in boxes:
            x1, y1, x2, y2 = np.round(box).astype(int).clip(0, None)
            if min(x2 - x1, y2 - y1) < 8:
                continue
            ga, gb = a[y1:y2, x1:x2].mean(2), b[y1:y2, x1:x2].mean(2)
            win = min(7, (min(ga.shape) // 2) * 2 + 1)
            ssim = structural_similarity(ga, gb, data_range=255, win_size=win)
            redetected = len(again) and (
                (box_iou(box[None], again.xyxy)[0] >= 0.5) & (again.confidence >= 0.8)).any()
            if ssim >= 0.5 or redetected:
                left.append(f"frame {i}: face at {[int(v) for v in (x1, y1, x2, y2)]} still visible "
                            f"(SSIM {ssim:.2f}{', detected again' if redetected else ''})")
    return left


def problems(src: Path, dst: Path, converted: dict[str, str] | None = None, strip: bool = False,
             detector=None, confirmer=None) -> list[str]:
    """Everything that makes ``dst`` an incorrect anonymized copy of ``src`` (empty: correct)."""
    converted = converted or {}
    found: list[str] = []
    if not dst.is_file():
        return [f"no output at {dst}"]
    a, b = view(src), view(dst)
    quicktime = dst.suffix.lower() in (".mp4", ".mov", ".m4v", ".3gp")
    # streams of every kind
    for kind in ("video", "cover", "audio", "subtitle", "data", "attachment"):
        sa, sb = _by_type(a, kind), _by_type(b, kind)
        if (kind == "data" and strip) or converted.get(kind) == "left out":
            if sb:
                found.append(f"{len(sb)} {kind} stream(s) left that must be left out")
            continue
        if len(sa) != len(sb):
            found.append(f"{kind} streams: {len(sa)} in, {len(sb)} out")
            continue
        for k, (x, y) in enumerate(zip(sa, sb)):
            want = converted.get("video" if kind == "video" else x.codec, x.codec)
            if kind == "video":
                want = converted.get("video", "h264")
            if kind != "cover" and y.codec != want and not (kind == "data" and y.codec in (x.codec, "none",
                                                                                             "bin_data")):
                found.append(f"{kind} {k}: codec {x.codec} became {y.codec}")
            if not strip:
                for tag in STREAM_TAGS:
                    if x.tags.get(tag) not in (None, "und") and x.tags.get(tag) != y.tags.get(tag):
                        found.append(f"{kind} {k}: {tag} {x.tags.get(tag)!r} became {y.tags.get(tag)!r}")
            for flag in ("default", "forced"):
                if flag == "default" and flag in y.flags and quicktime and kind != "subtitle":
                    # MP4/MOV enable the first audio and video track when none is default (a disabled one is not
                    # played): read back as default. Subtitles keep theirs (deid clears the flag after ffmpeg).
                    continue
                if (flag in x.flags) != (flag in y.flags):
                    found.append(f"{kind} {k}: the {flag} flag was {'lost' if flag in x.flags else 'added'}")
            if kind == "data" and x.handler and y.handler != x.handler and not strip:
                found.append(f"data {k}: handler {x.handler!r} became {y.handler!r}")
            if kind == "audio" and x.duration and y.duration and abs(x.duration - y.duration) > 0.05:
                found.append(f"audio {k}: {x.duration:.3f} s became {y.duration:.3f} s")
    if quicktime and src.suffix.lower() in (".mp4", ".mov", ".m4v") and not strip:
        from deidcli.video.isobmff import chapter_track_ids, read_tracks

        def formats(path: Path) -> list[str]:
            tracks = read_tracks(path)
            chapters = chapter_track_ids(tracks)
            return [t.fourcc for t in tracks if t.handler not in ("vide", "soun", "tmcd", "sbtl", "subt")
                    and t.fourcc != "tmcd" and t.track_id not in chapters and t.fourcc != "tx3g"]

        if formats(src) != formats(dst):
            found.append(f"data track formats {formats(src)} became {formats(dst)}")
    if a.chapters != b.chapters and not strip:
        found.append(f"chapters {a.chapters} became {b.chapters}")
    if strip:
        left = [k for k in b.tags if "location" in k.lower() or "gps" in k.lower() or k.lower() == "title"]
        if left:
            found.append(f"tags left although metadata was stripped: {left}")
    else:
        muxer_tags = {t.lower() for t in MUXER_TAGS}
        out_tags = {k.lower(): v for k, v in b.tags.items()}
        for key, value in a.tags.items():
            if key.lower() in muxer_tags or key.lower().endswith("-eng"):
                continue
            if out_tags.get(key.lower()) != value:
                found.append(f"tag {key}={value!r} became {out_tags.get(key.lower())!r}")
    # pictures: every video stream
    from deidcli.detection import build_detector

    from deidcli.audit import Confirmer

    detector = detector or build_detector("centerface", 0.3, "cpu")
    confirmer = confirmer or Confirmer()
    for k in range(len(_by_type(a, "video"))):
        if k >= len(_by_type(b, "video")):
            break
        ta, ia, pa = frames(src, k)
        tb, ib, pb = frames(dst, k)
        if converted.get("size") == "padded to even":  # a container with no crop: the picture's first pixels
            (w, h), (pw, ph) = pa["size"], pb["size"]
            if (pw, ph) == (w + w % 2, h + h % 2):
                ib, pb["size"] = [i[:h, :w] for i in ib], (w, h)
        if len(ta) != len(tb):
            found.append(f"video {k}: {len(ta)} frames in, {len(tb)} out")
        elif not np.allclose(ta, tb, atol=1.5e-3, equal_nan=True):
            worst = int(np.nanargmax(np.abs(np.array(ta) - np.array(tb))))
            found.append(f"video {k}: frame {worst} at {ta[worst]:.4f} s became {tb[worst]:.4f} s")
        for key in pa:
            if key == "color_range" and {pa[key], pb.get(key)} <= {0, 1}:
                continue  # unspecified and limited range read the same
            if key.startswith("color") and pa[key] in (0, 2) and key != "color_range":
                continue  # unspecified in the source: the encoder may say what it wrote
            if key.startswith("color") and "colour" in converted:
                continue  # a container that stores no colour tags: the pixels were converted instead
            if pa[key] != pb.get(key):
                found.append(f"video {k}: {key} {pa[key]} became {pb.get(key)}")
        found += [f"video {k}: {m}" for m in faces_left(ia, ib, detector, confirmer)]
    ca, cb = cover(src), (cover(dst) if _by_type(b, "cover") else None)
    if ca is not None and cb is not None:
        if ca.shape != cb.shape:
            found.append(f"cover picture {ca.shape[:2]} became {cb.shape[:2]}")
        else:
            found += [f"cover: {m}" for m in faces_left([ca], [cb], detector, confirmer)]
    return found
