"""Run the detector on every k-th frame, and on the frames between only where the two sides disagree.

Detection is most of deid's time on a CPU (CenterFace at 960 px: about 100 ms a frame on 2 cores). Between two
detected frames ``a`` and ``b = a + k`` the frames in between are held back, and the objects both sides found
(one to one, same target, each box overlapping its partner by ``min_iou``) are interpolated there, boxes and
landmarks, grown by the distance moved as the tracker's gap filling does. Every object only one side found (it
came, went, moved fast, or its score flickered across the threshold), and every candidate that scored just under
the threshold on either side, is searched for again in each frame between, in a crop around it at the frame's own
inference scale (:func:`search_around`), or the whole frame is detected where its detector cannot search a crop.
So an object is missed only when it appears and vanishes again within the ``k - 1`` frames between two detected
ones without scoring even half the threshold on either, or when its crop scores it lower than the whole frame would
have (small faces near the threshold: tests/test_real_footage.py measures how many).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from deidcli.detection.tiling import merge, shifted
from deidcli.detections import Detections, box_iou, merge_overlapping

T = TypeVar("T")

DETECT_EVERY = 2  # the default stride: faces in real footage stay for far more than one frame
MIN_IOU = 0.4  # a box and its partner on the far side overlap at least this much, or the frames between are detected


SEARCH_GROWTH = 3.0  # a search crop is this many times the box's side, centred on it
SEARCH_MIN = 64  # and at least this many pixels a side at the detector's inference scale
SEARCH_SHARE = 0.75  # a crop is searched at this share of the detector's threshold
SEARCH_WHOLE = 0.6  # crops covering more than this share of the frame: the whole frame is searched instead

# ``near(image, dets)``: what the detector finds near the boxes of ``dets`` in ``image``, or None where it cannot
# search a part of the frame (then the whole frame is detected).
NearDetector = Callable[[np.ndarray, Detections], "Detections | None"]


def pairs_of(a: Detections, b: Detections, min_iou: float = MIN_IOU) -> np.ndarray:
    """Pairs ``(P, 2)`` of indices ``(i in a, j in b)``, one to one, same class, IoU at least ``min_iou``
    (greedy, the best overlap first), in the order of ``a``."""
    if not len(a) or not len(b):
        return np.zeros((0, 2), dtype=int)
    iou = box_iou(a.xyxy, b.xyxy)
    iou[a.class_id[:, None] != b.class_id[None, :]] = 0.0
    # Greedy, best overlap first: boxes of faces a frame or two apart overlap one partner far more than any other.
    pairs, used_a, used_b = [], set(), set()
    for flat in np.argsort(-iou, axis=None):
        i, j = divmod(int(flat), iou.shape[1])
        if iou[i, j] < min_iou:
            break
        if i not in used_a and j not in used_b:
            pairs.append((i, j))
            used_a.add(i)
            used_b.add(j)
    return np.array(sorted(pairs), dtype=int).reshape(-1, 2)


def match(a: Detections, b: Detections, min_iou: float = MIN_IOU) -> np.ndarray | None:
    """:func:`pairs_of` when it pairs every box of ``a`` and of ``b``, else ``None``."""
    pairs = pairs_of(a, b, min_iou)
    return pairs if len(pairs) == len(a) == len(b) else None


def interpolate(a: Detections, b: Detections, pairs: np.ndarray, t: float) -> Detections:
    """The matched boxes ``t`` of the way from ``a`` to ``b`` (``0 < t < 1``), each grown by the distance its box
    moved from ``a`` to ``b`` over its size (up to twice its size), landmarks interpolated the same way; confidence
    is the lower of the two."""
    i, j = pairs[:, 0], pairs[:, 1]
    xa, xb = a.xyxy[i].astype(np.float64), b.xyxy[j].astype(np.float64)
    mid = (1 - t) * xa + t * xb
    size = np.maximum(np.maximum(mid[:, 2] - mid[:, 0], mid[:, 3] - mid[:, 1]), 1.0)
    grow = 1.0 + np.minimum(np.abs(xb - xa).max(axis=1, initial=0.0) / size, 1.0)
    centre, half = (mid[:, :2] + mid[:, 2:]) / 2, (mid[:, 2:] - mid[:, :2]) / 2 * grow[:, None]
    landmarks = None
    if a.landmarks is not None and b.landmarks is not None:
        landmarks = (1 - t) * a.landmarks[i] + t * b.landmarks[j]
    return Detections(np.concatenate([centre - half, centre + half], axis=1),
                      np.minimum(a.confidence[i], b.confidence[j]), a.class_id[i], landmarks)


def search_crops(boxes: np.ndarray, width: int, height: int, scale: float, min_side: int = SEARCH_MIN
                 ) -> list[tuple[int, int, int, int]]:
    """``(x1, y1, x2, y2)`` crops of the frame around the boxes ``(N, 4)``: each :data:`SEARCH_GROWTH` times its
    box's side, at least ``min_side`` px at ``scale``, and a whole number of 32 px steps there (CenterFace's
    stride) so it is not stretched, clipped to the frame; overlapping crops merged into one, and the whole frame
    where they would cover more than :data:`SEARCH_WHOLE` of it."""
    out = []
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        side = max(SEARCH_GROWTH * max(x2 - x1, y2 - y1), min_side / scale)
        side = math.ceil(side * scale / 32) * 32 / scale
        w, h = min(side, width), min(side, height)
        left = int(round(min(max(cx - w / 2, 0), width - w)))
        top = int(round(min(max(cy - h / 2, 0), height - h)))
        out.append((left, top, min(width, left + int(round(w))), min(height, top + int(round(h)))))
    out = merge_overlapping(out)
    if sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in out) > SEARCH_WHOLE * width * height:
        return [(0, 0, width, height)]  # one pass over the frame costs less than the crops
    return out


def search_around(detector, image: np.ndarray, boxes: np.ndarray, scale: float, min_side: int = SEARCH_MIN
                  ) -> Detections:
    """``detector.detect`` on a crop around each of ``boxes`` (:func:`search_crops`) at the frame's own inference
    ``scale``, boxes in frame pixels, overlapping finds merged as tiles are. A detector whose ``detect`` takes a
    ``threshold`` (CenterFace) searches at :data:`SEARCH_SHARE` of it: a crop is not resampled quite as the frame
    is, and a face that scored just over the threshold there may score just under it here."""
    h, w = image.shape[:2]
    own = getattr(detector, "threshold", None)
    takes = own is not None and "threshold" in inspect.signature(detector.detect).parameters
    extra = {"threshold": own * SEARCH_SHARE} if takes else {}
    parts = []
    for x1, y1, x2, y2 in search_crops(boxes, w, h, scale, min_side):
        d = detector.detect(np.ascontiguousarray(image[y1:y2, x1:x2]), scale, **extra)
        if len(d):
            parts.append(shifted(d, x1, y1))
    return merge(parts, 0.3) if parts else Detections.empty()


@dataclass
class KeyframeCount:
    """What :func:`keyframe_detections` did with the frames: detected whole, interpolated from agreeing sides, or
    interpolated with the objects only one side found searched for in crops."""

    detected: int = 0
    interpolated: int = 0
    searched: int = 0


def keyframe_detections(
    items: Iterable[T], image_of: Callable[[T], np.ndarray],
    detect: Callable[[np.ndarray], Detections | tuple[Detections, Detections]],
    every: int = DETECT_EVERY, count: KeyframeCount | None = None, near: NearDetector | None = None,
    min_iou: float = MIN_IOU,
    detect_many: Callable[[list[np.ndarray]], list] | None = None, batch: int = 1,
    motion: Callable[[T], np.ndarray] | None = None,
) -> Iterator[tuple[T, Detections]]:
    """Each item (a video frame) with its detections, in order and at most ``every - 1`` items late (``batch *
    every`` with a batch).

    ``detect(image_of(item))`` runs on the first item, then on every ``every``-th one and on the last; it returns
    the detections, or them and the candidates that scored just under the threshold. An item between two detected
    ones gets the objects both found, interpolated (:func:`interpolate`), and what ``near`` finds around the
    objects only one of them found and around their candidates; without ``near`` (or where it returns None) such
    an item is detected whole. ``every = 1`` detects every item. ``motion(item)``: where the camera has moved the
    picture by that item (an ``(x, y)`` offset from the first), so boxes are paired, interpolated and searched for
    where the ground they were on went (deidcli/detection/camera_motion.py).

    With ``detect_many`` and ``batch > 1`` the next ``batch`` items due for detection are read ahead and detected
    in one call (``detect_many(images)``, one result per image, as ``detect`` gives it): the same results in the
    same order, in fewer, larger passes.
    """
    count = count if count is not None else KeyframeCount()
    ahead: dict[int, tuple[Detections, Detections]] = {}  # position -> detected in advance, in a batch

    def as_pair(found) -> tuple[Detections, Detections]:
        return found if isinstance(found, tuple) else (found, Detections.empty())

    def run(entry: tuple[int, T]) -> tuple[Detections, Detections]:
        count.detected += 1
        pos, item = entry
        if pos in ahead:
            return ahead.pop(pos)
        return as_pair(detect(image_of(item)))

    def image(entry: tuple[int, T]) -> np.ndarray:
        return image_of(entry[1])

    positioned: Iterable[tuple[int, T]] = enumerate(items)
    if detect_many is not None and batch > 1:
        positioned = _read_ahead(positioned, image_of, detect_many, every, batch, ahead, as_pair)
    def moved(src: tuple[int, T], dst: tuple[int, T]) -> np.ndarray:
        return np.zeros(2) if motion is None else motion(dst[1]) - motion(src[1])

    for (_, item), dets in _keyframes(positioned, image, run, every, count, near, min_iou, moved):
        yield item, dets


def _read_ahead(entries: Iterable[tuple[int, T]], image_of, detect_many, every: int, batch: int,
                ahead: dict, as_pair) -> Iterator[tuple[int, T]]:
    """``entries`` unchanged, read ``batch`` keyframes ahead: the images at positions 0, ``every``, ``2 every``...
    are detected ``batch`` at a time into ``ahead`` before the first of them is passed on. (The last frame, a
    keyframe wherever it falls, is detected on its own when it is not on the grid.)"""
    it = iter(entries)
    while True:
        chunk = [e for _, e in zip(range(batch * every), it)]
        if not chunk:
            return
        keys = [(pos, item) for pos, item in chunk if pos % every == 0]
        for (pos, _), found in zip(keys, detect_many([image_of(item) for _, item in keys])):
            ahead[pos] = as_pair(found)
        yield from chunk


def _keyframes(it_items: Iterable, image_of, run, every: int, count: KeyframeCount, near: NearDetector | None,
               min_iou: float, moved) -> Iterator:
    it = iter(it_items)
    first = next(it, None)
    if first is None:
        return
    prev, prev_item = run(first), first
    yield first, prev[0]
    held: list[T] = []
    for item in it:
        if len(held) < every - 1:
            held.append(item)
            continue
        key = run(item)
        yield from _between(held, (prev_item, *prev), (item, *key), image_of, run, near, count, min_iou, moved)
        yield item, key[0]
        held, prev, prev_item = [], key, item
    if held:  # the video ended between two keyframes: its last frame is one
        key = run(held[-1])
        yield from _between(held[:-1], (prev_item, *prev), (held[-1], *key), image_of, run, near, count, min_iou,
                            moved)
        yield held[-1], key[0]


def _moved(d: Detections, by: np.ndarray) -> Detections:
    """A copy of ``d`` moved by ``by = (dx, dy)`` pixels (``d`` itself when it does not move)."""
    if not len(d) or not np.any(by):
        return d
    return shifted(d[np.arange(len(d))], float(by[0]), float(by[1]))


def _between(held: list[T], side_a: tuple, side_b: tuple, image_of, run, near: NearDetector | None,
             count: KeyframeCount, min_iou: float, moved) -> Iterator[tuple[T, Detections]]:
    """The ``held`` items between two keyframes ``side_a`` and ``side_b``, each ``(item, detections, candidates)``.
    With a camera motion, boxes are compared and interpolated where the camera moved them: ``moved(src, dst)`` is
    the image shift from item ``src`` to item ``dst`` (zero without one)."""
    if not held:
        return
    (key_a, a, cand_a), (key_b, b, cand_b) = side_a, side_b
    ab = moved(key_a, key_b)
    pairs = pairs_of(_moved(a, ab), b, min_iou)
    lone_a, lone_b = a[np.setdiff1d(np.arange(len(a)), pairs[:, 0])], b[np.setdiff1d(np.arange(len(b)), pairs[:, 1])]
    # A face found on one side that scored just under the threshold at the same place on the other is the same
    # face, flickering: it is covered between them as a pair is.
    to_b, from_a = pairs_of(_moved(lone_a, ab), cand_b, min_iou), pairs_of(_moved(cand_a, ab), lone_b, min_iou)
    for k, item in enumerate(held, 1):
        t = k / (len(held) + 1)
        da, db = moved(key_a, item), moved(key_b, item)
        la, lb, ca, cb = _moved(lone_a, da), _moved(lone_b, db), _moved(cand_a, da), _moved(cand_b, db)
        both = Detections.concat([interpolate(_moved(a, da), _moved(b, db), pairs, t), interpolate(la, cb, to_b, t),
                                  interpolate(ca, lb, from_a, t)])
        lone = Detections.concat([la, lb, ca, cb])
        if not len(lone):
            count.interpolated += 1
            yield item, both
            continue
        found = near(image_of(item), lone) if near is not None else None
        if found is None:
            yield item, run(item)[0]
            continue
        count.searched += 1
        yield item, merge([both, found], 0.3) if len(found) and len(both) else Detections.concat([both, found])
