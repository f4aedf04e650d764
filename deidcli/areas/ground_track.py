"""Planar tracking of the ground, so an area drawn on one frame of a drone video stays on the same ground in all.

A pre-pass over the whole video at reduced size (:func:`small_frames`) measures, for every frame, the homography
that carries it onto its *segment's reference frame* (:func:`track_ground`); within a segment any frame maps to
any other, forwards or backwards (:meth:`GroundMotion.map_polygon`). The result is a few floats a frame; while
tracking, only the current keyframe and a bounded bank of keyframe descriptors are kept.

How (in small-frame pixels):

- KLT against the keyframe: each frame, the keyframe is warped by the predicted motion onto the frame and its
  corners (picked on a grid, so they cover the frame) are tracked from there, forward-backward checked; H(K->i) is
  fitted (RANSAC) to the corners' keyframe positions. Every frame is measured against the keyframe itself, with
  the turn, zoom and tilt since then undone by the warp, so nothing drifts between keyframes.
- Keyframe switches: when the tracks thin out, bunch up or the zoom changes, the frame becomes the keyframe and
  poses compose once. A frame measured much more loosely than the one before it is not used: the one before it
  becomes the keyframe instead and the frame is measured again, so each switch adds little to the chain.
- Bank: keyframes that show new ground keep their ORB descriptors (which place) and 13x13 grey patches around
  their corners (where, to a tenth of a pixel): 20-45 KB each, 64 at most, the least recently used dropped. A new
  keyframe is measured directly against the entries of its place that overlap it (patches found by normalised
  cross-correlation where the chained pose puts them, or ORB matches when that is too unsure); the measurement
  replaces the chained pose when it agrees and is more certain (drift removed). A new segment (after a cut) and
  each new keyframe are looked for among the bank's other places too (ORB shortlist, then the patches): a match
  links the segments into one, so a return to ground seen before, across a cut, is the same place.
- Uncertainty: the fit's covariance at the frame's corners (so it grows where the corners are sparse and the fit
  extrapolates), x1.5; propagated through keyframe switches and links (root-sum-square, scaled by the local
  magnification); a direct measurement replaces it.
- Fail closed: too few tracks or inliers, a low inlier ratio, a flip, a frame seen through its horizon or a jump
  no drone makes in a frame -> not tracked; tracking restarts on that frame (a new segment, linked back when the
  bank recognizes it). A blank frame, and a segment that tracked nothing (one frame: noise, a flash), are -1.
  A direct measurement that contradicts the chain is not used, and the chain's uncertainty grows to cover it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

# The fit's statistics miss errors shared by neighbouring tracks (interpolation, aliasing, the scene not quite a
# plane): measured against rendered flights, the true error at a frame's corners exceeded 3 fitted sigmas in ~1%
# of frames; x1.5 (and a floor) brings that to ~0.1%.
_FIT_SAFETY = 1.5
_FIT_FLOOR = 0.05  # small px
_Q_SMALL = 0.15  # small px added in quadrature to every frame: LK's own precision and the small image's sampling
_MARGIN_SIGMAS = 3.0
_MARGIN_FLOOR = 2.0  # full-res px
_PATCH = 6  # half size of the bank's patch descriptors (13 x 13 px)
_PATCHES = 150  # patches an entry keeps at most
_SEARCH = 8  # px around a rough match where the patches are looked for first
_PASSES = 6  # patch searches (1 px once the first has placed them) until the homography settles


@dataclass(frozen=True)
class TrackSettings:
    """Thresholds of :func:`track_ground`, in small-frame pixels (tuned for a long side of about 480)."""

    max_corners: int = 240
    grid: tuple[int, int] = (4, 3)  # corners are picked per cell, so they cover the frame
    min_distance: int = 8
    min_corner_eig: float = 2e-4  # cornerMinEigenVal below which a corner is noise (blank, fog, heavy blur)
    window: int = 15  # LK window
    levels: int = 3  # LK pyramid levels: some 40 px of motion the prediction did not expect
    fb_px: float = 0.7  # forward-backward disagreement above which a track is dropped
    ransac_px: float = 1.0
    min_inliers: int = 20
    min_ratio: float = 0.2  # RANSAC inliers / tracked points below which the fit is not trusted
    keep_ratio: float = 0.4  # inliers falling below this fraction of the previous frame's in one frame: a cut
    switch_ratio: float = 0.7  # inliers / the first frame's after the keyframe, below which a frame becomes one
    switch_cover: float = 0.6  # area the inliers cover / the first frame's, below which the same
    switch_zoom: float = 1.4  # zoom since the keyframe beyond which the same (the warped keyframe blurs)
    switch_sigma: float = 0.2  # a frame measured looser than this (px, 1-sigma) and than switch_growth x the first
    switch_growth: float = 2.0  # frame after its keyframe is not used: the one before it becomes the keyframe
    max_jump: float = 0.2  # frame corners moving more than this fraction of the diagonal in one frame: a cut
    max_zoom_step: float = 1.5  # scale change within one frame beyond which it is a cut
    confirm: int = 3  # frames a new segment must track before the bank links and stores it
    orb_features: int = 500
    summary: int = 150  # strongest descriptors of an entry used to shortlist bank entries for a new place
    match_px: float = 3.0
    match_min_inliers: int = 30
    match_min_ratio: float = 0.3
    match_cover: float = 0.2  # hull of a direct match's patches / frame area below which it extrapolates too far
    bank_size: int = 64  # 20-45 KB an entry
    novel_iou: float = 0.5  # a keyframe overlapping every bank entry of its place less than this is stored


@dataclass
class GroundMotion:
    """Per-frame ground homographies of a video, at full resolution, with their uncertainty."""

    width: int  # full-resolution frame size
    height: int
    to_ref: np.ndarray  # (F, 3, 3) float64: full-res px of frame i -> its segment's reference frame's; NaN if -1
    segment: np.ndarray  # (F,) int64; -1 where the ground was not tracked
    sigma: np.ndarray  # (F,) float64: 1-sigma position error against the reference, frame i's full px; inf if -1
    inliers: np.ndarray  # (F,) int64: inliers that supported frame i's homography
    # How sigma is made, so two frames near each other are not charged the error both carry against a reference
    # far back: fit, frame i's own measurement against its keyframe (full px); key, that keyframe's index; epoch,
    # the run of keyframes chained without a correction, within which errors only accumulate.
    fit: np.ndarray | None = None
    key: np.ndarray | None = None
    epoch: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.segment)

    def map_polygon(self, polygon: np.ndarray, src: int, dst: int) -> tuple[np.ndarray, float] | None:
        """``polygon`` (K, 2) full-res px on frame ``src`` -> the same ground on frame ``dst`` and the margin (dst px)
        to grow it by so it covers that ground despite both frames' uncertainty (3 sigma + 2 px).

        None when the frames are not connected (different segments, or either is -1), or the margin would exceed
        half the frame (so unsure that the caller must mask the whole frame). The part of the ground behind dst's
        horizon is clipped away exactly (in homogeneous coordinates) and so is anything farther than one frame
        size outside dst's view, so the result is finite and small; it has 0 vertices when none of the polygon
        is within that box, and may have more vertices than the input.
        """
        seg = self.segment
        if not (0 <= src < len(seg) and 0 <= dst < len(seg)) or seg[src] < 0 or seg[src] != seg[dst]:
            return None
        poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
        h = np.linalg.inv(self.to_ref[dst]) @ self.to_ref[src]
        h /= np.linalg.norm(h)
        b = max(self.width, self.height)
        src_pts, dst_h = _clip(poly, _homog(poly) @ h.T, _box(self.width, self.height, b))
        if len(src_pts) == 0:
            return np.zeros((0, 2)), _MARGIN_FLOOR
        out = dst_h[:, :2] / dst_h[:, 2:]
        # the src frame's error, magnified as the mapping magnifies it where dst sees the polygon (near the
        # horizon, far outside the view, the magnification is huge and irrelevant)
        near = _clip(src_pts, dst_h, _box(self.width, self.height, b / 8))[0]
        gain = float(_gain(h, near).max()) if len(near) else 1.0
        margin = _MARGIN_SIGMAS * self._relative_sigma(src, dst, gain) + _MARGIN_FLOOR
        if not np.isfinite(margin) or margin > b / 2:
            return None
        return out, margin


    def _relative_sigma(self, src: int, dst: int, gain: float) -> float:
        """1-sigma error (dst px) of the mapping src -> dst: each frame's against the reference, or, within one
        epoch, only what accumulated between them (the keyframes chained from one to the other) and their own
        measurements; two frames of one keyframe carry their measurements alone."""
        whole = float(np.hypot(self.sigma[dst], gain * self.sigma[src]))
        if self.epoch is None or self.epoch[src] != self.epoch[dst]:
            return whole
        fit_s, fit_d = gain * float(self.fit[src]), float(self.fit[dst])
        var = fit_s ** 2 + fit_d ** 2
        if self.key[src] != self.key[dst]:
            chain_s = gain * np.sqrt(max(float(self.sigma[src]) ** 2 - float(self.fit[src]) ** 2, 0.0))
            chain_d = np.sqrt(max(float(self.sigma[dst]) ** 2 - fit_d ** 2, 0.0))
            var += abs(chain_d ** 2 - chain_s ** 2)
        return min(whole, float(np.sqrt(var)))


def small_frames(path: Path, long_side: int = 480) -> Iterator[np.ndarray]:
    """Grey uint8 frames of the first video stream, scaled so the long side is ``long_side`` (never enlarged).

    Decoded with PyAV (threaded) and scaled by swscale straight to grey (area filter): no full-size RGB picture
    is made, so the pre-pass costs little more than decoding. Frames are as stored (not display-rotated), as the
    reader gives them.
    """
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        size = None
        for frame in container.decode(stream):
            if size is None:
                scale = min(1.0, long_side / max(frame.width, frame.height))
                size = max(1, round(frame.width * scale)), max(1, round(frame.height * scale))
            yield frame.reformat(width=size[0], height=size[1], format="gray", interpolation="AREA").to_ndarray()


def track_ground(frames: Iterable[np.ndarray], width: int, height: int, *,
                 settings: TrackSettings | None = None) -> GroundMotion:
    """Track the ground through ``frames`` (small grey uint8 frames in order, e.g. :func:`small_frames`) scaled
    from ``width`` x ``height``; see the module's docstring for how, and :class:`TrackSettings` for thresholds."""
    prev = cv2.getNumThreads()
    cv2.setNumThreads(1)  # small images: threads cost more than they give, and the product runs videos in parallel
    try:
        tracker: _Tracker | None = None
        for g in frames:
            if g.ndim != 2 or g.dtype != np.uint8:
                raise ValueError(f"track_ground wants grey uint8 frames, got {g.dtype} {g.shape}")
            if tracker is None:
                tracker = _Tracker(g.shape[1], g.shape[0], settings or TrackSettings())
            tracker.step(np.ascontiguousarray(g))
        if tracker is None:
            return GroundMotion(width, height, np.zeros((0, 3, 3)), np.zeros(0, np.int64), np.zeros(0),
                                np.zeros(0, np.int64))
        return tracker.finish(width, height)
    finally:
        cv2.setNumThreads(prev)


# ---------------------------------------------------------------------------------------------------------------
# geometry


def _homog(pts: np.ndarray) -> np.ndarray:
    return np.concatenate([pts, np.ones(pts.shape[:-1] + (1,))], axis=-1)


def _apply(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Points (..., M, 2) through homographies (..., 3, 3)."""
    x = _homog(pts) @ np.swapaxes(h, -1, -2)
    return x[..., :2] / x[..., 2:]


def _gain(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Largest local magnification (max singular value of the Jacobian) of homographies (..., 3, 3) at points
    (..., M, 2) of their domain: how much a small position error there grows through them."""
    x = _homog(pts) @ np.swapaxes(h, -1, -2)
    w = x[..., 2]
    xy = x[..., :2] / w[..., None]
    jac = (h[..., None, :2, :2] - xy[..., :, :, None] * h[..., None, 2:3, :2]) / w[..., None, None]
    fro = np.square(jac).sum(axis=(-1, -2))
    det = jac[..., 0, 0] * jac[..., 1, 1] - jac[..., 0, 1] * jac[..., 1, 0]
    return np.sqrt((fro + np.sqrt(np.maximum(fro * fro - 4 * det * det, 0))) / 2)


def _frame_points(w: float, h: float) -> np.ndarray:
    """Corners and centre of a frame: where a homography's magnification is extreme or typical."""
    return np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1], [(w - 1) / 2, (h - 1) / 2]], np.float64)


def _box(w: float, h: float, border: float) -> np.ndarray:
    """Half-planes ``a . (x, y, w) >= 0`` of homogeneous points in front of a camera and within ``border`` px of
    its w x h frame."""
    return np.array([[1, 0, border], [-1, 0, w - 1 + border], [0, 1, border], [0, -1, h - 1 + border], [0, 0, 1e-12]],
                    np.float64)


def _clip(src: np.ndarray, dst: np.ndarray, planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sutherland-Hodgman clipping of a polygon given as src points and their homogeneous images, against the
    half-planes ``planes @ dst >= 0``: exact, since the homogeneous image of a src edge is a straight segment."""
    for plane in planes:
        if len(src) == 0:
            break
        f = dst @ plane
        keep_s, keep_d = [], []
        for k in range(len(src)):
            j = (k + 1) % len(src)
            if f[k] >= 0:
                keep_s.append(src[k])
                keep_d.append(dst[k])
            if (f[k] >= 0) != (f[j] >= 0):
                t = f[k] / (f[k] - f[j])
                keep_s.append(src[k] + t * (src[j] - src[k]))
                keep_d.append(dst[k] + t * (dst[j] - dst[k]))
        src = np.array(keep_s).reshape(-1, 2)
        dst = np.array(keep_d).reshape(-1, 3)
    return src, dst


def _center_scale(sx: float, sy: float) -> np.ndarray:
    """Small px -> full-res px, pixel centres aligned (as swscale and cv2.resize scale)."""
    return np.array([[sx, 0, (sx - 1) / 2], [0, sy, (sy - 1) / 2], [0, 0, 1]])


def _positive(h: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Homographies (..., 3, 3) scaled so a frame's centre maps with w = 1: points in front of both cameras then
    have w > 0, which :meth:`GroundMotion.map_polygon` relies on to cut off what lies beyond a horizon."""
    w = h[..., 2, :2] @ centre + h[..., 2, 2]
    return h / w[..., None, None]


def _fit_sigma(h: np.ndarray, src: np.ndarray, dst: np.ndarray, at: np.ndarray) -> float:
    """1-sigma (dst px) of where homography ``h``, fitted to inliers ``src`` -> ``dst``, puts the points ``at``:
    the residual variance carried through the fit's covariance, so it grows where the corners are sparse and the
    fit extrapolates (a frame's far corner, away from the one textured patch)."""
    src, dst = src.astype(np.float64), dst.astype(np.float64)
    ts, td = _normaliser(src), _normaliser(dst)
    hn = td @ h @ np.linalg.inv(ts)
    hn /= hn[2, 2]
    s = _apply(ts, src)
    jac = _param_jacobian(hn, s).reshape(-1, 8)
    res = _apply(hn, s) - _apply(td, dst)
    var = float(np.square(res).sum()) / max(2 * len(src) - 8, 1)
    cov = var * np.linalg.pinv(jac.T @ jac)
    ja = _param_jacobian(hn, _apply(ts, at))
    spread = np.einsum("mij,jk,mlk->mil", ja, cov, ja)
    fit = float(np.sqrt(np.trace(spread, axis1=1, axis2=2).max())) / td[0, 0]
    return float(np.hypot(_FIT_SAFETY * fit, _FIT_FLOOR))


def _normaliser(pts: np.ndarray) -> np.ndarray:
    """Similarity taking points to zero mean and unit rms distance (Hartley): a well-conditioned fit."""
    mean = pts.mean(axis=0)
    scale = 1 / max(float(np.sqrt(np.square(pts - mean).sum(axis=1).mean())), 1e-9)
    return np.array([[scale, 0, -scale * mean[0]], [0, scale, -scale * mean[1]], [0, 0, 1]])


def _param_jacobian(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """(M, 2, 8): derivatives of the mapped points by the homography's 8 free entries (h[2, 2] = 1)."""
    x, y = pts[:, 0], pts[:, 1]
    w = pts @ h[2, :2] + h[2, 2]
    u, v = _apply(h, pts).T
    one, zero = np.ones_like(x), np.zeros_like(x)
    ju = np.stack([x, y, one, zero, zero, zero, -u * x, -u * y], axis=1)
    jv = np.stack([zero, zero, zero, x, y, one, -v * x, -v * y], axis=1)
    return np.stack([ju, jv], axis=1) / w[:, None, None]


def _zoom(h: np.ndarray, at: np.ndarray) -> float:
    """Linear magnification (square root of the area scale) of a homography at a point."""
    w = float(h[2, :2] @ at + h[2, 2])
    return float(np.sqrt(abs(np.linalg.det(h)) / abs(w) ** 3))


def _plausible(h: np.ndarray, w: int, hh: int, max_zoom: float) -> bool:
    """A homography a camera over flat ground can produce between two views: the frame's corners in front (not
    through the horizon), orientation kept, magnification bounded."""
    x = _homog(_frame_points(w, hh)) @ h.T
    if not np.all(np.isfinite(x)) or np.any(x[:, 2] * x[4, 2] <= 0):
        return False
    if np.linalg.det(h / x[4, 2]) <= 0:  # the Jacobian's determinant has det(H)'s sign where w > 0: a mirror
        return False
    scale = _gain(h, _frame_points(w, hh))
    inv = _gain(np.linalg.inv(h), _apply(h, _frame_points(w, hh)))
    return bool(scale.max() < max_zoom and inv.max() < max_zoom)


def _peak(left: np.ndarray, mid: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Sub-pixel offsets of 3-sample maxima (a parabola through each)."""
    den = left - 2 * mid + right
    return np.where(den < 0, np.clip(0.5 * (left - right) / np.where(den < 0, den, -1), -0.5, 0.5), 0.0)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    """Overlap of two convex quads."""
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return 0.0
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    inter, _ = cv2.intersectConvexConvex(a32, b32)
    union = cv2.contourArea(a32) + cv2.contourArea(b32) - inter
    return float(inter / union) if union > 0 else 0.0


# ---------------------------------------------------------------------------------------------------------------
# segments linked by bank matches: a union-find whose links carry homographies


class _Links:
    """Segments known to show the same place. A link carries its segment's reference onto its parent's, with a
    1-sigma error in the parent's px, measured over ``region`` (the child's reference px)."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.to_parent: list[np.ndarray] = []
        self.sigma: list[float] = []
        self.region: list[np.ndarray] = []

    def new(self, region: np.ndarray) -> int:
        self.parent.append(len(self.parent))
        self.to_parent.append(np.eye(3))
        self.sigma.append(0.0)
        self.region.append(region)
        return len(self.parent) - 1

    def find(self, seg: int) -> tuple[int, np.ndarray, float]:
        """Root, homography seg ref -> root ref, and its 1-sigma in root px."""
        t, var = np.eye(3), 0.0
        while self.parent[seg] != seg:
            g = float(_gain(self.to_parent[seg], self.region[seg]).max())
            var = var * g * g + self.sigma[seg] ** 2
            t = self.to_parent[seg] @ t
            seg = self.parent[seg]
        return seg, t, float(np.sqrt(var))

    def union(self, a: int, b: int, t_ab: np.ndarray, sigma_b: float, where: np.ndarray) -> None:
        """Record that ``t_ab`` carries segment a's reference onto b's (1-sigma ``sigma_b`` b px, measured at
        ``where``, a px); the older root stays the root."""
        ra, ta, sa = self.find(a)
        rb, tb, sb = self.find(b)
        if ra == rb:
            return
        t = tb @ t_ab @ np.linalg.inv(ta)  # ra -> rb
        at_a = _apply(ta, where)
        s = float(np.sqrt((sa * _gain(t, at_a).max()) ** 2 + (sigma_b * _gain(tb, _apply(t_ab, where)).max()) ** 2
                          + sb ** 2))
        if rb < ra:
            self.parent[ra], self.to_parent[ra], self.sigma[ra], self.region[ra] = rb, t, s, at_a
        else:
            at_b = _apply(t, at_a)
            inv = np.linalg.inv(t)
            self.parent[rb], self.to_parent[rb], self.region[rb] = ra, inv, at_b
            self.sigma[rb] = s * float(_gain(inv, at_b).max())


# ---------------------------------------------------------------------------------------------------------------
# the tracker


@dataclass
class _Entry:
    """A bank entry: what one keyframe showed (ORB features and patch descriptors, 20-45 KB) and its pose."""

    seg: int
    pose: np.ndarray  # entry frame px -> its segment's reference px
    sigma: float  # 1-sigma of that pose, entry px
    pts: np.ndarray  # (N, 2) float32 ORB keypoints
    desc: np.ndarray  # (N, 32) uint8 ORB descriptors, strongest first: which place this is
    corners: np.ndarray  # (M, 2) float64 tracking corners (whole px)
    patches: np.ndarray  # (M, 13, 13) uint8 grey patches around them: where it is, to a tenth of a px
    frame: int  # where it was taken
    used: int  # last frame it was matched (or taken): the least recently used goes first


@dataclass
class _Fit:
    """One frame measured against the keyframe."""

    h: np.ndarray  # keyframe px -> this frame's px
    inliers: int
    sigma: float  # 1-sigma of h at this frame's corners, this frame's px
    hull: float  # area covered by the inliers, this frame's px
    at: np.ndarray  # this frame's corners and centre on the keyframe


@dataclass
class _Rows:
    """Growing per-frame arrays (amortised O(1) append, no per-frame Python objects kept)."""

    n: int = 0
    pose: np.ndarray = field(default_factory=lambda: np.empty((256, 3, 3)))
    seg: np.ndarray = field(default_factory=lambda: np.empty(256, np.int64))
    sigma: np.ndarray = field(default_factory=lambda: np.empty(256))
    inliers: np.ndarray = field(default_factory=lambda: np.empty(256, np.int64))
    fit: np.ndarray = field(default_factory=lambda: np.empty(256))
    key: np.ndarray = field(default_factory=lambda: np.empty(256, np.int64))
    epoch: np.ndarray = field(default_factory=lambda: np.empty(256, np.int64))

    def add(self, pose: np.ndarray, seg: int, sigma: float, inliers: int, fit: float, key: int, epoch: int) -> None:
        if self.n == len(self.seg):
            for name in ("pose", "seg", "sigma", "inliers", "fit", "key", "epoch"):
                a = getattr(self, name)
                setattr(self, name, np.concatenate([a, np.empty_like(a)]))
        self.pose[self.n], self.seg[self.n], self.sigma[self.n], self.inliers[self.n] = pose, seg, sigma, inliers
        self.fit[self.n], self.key[self.n], self.epoch[self.n] = fit, key, epoch
        self.n += 1


class _Tracker:
    """The frame-by-frame state machine of :func:`track_ground` (see the module's docstring)."""

    def __init__(self, w: int, h: int, cfg: TrackSettings) -> None:
        self.w, self.h, self.cfg = w, h, cfg
        self.diag = float(np.hypot(w, h))
        self.corners = _frame_points(w, h)
        self.quad = self.corners[:4]
        self.rows = _Rows()
        self.links = _Links()
        self.bank: list[_Entry] = []
        self.orb = cv2.ORB_create(cfg.orb_features, fastThreshold=10)
        self.matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
        self.lk = dict(winSize=(cfg.window, cfg.window), maxLevel=cfg.levels,
                       criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 20, 0.03))
        self.i = -1
        self.seg = -1  # current segment; -1: not tracking
        self.epoch = 0  # counts new segments and corrections: see GroundMotion.epoch
        self.prev: np.ndarray | None = None

    # -- per frame ----------------------------------------------------------------------------------------------

    def step(self, g: np.ndarray) -> None:
        if g.shape != (self.h, self.w):
            raise ValueError(f"frame {self.i + 1} is {g.shape[1]}x{g.shape[0]}, earlier ones {self.w}x{self.h}")
        self.i += 1
        if not (self.seg >= 0 and self._track(g)):
            self._start(g)
        self.prev = g

    def _start(self, g: np.ndarray) -> None:
        """Begin a new segment on this frame, or mark it -1 when it has too few corners to track."""
        if not self._key(g, self.i):
            self.seg = -1
            self.rows.add(np.full((3, 3), np.nan), -1, np.inf, 0, np.inf, -1, -1)
            return
        self.seg = self.links.new(self.corners)
        self.seg_start = self.i
        self.key_pose, self.key_sigma = np.eye(3), 0.0
        self.motion = np.eye(3)
        self.pending = (g, self.i, self.pts_key)  # to the bank once the segment is confirmed
        self.epoch += 1
        self.rows.add(np.eye(3), self.seg, 0.0, len(self.pts_key), 0.0, self.i, self.epoch)

    def _key(self, g: np.ndarray, frame: int) -> bool:
        """Make ``g`` (frame ``frame``) the keyframe; False when it has too few corners to track."""
        pts = self._detect(g)
        if len(pts) < 2 * self.cfg.min_inliers:
            return False
        self.key_img, self.pts_key, self.key_frame = g, pts, frame
        self.h_prev, self.m_prev, self.m_key, self.key_hull, self.key_fit = np.eye(3), 0, 0, 0.0, 0.0
        return True

    def _track(self, g: np.ndarray) -> bool:
        """Place this frame against the keyframe; False (and the caller restarts) when not sure.

        A frame measured too loosely (its tracks thinned or bunched up, so its corners are extrapolated) is not
        used: the previous frame, which was measured well, becomes the keyframe and this one is measured again
        from it. Keyframes are therefore always well-measured frames, and each switch adds little to the chain.
        """
        cfg = self.cfg
        fit = self._measure(g)
        if fit is not None and self.key_frame < self.i - 1 \
                and fit.sigma > max(cfg.switch_sigma, cfg.switch_growth * self.key_fit):
            n = self.rows.n - 1
            pose, sigma = self._switch(self.prev, self.i - 1, self.rows.pose[n], float(self.rows.sigma[n]))
            self.rows.pose[n], self.rows.sigma[n] = pose, sigma
            if self.key_frame == self.i - 1:  # it is the keyframe now: all its error is the chain's
                self.rows.fit[n], self.rows.key[n], self.rows.epoch[n] = 0.0, self.i - 1, self.epoch
            fit = self._measure(g)
        if fit is None:
            return False
        inv = np.linalg.inv(fit.h)
        pose = _positive(self.key_pose @ inv, self.corners[4])
        sigma = float(np.hypot(self.key_sigma * _gain(fit.h, fit.at).max(), fit.sigma))
        self.motion, self.h_prev, self.m_prev = fit.h @ np.linalg.inv(self.h_prev), fit.h, fit.inliers
        if not self.m_key:  # what the keyframe's corners gave in the first frame after it: the trackable ones
            self.m_key, self.key_hull, self.key_fit = fit.inliers, fit.hull, fit.sigma
        if self.i - self.seg_start == cfg.confirm:
            self._confirm()
        zoom = _zoom(fit.h, fit.at[4])
        if fit.inliers < cfg.switch_ratio * self.m_key or fit.hull < cfg.switch_cover * self.key_hull \
                or not 1 / cfg.switch_zoom < zoom < cfg.switch_zoom:
            pose, sigma = self._switch(g, self.i, pose, sigma)
        own, key = (0.0, self.i) if self.key_frame == self.i else (fit.sigma, self.key_frame)
        self.rows.add(pose, self.seg, sigma, fit.inliers, own, key, self.epoch)
        return True

    def _measure(self, g: np.ndarray) -> _Fit | None:
        """H(keyframe -> this frame), or None when it is not sure (too few tracks or inliers, a low inlier ratio, a
        flip, a horizon in view, a jump no drone makes in a frame).

        The keyframe is warped by the predicted motion onto this frame and its corners are tracked from there
        (LK, forward-backward checked): every frame is measured against the keyframe itself, with the turn, zoom
        and tilt since then undone by the warp, so nothing drifts between keyframes.
        """
        cfg = self.cfg
        guess = self.motion @ self.h_prev  # keyframe -> this frame, predicted at constant velocity
        if not _plausible(guess, self.w, self.h, 8.0):
            guess = self.h_prev
        # where the keyframe has no picture, the frame's own shows through: LK's coarse levels would otherwise
        # see the fill's edge, not the ground, and lose the corners near the keyframe's border
        warped = g.copy()
        cv2.warpPerspective(self.key_img, guess, (self.w, self.h), dst=warped, flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_TRANSPARENT)
        q = _apply(guess, self.pts_key.astype(np.float64)).astype(np.float32)
        pad = cfg.window / 2 + 1
        seen = (q[:, 0] >= pad) & (q[:, 1] >= pad) & (q[:, 0] <= self.w - 1 - pad) & (q[:, 1] <= self.h - 1 - pad)
        if seen.sum() < cfg.min_inliers:
            return None
        k, q = self.pts_key[seen], q[seen]
        p1, st, _ = cv2.calcOpticalFlowPyrLK(warped, g, q.reshape(-1, 1, 2), None, **self.lk)
        back, st2, _ = cv2.calcOpticalFlowPyrLK(g, warped, p1, None, **self.lk)
        p1 = p1.reshape(-1, 2)
        ok = (st.ravel() == 1) & (st2.ravel() == 1) & (np.linalg.norm(back.reshape(-1, 2) - q, axis=1) < cfg.fb_px)
        ok &= (p1[:, 0] >= 0) & (p1[:, 1] >= 0) & (p1[:, 0] <= self.w - 1) & (p1[:, 1] <= self.h - 1)
        n = int(ok.sum())
        if n < cfg.min_inliers:
            return None
        k, c = k[ok], p1[ok]
        h, mask = cv2.findHomography(k, c, cv2.RANSAC, cfg.ransac_px, maxIters=500, confidence=0.999)
        if h is None:
            return None
        inl = mask.ravel().astype(bool)
        m = int(inl.sum())
        if m < cfg.min_inliers or m < cfg.min_ratio * n or m < cfg.keep_ratio * self.m_prev \
                or not _plausible(h, self.w, self.h, 8.0):
            return None
        step = h @ np.linalg.inv(self.h_prev)  # previous frame -> this one
        jump = np.linalg.norm(_apply(step, self.corners) - self.corners, axis=1).max()
        if jump > cfg.max_jump * self.diag or not _plausible(step, self.w, self.h, cfg.max_zoom_step):
            return None
        at = _apply(np.linalg.inv(h), self.corners)  # this frame's corners on the keyframe
        return _Fit(h, m, _fit_sigma(h, k[inl], c[inl], at), self._hull(c[inl]), at)

    def _detect(self, g: np.ndarray) -> np.ndarray:
        """Corners to track, spread over a grid of cells (so the fit is not extrapolated from one bush) and strong
        in absolute terms (a blank or blurred frame has none); not so near the edge that LK's window leaves it."""
        cfg = self.cfg
        eig = cv2.cornerMinEigenVal(g, 7, 3)
        pad = cfg.window // 2 + 2
        xs = np.linspace(pad, self.w - pad, cfg.grid[0] + 1).astype(int)
        ys = np.linspace(pad, self.h - pad, cfg.grid[1] + 1).astype(int)
        per_cell = max(1, cfg.max_corners // (cfg.grid[0] * cfg.grid[1]))
        found = []
        for y0, y1 in zip(ys[:-1], ys[1:]):
            for x0, x1 in zip(xs[:-1], xs[1:]):
                if y1 <= y0 or x1 <= x0 or eig[y0:y1, x0:x1].max() < cfg.min_corner_eig:
                    continue
                c = cv2.goodFeaturesToTrack(np.ascontiguousarray(g[y0:y1, x0:x1]), per_cell, 0.02, cfg.min_distance,
                                            blockSize=7)
                if c is not None:
                    found.append(c.reshape(-1, 2) + np.float32([x0, y0]))
        if not found:
            return np.zeros((0, 2), np.float32)
        pts = np.concatenate(found)
        xy = np.round(pts).astype(int)
        return pts[eig[xy[:, 1], xy[:, 0]] >= cfg.min_corner_eig]

    def _hull(self, pts: np.ndarray) -> float:
        return float(cv2.contourArea(cv2.convexHull(pts.astype(np.float32)))) if len(pts) >= 3 else 0.0

    # -- keyframes and the bank -------------------------------------------------------------------------------

    def _features(self, g: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """ORB keypoints and descriptors, strongest first: to recognize a place, whatever the turn and zoom."""
        kps, desc = self.orb.detectAndCompute(g, None)
        if desc is None or len(kps) < self.cfg.match_min_inliers:
            return None
        order = np.argsort([-k.response for k in kps], kind="stable")
        return np.array([kps[j].pt for j in order], np.float32), desc[order]

    def _confirm(self) -> None:
        """The new segment tracked: look for its place in the bank, and store its reference frame there."""
        g, frame, corners = self.pending
        self.pending = None
        feats = self._features(g)
        if feats is not None:
            self._relink(g, feats, np.eye(3), 0.0)
            self._store(g, feats, corners, np.eye(3), 0.0, frame)

    def _switch(self, g: np.ndarray, frame: int, pose: np.ndarray, sigma: float) -> tuple[np.ndarray, float]:
        """``g`` (frame ``frame``) becomes the keyframe: fresh corners, and its pose measured against the bank when
        that is more certain than the chain. Returns the frame's pose and 1-sigma."""
        if not self._key(g, frame):
            return pose, sigma  # too few corners to start afresh: keep following the old keyframe while it lasts
        if frame - self.seg_start >= self.cfg.confirm:
            feats = self._features(g)
            corrected = self._correct(g, feats, pose, sigma)
            if corrected[0] is not pose:  # measured against the bank, not chained: a new epoch begins
                self.epoch += 1
            pose, sigma = corrected
            if feats is not None:
                self._relink(g, feats, pose, sigma)
                self._store(g, feats, self.pts_key, pose, sigma, frame)
        self.key_pose, self.key_sigma = pose, sigma
        return pose, sigma

    def _in_seg(self, e: _Entry) -> tuple[np.ndarray, float] | None:
        """An entry's pose in the current segment's reference, and its 1-sigma (entry px), if it is the same place."""
        if e.seg == self.seg:
            return e.pose, e.sigma
        r, t, s = self.links.find(self.seg)
        re, te, se = self.links.find(e.seg)
        if r != re:
            return None
        return np.linalg.inv(t) @ te @ e.pose, float(np.sqrt(e.sigma ** 2 + s ** 2 + se ** 2))

    def _correct(self, g: np.ndarray, feats: tuple[np.ndarray, np.ndarray] | None, pose: np.ndarray, sigma: float
                 ) -> tuple[np.ndarray, float]:
        """Measure the keyframe directly against the bank entries of its place that overlap it most (their patches
        found where the chained pose puts them); adopt the most certain measurement when it is more certain than
        the chain and agrees with it."""
        quad = _apply(pose, self.quad)
        near = []
        for e in self.bank:
            got = self._in_seg(e)
            if got is not None:
                overlap = _iou(quad, _apply(got[0], self.quad))
                if overlap > 0.3:
                    near.append((overlap, e, got))
        best = (pose, sigma)
        for _, e, (e_pose, e_sigma) in sorted(near, key=lambda t: -t[0])[:2]:
            guess = np.linalg.inv(e_pose) @ pose  # this frame -> the entry's
            reach = 3 * sigma * float(_gain(guess, self.corners).max()) + 2
            if reach > _SEARCH:  # too unsure where to look: where ORB matches put it
                guess = None if feats is None else self._match(feats, e)
                reach = _SEARCH
            match = None if guess is None else self._refine(g, e, guess, int(np.ceil(reach)))
            if match is None:
                continue
            m, m_sigma = match
            direct = _positive(e_pose @ m, self.corners[4])
            s = float(np.hypot(m_sigma, e_sigma * _gain(np.linalg.inv(m), _apply(m, self.corners)).max()))
            disagree = np.linalg.norm(_apply(np.linalg.inv(direct) @ pose, self.corners) - self.corners, axis=1).max()
            if disagree > 3 * np.hypot(s, sigma) + 0.5:
                # one of them is wrong: keep the continuous chain, but unsure enough to cover the other
                best = (best[0], max(best[1], disagree / 3))
                continue
            e.used = self.i
            if s < best[1]:
                best = (direct, s)
        return best

    def _relink(self, g: np.ndarray, feats: tuple[np.ndarray, np.ndarray], pose: np.ndarray, sigma: float) -> None:
        """Look for this frame among bank entries of other places (ORB: a shortlist by votes of the strongest
        descriptors, then matches, RANSAC and patch refinement): a good match makes them one place."""
        root = self.links.find(self.seg)[0]
        others = [e for e in self.bank if self.links.find(e.seg)[0] != root]
        if not others:
            return
        cfg = self.cfg
        summary = np.concatenate([e.desc[:cfg.summary] for e in others])
        owner = np.concatenate([np.full(min(cfg.summary, len(e.desc)), j) for j, e in enumerate(others)])
        hits = [m.trainIdx for m in self.matcher.match(feats[1][:cfg.summary], summary) if m.distance < 48]
        votes = np.bincount(owner[hits], minlength=len(others))
        for j in np.argsort(-votes, kind="stable")[:3]:
            if votes[j] < 8:
                break
            e = others[j]
            coarse = self._match(feats, e)
            match = None if coarse is None else self._refine(g, e, coarse, _SEARCH)
            if match is None:
                continue
            m, m_sigma = match
            t = e.pose @ m @ np.linalg.inv(pose)  # this segment's ref -> the entry's segment's ref
            e_sigma = e.sigma * float(_gain(np.linalg.inv(m), _apply(m, self.corners)).max())
            s = float(np.sqrt(m_sigma ** 2 + sigma ** 2 + e_sigma ** 2))  # this frame's px
            s *= float(_gain(e.pose @ m, self.corners).max())  # -> the entry's reference px
            self.links.union(self.seg, e.seg, t, s, _apply(pose, self.corners))
            e.used = self.i
            return

    def _store(self, g: np.ndarray, feats: tuple[np.ndarray, np.ndarray], corners: np.ndarray, pose: np.ndarray,
               sigma: float, frame: int) -> None:
        """Keep the keyframe in the bank when it shows ground the bank has not got for this place."""
        quad = _apply(pose, self.quad)
        for e in self.bank:
            got = self._in_seg(e)
            if got is not None and _iou(quad, _apply(got[0], self.quad)) >= self.cfg.novel_iou:
                return
        # patch centres: the tracking corners and ORB's keypoints (more of them where texture is scarce), one per
        # 6 px cell, whole patches only, at most _PATCHES spread over the lot
        xy = np.round(np.concatenate([corners, feats[0]])).astype(int)
        xy = xy[(xy.min(axis=1) > _PATCH) & (xy[:, 0] < self.w - 1 - _PATCH) & (xy[:, 1] < self.h - 1 - _PATCH)]
        xy = xy[np.sort(np.unique(xy // 6, axis=0, return_index=True)[1])]
        xy = xy[::max(1, -(-len(xy) // _PATCHES))]
        offs = np.arange(-_PATCH, _PATCH + 1)
        patches = g[xy[:, 1, None, None] + offs[None, :, None], xy[:, 0, None, None] + offs[None, None, :]]
        self.bank.append(_Entry(self.seg, pose, sigma, feats[0], feats[1], xy.astype(np.float64), patches, frame,
                                 self.i))
        if len(self.bank) > self.cfg.bank_size:
            self.bank.remove(min(self.bank, key=lambda e: e.used))

    def _match(self, feats: tuple[np.ndarray, np.ndarray], e: _Entry) -> np.ndarray | None:
        """Rough homography this frame -> the entry's frame from ORB matches (ratio test, RANSAC); None unless
        well supported and plausible."""
        cfg = self.cfg
        pairs = self.matcher.knnMatch(feats[1], e.desc, k=2)
        good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < 0.8 * p[1].distance]
        if len(good) < cfg.match_min_inliers:
            return None
        q = feats[0][[m.queryIdx for m in good]]
        t = e.pts[[m.trainIdx for m in good]]
        h, mask = cv2.findHomography(q, t, cv2.RANSAC, cfg.match_px, maxIters=2000, confidence=0.999)
        if h is None:
            return None
        n = int(mask.sum())
        if n < cfg.match_min_inliers or n < cfg.match_min_ratio * len(good) or not _plausible(h, self.w, self.h, 8.0):
            return None
        return h

    def _refine(self, g: np.ndarray, e: _Entry, guess: np.ndarray, radius: int) -> tuple[np.ndarray, float] | None:
        """Precise homography this frame -> the entry's frame, and its 1-sigma (this frame's px), from the entry's
        patches: each is looked for (normalised cross-correlation, sub-pixel peak) in this frame resampled onto the
        entry by the current estimate, first within ``radius`` px, then within 1 px as the estimate converges (the
        resampling then matches the entry's geometry, so the peaks are unbiased). None unless enough patches
        agree on a plausible homography, spread over enough of this frame that it is not extrapolated far."""
        cfg = self.cfg
        h = guess
        for step in range(_PASSES):
            span = _PATCH + radius
            offs = np.arange(-span, span + 1, dtype=np.float32)
            size = len(offs)
            back = np.linalg.inv(h)
            ends = np.float32([[-span, -span], [span, -span], [span, span], [-span, span]])
            quads = _apply(back, e.corners[:, None, :] + ends)  # a window is inside if its (convex) quad is
            inside = (quads.min(axis=1) >= 0).all(axis=1) & (quads[..., 0].max(axis=1) <= self.w - 1) \
                & (quads[..., 1].max(axis=1) <= self.h - 1)
            if inside.sum() < cfg.min_inliers:
                return None
            grid = e.corners[inside].astype(np.float32)[:, None, None, :] + np.stack(np.meshgrid(offs, offs), -1)
            maps = cv2.perspectiveTransform(grid.reshape(-1, 1, 2), back).reshape(-1, size, 2)
            sampled = cv2.remap(g, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR).reshape(-1, size, size)
            score = np.stack([cv2.matchTemplate(w, p, cv2.TM_CCOEFF_NORMED)
                              for w, p in zip(sampled, e.patches[inside])])
            n, side = len(score), score.shape[1]
            y, x = np.divmod(score.reshape(n, -1).argmax(axis=1), side)
            rows = np.arange(n)
            ok = (x > 0) & (y > 0) & (x < side - 1) & (y < side - 1) & (score[rows, y, x] >= 0.8)
            x, y, rows = x[ok], y[ok], rows[ok]
            if len(rows) < cfg.min_inliers:
                return None
            where = np.stack([x - radius + _peak(score[rows, y, x - 1], score[rows, y, x], score[rows, y, x + 1]),
                              y - radius + _peak(score[rows, y - 1, x], score[rows, y, x], score[rows, y + 1, x])], 1)
            target = e.corners[np.flatnonzero(inside)[rows]]
            here = _apply(back, target + where)
            new, mask = cv2.findHomography(here, target, cv2.RANSAC, cfg.ransac_px, maxIters=1000, confidence=0.999)
            if new is None:
                return None
            inl = mask.ravel().astype(bool)
            if inl.sum() < cfg.min_inliers or inl.sum() < cfg.min_ratio * len(rows) \
                    or not _plausible(new, self.w, self.h, 8.0):
                return None
            moved = np.linalg.norm(_apply(new, self.corners) - _apply(h, self.corners), axis=1).max()
            h, radius = new, 1
            if moved < 0.05:
                break
        if self._hull(here[inl]) < cfg.match_cover * self.w * self.h:
            return None
        at = _apply(h, self.corners)
        sigma = _fit_sigma(h, here[inl], target[inl], self.corners) * float(_gain(np.linalg.inv(h), at).max())
        if moved > max(0.5, sigma):
            return None  # did not settle: the patches found keep changing what the fit extrapolates to
        return h, sigma

    # -- the result ----------------------------------------------------------------------------------------------

    def finish(self, width: int, height: int) -> GroundMotion:
        """Resolve links (every frame onto its place's root reference), scale to full resolution, and number the
        places 0, 1, ... in order of appearance. Segments that tracked nothing (one frame) become -1."""
        r = self.rows
        pose, seg, sigma = r.pose[:r.n].copy(), r.seg[:r.n].copy(), r.sigma[:r.n].copy()
        inliers, fit, key, epoch = r.inliers[:r.n].copy(), r.fit[:r.n].copy(), r.key[:r.n].copy(), r.epoch[:r.n].copy()
        children = np.bincount(self.links.parent, minlength=len(self.links.parent))  # counts itself too
        order = np.argsort(seg, kind="stable")
        order = order[seg[order] >= 0]
        for rows in np.split(order, np.flatnonzero(np.diff(seg[order])) + 1) if len(order) else []:
            s = int(seg[rows[0]])
            root, t, s_root = self.links.find(s)
            if len(rows) < 2 and root == s and children[s] == 1:
                seg[rows], pose[rows], sigma[rows], inliers[rows], fit[rows], epoch[rows] = -1, np.nan, np.inf, 0, \
                    np.inf, -1
            elif root != s:
                to_root = t @ pose[rows]
                seen = _apply(to_root, np.broadcast_to(self.corners, (len(rows), 5, 2)))  # frames on the root
                extra = s_root * _gain(np.linalg.inv(to_root), seen)
                sigma[rows] = np.hypot(sigma[rows], extra.max(axis=1))
                pose[rows], seg[rows] = to_root, root
        a = _center_scale(width / self.w, height / self.h)
        ok = seg >= 0
        pose[ok] = _positive(a @ pose[ok] @ np.linalg.inv(a), np.array([(width - 1) / 2, (height - 1) / 2]))
        scale = max(width / self.w, height / self.h)
        sigma[ok], fit[ok] = scale * np.hypot(sigma[ok], _Q_SMALL), scale * np.hypot(fit[ok], _Q_SMALL)
        places, first = np.unique(seg[ok], return_index=True)
        number = np.zeros(len(self.links.parent), np.int64)
        number[places[np.argsort(first)]] = np.arange(len(places))
        seg[ok] = number[seg[ok]]
        return GroundMotion(width, height, pose, seg, sigma, inliers, fit, key, epoch)
