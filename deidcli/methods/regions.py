"""Apply a method to the detected regions of a frame: grow each box, anonymize the crop, blend it back."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
import torch

from deidcli.config import FACE_MASK_SCALE
from deidcli.detections import Detections
from deidcli.methods.registry import METHODS, Method

FEATHER = 0.08  # fraction of the ellipse radius over which the mask fades out

# ``coding(image) -> image``: an 8-bit RGB frame as the output will store it (a lossy round trip such as a JPEG's)
Coding = Callable[[np.ndarray], np.ndarray]


@dataclass
class FallbackLog:
    """Regions a method could not do, frosted instead, counted by reason (the report's ``regions_fallback``)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, reason: str, n: int = 1) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + n

    def merge(self, other: "FallbackLog") -> None:
        for reason, n in other.counts.items():
            self.add(reason, n)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))


@dataclass(frozen=True)
class RegionStyle:
    """How a region is shaped and covered."""

    method: Method
    strength: float | None = None
    mask_shape: str = "ellipse"  # "ellipse" or "box"
    mask_scale: float = FACE_MASK_SCALE  # grow each box by this factor around its centre
    color: tuple[float, float, float] = (0.0, 0.0, 0.0)
    seed: int = 0


def _stable_seed(key: str) -> int:
    """A seed from a string that is the same in every process (Python's hash() of str is salted per process)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") & 0x7FFF_FFFF_FFFF_FFFF


def scale_boxes(xyxy: np.ndarray, scale: float) -> np.ndarray:
    """Float ``(N, 4)`` boxes grown by ``scale`` about their centres (not clipped)."""
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    c = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    half = (xyxy[:, 2:] - xyxy[:, :2]) / 2 * scale
    return np.concatenate([c - half, c + half], axis=1)


def square_boxes(xyxy: np.ndarray) -> np.ndarray:
    """Each box made a square of its height about its centre (how recognizers cut faces)."""
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4).copy()
    cx, half = (xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 3] - xyxy[:, 1]) / 2
    xyxy[:, 0], xyxy[:, 2] = cx - half, cx + half
    return xyxy


def grow_boxes(xyxy: np.ndarray, scale: float, width: int, height: int) -> np.ndarray:
    """Integer ``(N, 4)`` boxes grown by ``scale`` about their centres and clipped to the frame."""
    return _pixel_boxes(scale_boxes(xyxy, scale), width, height)


def _covering_boxes(boxes: np.ndarray) -> np.ndarray:
    """Integer ``(N, 4)`` boxes covering every pixel the float ``boxes`` touch (not clipped)."""
    return np.concatenate([np.floor(boxes[:, :2]), np.ceil(boxes[:, 2:])], axis=1).astype(np.int64)


def _pixel_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    out = _covering_boxes(boxes)
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
    return out


def polygon_mask(height: int, width: int, polygon: np.ndarray) -> np.ndarray:
    """``(H, W)`` uint8 mask, 1 on every pixel the polygon ``(K, 2)`` (continuous pixel coordinates of this crop)
    touches: its inside and each pixel its edges pass through, so an area's border is never left half shown."""
    mask = np.zeros((height, width), np.uint8)
    # OpenCV's integer coordinates are pixel centres: half a pixel back, at 1/16 px (shift 4)
    pts = np.round((np.asarray(polygon, dtype=np.float64) - 0.5) * 16).astype(np.int32)[None]
    cv2.fillPoly(mask, pts, 1, cv2.LINE_8, shift=4)
    cv2.polylines(mask, pts, True, 1, 1, cv2.LINE_8, shift=4)
    return mask


def region_mask(
    height: int, width: int, shape: str = "ellipse", device=None, full: tuple[int, int, int, int] | None = None,
    polygon: np.ndarray | None = None,
) -> torch.Tensor:
    """Soft mask ``(1, 1, H, W)`` in ``[0, 1]``: 1 inside the ellipse (or everywhere for ``box``, or on the pixels
    of ``polygon`` when given, unfeathered: an area is hidden to its edge).

    ``full`` gives the unclipped box ``(x1, y1, x2, y2)`` relative to this crop, so an ellipse cut by the frame edge
    keeps its true centre and radii.
    """
    if polygon is not None:
        return torch.from_numpy(polygon_mask(height, width, polygon)).to(device=device, dtype=torch.float32)[None, None]
    if shape == "box":
        return torch.ones((1, 1, height, width), device=device)
    x1, y1, x2, y2 = full if full is not None else (0, 0, width, height)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    ax, ay = max((x2 - x1) / 2, 0.5), max((y2 - y1) / 2, 0.5)
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5 - cy) / ay
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5 - cx) / ax
    r = torch.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)
    # Fully covered up to 1 - FEATHER of the radius, fading to 0 at the ellipse edge.
    m = ((1.0 - r) / FEATHER).clamp(0, 1)
    return m[None, None]


def anonymize_frame(
    frame: np.ndarray,
    detections: Detections,
    style: RegionStyle,
    frame_index: int = 0,
    device: torch.device | str = "cpu",
    fallbacks: FallbackLog | None = None,
    changed: list[tuple[int, int, int, int]] | None = None,
    coding: Coding | None = None,
) -> np.ndarray:
    """Return a copy of ``frame`` (``H x W x 3`` RGB, uint8 or 16-bit) with every detected region anonymized;
    each rectangle ``(x1, y1, x2, y2)`` written to is added to ``changed`` (no pixel outside them differs: the
    writer converts only these, deidcli/video/planes.py).

    Each region is processed at its own resolution so the strength scales with its size; the random methods draw
    from a generator seeded by ``(seed, track id)`` for tracked regions, so a person's noise does not change from
    frame to frame, and by ``(seed, frame_index, region)`` otherwise; a rerun gives the same output.

    Fail closed, region by region: a region whose method missed its goal, or whose written pixels hardly changed
    (less than the method's ``min_change`` in 8-bit grey levels; none at all for the adversarial methods), is
    frosted instead, and the reason counted in ``fallbacks``. A whole-frame method (de-detection) checks its
    result on the frame and, with ``coding``, on the frame as the output stores it: hidden in the one but found in
    the other is not hidden.
    """
    out = frame.copy()
    if len(detections) == 0:
        return out
    method = style.method
    frost = replace(style, method=METHODS["frost"], strength=None)
    if method.frame_fn is not None:
        strength = method.default_strength if style.strength is None else style.strength
        out, still_found = _frame_method(out, detections, method, strength, coding)
        if changed is not None:
            changed.append((0, 0, frame.shape[1], frame.shape[0]))
        if not still_found.any():
            return out
        if fallbacks is not None:
            fallbacks.add(f"{method.name}: the face is still found at the largest budget", int(still_found.sum()))
        return anonymize_frame(out, detections[still_found], frost, frame_index, device, changed=changed)
    peak = float(np.iinfo(frame.dtype).max)  # 255, or 65535 for deep sources
    h, w = frame.shape[:2]
    boxes = square_boxes(detections.xyxy) if method.exact_crop else detections.xyxy
    scaled = scale_boxes(boxes, style.mask_scale)
    covering = _covering_boxes(scaled)
    for i, (x1, y1, x2, y2) in enumerate(_pixel_boxes(scaled, w, h)):
        if x2 - x1 < 1 or y2 - y1 < 1:
            continue
        crop_np = out[y1:y2, x1:x2]
        left, top = x1, y1
        if method.exact_crop:
            # A model's square is cut around the face, past the frame's edge as a recognizer cuts it (edge pixels
            # repeated): clipped, the square sat off the face and FaceNet on the face's own crop barely moved.
            u = covering[i]
            pads = ((y1 - u[1], u[3] - y2), (x1 - u[0], u[2] - x2), (0, 0))
            if any(a or b for a, b in pads):
                crop_np = np.pad(crop_np, pads, mode="edge")
                left, top = int(u[0]), int(u[1])
        # uint8 goes to the device as it is (a quarter of float32's bytes); torch has no arithmetic on uint16
        crop_np = np.ascontiguousarray(crop_np if frame.dtype == np.uint8 else crop_np.astype(np.float32))
        crop = torch.from_numpy(crop_np).to(device).permute(2, 0, 1)[None].float().div_(peak)
        tid = -1 if detections.tracker_id is None else int(detections.tracker_id[i])
        full = tuple(scaled[i] - np.array([left, top, left, top]))  # the unclipped box, in crop coordinates
        lm = None
        if method.uses_landmarks and detections.landmarks is not None:
            lm = torch.from_numpy(detections.landmarks[i] - np.array([x1, y1], np.float32))[None].to(device)
        polygon = None
        if detections.polygons is not None and detections.polygons[i] is not None:
            polygon = detections.polygons[i] - np.array([left, top])
        stored = None
        if coding is not None and method.stored_probe is not None and frame.dtype == np.uint8:
            stored = crop_coding(coding, left, top)
        written, reason = _region(crop, style, frame_index, i, tid, full, peak, lm, polygon, stored)
        if reason:
            written, _ = _region(crop, frost, frame_index, i, tid, full, peak, polygon=polygon)
            if fallbacks is not None:
                fallbacks.add(reason)
        out[y1:y2, x1:x2] = written[y1 - top:y2 - top, x1 - left:x2 - left].astype(frame.dtype)
        if changed is not None:
            changed.append((int(x1), int(y1), int(x2), int(y2)))
    return out


def _frame_method(frame: np.ndarray, detections: Detections, method: Method, strength: float,
                  coding: Coding | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A whole-frame method (de-detection) on an 8-bit frame, as its detector sees it; on a deep frame only the
    pixels it changed are written back."""
    if frame.dtype == np.uint8:
        out, still = method.frame_fn(frame, detections.xyxy, method.model, strength, coding=coding)
        return out, np.asarray(still, dtype=bool)
    low = (frame >> 8).astype(np.uint8)
    done, still = method.frame_fn(low, detections.xyxy, method.model, strength, coding=coding)
    out = frame.copy()
    changed = done != low
    out[changed] = done[changed].astype(np.uint16) * 257
    return out, np.asarray(still, dtype=bool)


def crop_coding(coding: Coding, left: int, top: int) -> Coding:
    """``coding`` for a crop whose top-left pixel is ``(left, top)`` in the frame: the crop is padded (edge pixels)
    to start on the frame's even grid, so 4:2:0 chroma (2x2 pixels) and a JPEG's 8x8 blocks' parity fall where the
    frame's do."""
    px, py = left % 2, top % 2

    def code(image: np.ndarray) -> np.ndarray:
        return coding(np.pad(image, ((py, 0), (px, 0), (0, 0)), mode="edge"))[py:, px:]

    return code


def _region(crop: torch.Tensor, style: RegionStyle, frame_index: int, i: int, tid: int, full, peak: float,
            landmarks: torch.Tensor | None = None, polygon: np.ndarray | None = None,
            coding: Coding | None = None) -> tuple[np.ndarray, str]:
    """One region anonymized as it will be written (``h x w x 3``, in ``0..peak``), and why it must be redone
    ("" if not). ``coding``: the crop as the output stores it, for a method an encoder can undo."""
    method = style.method
    gen = None
    if method.random:
        gen = torch.Generator(device=crop.device)
        key = f"{style.seed}/track/{tid}" if tid >= 0 else f"{style.seed}/frame/{frame_index}/{i}"
        gen.manual_seed(_stable_seed(key))
    anon, met, why = method.apply(
        crop, style.strength, generator=gen, color=style.color, inner=1 / style.mask_scale,
        track=tid if tid >= 0 else None, landmarks=landmarks, coding=coding,
    )
    h, w = crop.shape[-2:]
    m = region_mask(h, w, "box" if method.exact_crop else style.mask_shape, crop.device, full, polygon)
    blended = torch.lerp(crop, anon, m.expand_as(crop)).mul_(peak).round_().clamp_(0, peak)
    written = blended[0].permute(1, 2, 0).cpu().numpy()
    if not bool(met.all()):
        return written, why or f"{method.name} did not reach its goal"
    core = (m[0, 0] >= 0.5)
    if core.any():
        # in 8-bit grey levels, whatever the depth: what a viewer (and a recognizer) would see change
        change = (blended - crop.mul(peak).round()).abs().amax(1)[0][core] * (255.0 / peak)
        if float(change.max()) < 1 or float(change.mean()) < method.min_change:
            return written, f"{method.name} left the region unchanged"
    return written, ""
