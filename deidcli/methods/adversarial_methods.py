"""The adversarial methods at frame level: a change people barely see, made so machines fail on the face.

* ``ifgvm``: open-set dodging against FaceNet (white box): the face is moved, within an L-infinity budget (4 grey
  levels, then 6), until its embedding is ``strength`` away from the original's (unit vectors; 1.0 is FaceNet's
  match distance) in each of seven crops a recognizer might cut (:func:`square_views`), so a search by face no
  longer finds the person. Deterministic: the same face gets the same change.
* ``dedetect``: face de-detection against MTCNN (white box) on the whole frame: the faces are changed until MTCNN,
  run on the whole 8-bit frame, finds none of them. A face de-detected in a crop of the frame was still found in the
  frame (its image pyramid is resampled from another size, so other candidates reach R-Net and O-Net); the loss is
  therefore averaged over random trims of the frame's borders (expectation over the pyramid's alignment) and the
  stopping rule is the detector on the frame itself. Budgets escalate (6, 10, 14, 20 grey levels) until it works;
  a face MTCNN still finds at the largest, in the frame or in the JPEG a JPEG photo is written as, is frosted instead
  (fail closed); a video is checked once encoded (deidcli/methods/stored_check.py). Slow: a 512 px frame takes
  9-42 s on 2 cores, a 1382x1868 photo 2.5 min.

The method changes the face square at the region's own resolution and paste it back without feathering: the change is
already invisible, and a feathered edge would cut into the pattern that makes it work.
"""

from __future__ import annotations

import hashlib
import itertools

import numpy as np
import torch
import torch.nn.functional as F

from deidcli.detections import box_iou
from deidcli.methods import adversarial as adv
from deidcli.methods import naive
from deidcli.methods.basis_methods import face_square
from deidcli.methods.eigenfaces import resize

STEPS = 50
ALPHA = 1 / 255
EPS = 4 / 255  # at most 4 grey levels per pixel: face PSNR stays above about 36 dB whatever happens
IFGVM_BUDGETS = (EPS, 6 / 255)  # a face not done within 4 levels goes on within 6 before it is frosted


def random_start(x: torch.Tensor, eps: float) -> torch.Tensor:
    """``x`` moved by uniform noise within half the budget, seeded by the pixels themselves (the same face gets the
    same start, so a rerun gives the same file). Dodging starts where its loss, the embedding's similarity to
    itself, is at its maximum: the gradient there is zero or numerical noise, and whether the attack moves at all
    would depend on the machine's arithmetic."""
    key = hashlib.blake2b(x.detach().float().cpu().numpy().tobytes(), digest_size=8).digest()
    g = torch.Generator().manual_seed(int.from_bytes(key, "little") & 0x7FFF_FFFF_FFFF_FFFF)
    noise = (torch.rand(x.shape, generator=g) * 2 - 1) * (eps / 2)
    return (x + noise.to(x.device, x.dtype)).clamp(0, 1)


VIEW_SHIFT, VIEW_GROW = 0.02, 0.04  # a recognizer's own crop: the square moved by 2% of its side, or 4% larger/smaller
LOSS_VIEWS = 3  # views in each step's loss, taken in turn; the stopping rule asks every view
# Distance to spare in every view: a recognizer resamples its own crop (another side length, rounded elsewhere), and
# FaceNet on the detector's box read 0.998 where every view of the attack had reached 1.0 (3 frames of the sample).
VIEW_MARGIN = 0.03


def square_views(h: int, w: int, inner: float, framing: float) -> list[tuple[int, int, int, int]]:
    """``(y0, y1, x0, x1)`` of the face square in a region crop (:func:`face_square`) and of six crops a recognizer
    might cut instead: moved by :data:`VIEW_SHIFT` of its side along both diagonals, both ways, and grown and
    shrunk by :data:`VIEW_GROW`; each clipped to the crop."""
    y0, y1, x0, x1 = face_square(h, w, inner, framing)
    side = y1 - y0
    d, g = max(1, round(VIEW_SHIFT * side)), max(1, round(VIEW_GROW * side / 2))
    moves = [(0, 0, 0), (d, d, 0), (-d, -d, 0), (d, -d, 0), (-d, d, 0), (0, 0, g), (0, 0, -g)]
    out = []
    for dy, dx, grow in moves:
        a, b = max(0, y0 + dy - grow), min(h, y1 + dy + grow)
        c, e = max(0, x0 + dx - grow), min(w, x1 + dx + grow)
        out.append((a, max(b, a + 1), c, max(e, c + 1)))
    return out


def ifgvm_method(x, s, scale, g, color, inner, track, model, coding=None):
    """Dodging FaceNet in every one of :func:`square_views`: a change made for one crop of the face was undone by a
    crop one or two pixels off (FaceNet on the detector's own box measured 0.51-0.80 where the attack's square
    had reached 1.0; bench/ifgvm_alignment.py), so the loss is averaged over the views, a few at a step, and the
    face is done when every view is ``s`` (and :data:`VIEW_MARGIN`) away from its original.

    ``coding`` (the crop as the output stores it): a video keeps the face in 4:2:0 even at crf 0, and a face left
    1.01 from itself in 8-bit RGB came back 0.989 from the file (the run refused, exit 14). With it, every other
    step's loss sees the stored face (gradient passed straight through, as de-detection's) and the face is done
    when the stored face is ``s`` away."""
    rec = model
    _, _, h, w = x.shape
    dtype, x = x.dtype, x.float()
    views = square_views(h, w, inner, rec.framing)

    def embed(a: torch.Tensor, which: list[int]) -> torch.Tensor:  # (V * B, D), view-major
        cuts = [resize(a[..., y0:y1, x0:x1], rec.size, rec.size) for y0, y1, x0, x1 in (views[k] for k in which)]
        return F.normalize(rec.embed(torch.cat(cuts)), dim=1)

    every = list(range(len(views)))

    def stored(a: torch.Tensor) -> torch.Tensor:  # 8 bits, through the output's coding where there is one
        if coding is None:
            return (a * 255).round() / 255
        return torch.cat([to_tensor(coding(to_image(c))) for c in a]).to(a.device, a.dtype)

    with torch.no_grad():
        own = embed(x, every).view(len(views), len(x), -1)
    turn = itertools.count()  # the step, for the views each step's loss takes in turn
    region = torch.zeros((len(x), 1, h, w), device=x.device)
    y0, y1 = min(v[0] for v in views), max(v[1] for v in views)
    x0, x1 = min(v[2] for v in views), max(v[3] for v in views)
    region[..., y0:y1, x0:x1] = 1

    def attack(idx: torch.Tensor, start: torch.Tensor, eps: float) -> adv.AttackResult:
        mine = own[:, idx]

        def loss(a: torch.Tensor) -> torch.Tensor:
            k = next(turn)
            which = [(k * LOSS_VIEWS + i) % len(views) for i in range(LOSS_VIEWS)]
            view = a + (stored(a) - a).detach() if coding is not None and k % 2 else a
            return (embed(view, which).view(LOSS_VIEWS, len(a), -1) * mine[which]).sum(2).mean(0)

        def done(a: torch.Tensor) -> torch.Tensor:
            a = stored(a)  # judged as it will be stored
            return (embed(a, every).view(len(views), len(a), -1) - mine).norm(dim=2).min(0).values >= s + VIEW_MARGIN

        if eps == IFGVM_BUDGETS[0]:
            start = start + (random_start(start, eps) - start) * region[idx]
        return adv.iterate(x[idx], loss, done, steps=STEPS, alpha=ALPHA, eps=eps, region=region[idx], start=start)

    r, _ = adv.escalate(x, attack, IFGVM_BUDGETS)
    return r.x.to(dtype), r.success, (f"ifgvm: FaceNet distance {s:g} not reached in every crop within "
                            f"{round(IFGVM_BUDGETS[-1] * 255)} grey levels")


DEDETECT_BUDGETS = (6 / 255, 10 / 255, 14 / 255, 20 / 255)
DEDETECT_REGION = 1.2  # the change may reach 20% beyond the face box (methods.md section 7)
JITTER = 12  # pixels trimmed at random from each border per sample: the pyramid's alignment in another image
SAMPLES = 2  # trims averaged per step
FALLBACK_SIGMA, FALLBACK_GRAIN = 24.0, 0.08  # frost's defaults, for a face the attack could not hide
FOUND_IOU = 0.3  # the overlap at which a detection counts as the face de-detection hides


def found_at(dets, boxes: np.ndarray) -> np.ndarray:
    """``(N,) bool``: which of ``boxes`` a detection of ``dets`` overlaps by :data:`FOUND_IOU`."""
    return (box_iou(dets.xyxy, boxes) >= FOUND_IOU).any(0) if len(dets) else np.zeros(len(boxes), dtype=bool)


def to_image(x: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` in ``[0, 1]`` -> ``H x W x 3`` uint8, rounded as it will be stored."""
    return (x.detach().float().cpu().permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()


def face_masks(shape: tuple[int, int], boxes: np.ndarray, grow: float) -> torch.Tensor:
    """``(1, 1, H, W)`` union of ``boxes: (N, 4)`` grown by ``grow`` about their centres."""
    h, w = shape
    m = torch.zeros((1, 1, h, w))
    for x1, y1, x2, y2 in boxes:
        cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * grow / 2, (y2 - y1) * grow / 2
        m[..., max(0, int(cy - hh)):min(h, int(np.ceil(cy + hh))), max(0, int(cx - hw)):min(w, int(np.ceil(cx + hw)))] = 1
    return m


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """``H x W x 3`` uint8 -> ``(1, 3, H, W)`` in ``[0, 1]``."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255


def dedetect_frame(frame: np.ndarray, boxes: np.ndarray, detector, margin: float = 0.1, steps: int = 50,
                   budgets: tuple[float, ...] = DEDETECT_BUDGETS, seed: int = 0, coding=None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Hide the faces at ``boxes: (N, 4)`` of ``frame`` (``H x W x 3`` uint8 RGB) from ``detector`` (an
    ``MTCNNDetector``), each candidate ``margin`` below MTCNN's thresholds. Returns the new frame and, per box,
    whether the detector still finds it there (those the caller must anonymize otherwise).

    ``coding(image) -> image``: the frame as the output stores it (a JPEG's round trip). The face must then stay
    hidden there too: a change of a few grey levels is partly quantized away, and MTCNN found a face in the JPEG of
    a photo it no longer found in. Every other sample of the loss is taken through the coding, its gradient passed
    straight through (the coding is not differentiable; its loss is close to the identity's), and the stopping
    rule asks both."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    x = to_tensor(frame)
    faces = torch.from_numpy(boxes)[None]
    region = face_masks(frame.shape[:2], boxes, DEDETECT_REGION)
    g = torch.Generator().manual_seed(seed)

    def coded(a: torch.Tensor) -> torch.Tensor:
        return a + (to_tensor(coding(to_image(a[0]))).to(a.device) - a).detach()

    def loss(a: torch.Tensor) -> torch.Tensor:
        total = a.new_zeros(1)
        for k in range(SAMPLES):
            l, t, r, b = torch.randint(0, JITTER + 1, (4,), generator=g).tolist()
            view = coded(a) if coding is not None and k % 2 else a
            part = view[..., t:a.shape[-2] - b, l:a.shape[-1] - r]
            total = total + detector.cascade_loss(part, faces - torch.tensor([l, t, l, t]), margin, min_iou=0.05)
        return total / SAMPLES

    from deidcli.detection.mtcnn import PRUNE  # here: MTCNN's nets bring torchvision.ops, 1 s of every start-up

    quick = PRUNE * float(np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]).min()) if len(boxes) else 0

    def found_in(image: np.ndarray) -> np.ndarray:
        # A quick look first (the pyramid without the levels for faces far smaller than these): while it still
        # finds a face the attack goes on; once it finds none, the full detector on the whole frame decides.
        seen = found_at(detector.detect(image, 1.0, min_window=quick), boxes)
        return seen if seen.any() else found_at(detector.detect(image, 1.0), boxes)

    def found(a: torch.Tensor) -> np.ndarray:
        image = to_image(a[0])
        seen = found_in(image)
        if coding is None or seen.all():
            return seen
        return seen | found_in(coding(image))

    def attack(idx: torch.Tensor, start: torch.Tensor, eps: float) -> adv.AttackResult:
        return adv.dedetect(x, loss, lambda a: torch.tensor([found(a).any()]), region=region, start=start,
                            steps=steps, alpha=1 / 255, eps=eps, norm="l2")

    r, _ = adv.escalate(x, attack, budgets)
    out = to_image(r.x[0])
    return out, found(r.x)


def dedetect_crops(x, s, scale, g, color, inner, track, model):
    """De-detection of each crop on its own, the face being the crop's central ``inner`` share (for callers
    without a frame; `deid run` goes through :func:`dedetect_frame`). A crop whose face MTCNN still finds is
    frosted (fail closed)."""
    out = []
    for crop in x:
        h, w = crop.shape[-2:]
        side_h, side_w = h * inner, w * inner
        box = np.array([[(w - side_w) / 2, (h - side_h) / 2, (w + side_w) / 2, (h + side_h) / 2]])
        done, still_found = dedetect_frame(to_image(crop), box, model, margin=s)
        y = to_tensor(done).to(x.device)
        if still_found.any():
            y = naive.gaussian_noise(naive.fast_gaussian_blur(y, FALLBACK_SIGMA * h / 112), FALLBACK_GRAIN, generator=g)
        out.append(y[0].to(x.dtype))
    return torch.stack(out)



def dedetect_probe(detector, frame: np.ndarray, boxes: np.ndarray, strength: float):
    """``probe(written) -> (N,) bool``: the faces at ``boxes`` that ``detector`` finds in a written frame."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()

    def probe(written: np.ndarray) -> np.ndarray:
        return found_at(detector.detect(written, 1.0), boxes)

    return probe


def ifgvm_probe(rec, frame: np.ndarray, boxes: np.ndarray, strength: float):
    """``probe(written) -> (N,) bool``: the faces at ``boxes`` that FaceNet, on its own crop at each box, finds
    closer than ``strength`` to themselves in ``frame`` (still a match)."""
    from deidcli.recognition.recognizer import embed_faces

    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
    own = embed_faces(rec, frame, boxes)

    def probe(written: np.ndarray) -> np.ndarray:
        return np.linalg.norm(embed_faces(rec, written, boxes) - own, axis=1) < strength

    return probe
