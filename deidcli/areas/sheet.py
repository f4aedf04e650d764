"""``deid areas``: a contact sheet of frames every few seconds with every place outlined and its state, so an operator
checks placement before a long render."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from deidcli.anonymizer import eight_bit
from deidcli.areas.places import Places
from deidcli.outputs import atomic_output
from deidcli.video import VideoReader

FONT = cv2.FONT_HERSHEY_SIMPLEX
# outline colours (RGB) by state
COLOURS = {"placed": (0, 220, 0), "tracked": (0, 200, 255), "uncertain": (255, 160, 0), "masked whole": (255, 0, 0),
           "keep": (90, 120, 255)}


def _colour(state: str) -> tuple[int, int, int]:
    if state.startswith("keep"):
        return COLOURS["keep"]
    return next((c for name, c in COLOURS.items() if state.startswith(name)), COLOURS["masked whole"])


def _text(image: np.ndarray, text: str, org: tuple[int, int], colour=(255, 255, 255)) -> None:
    """Text on a dark band, readable over any footage."""
    (w, h), base = cv2.getTextSize(text, FONT, 0.45, 1)
    x, y = org
    band = image[max(0, y - h - 3):y + base + 1, max(0, x - 2):x + w + 2]
    band[:] = band // 3
    cv2.putText(image, text, (x, y), FONT, 0.45, colour, 1, cv2.LINE_AA)


def _thumb(image: np.ndarray, placed, places: Places, index: int, time_s: float, width: int) -> np.ndarray:
    h, w = image.shape[:2]
    f = width / w
    thumb = cv2.resize(eight_bit(image), (width, max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    names = [a.name for a in places.areas] + [z.name for z in places.zones]
    for k, poly in placed.keeps + ([] if placed.whole else placed.masks):
        pts = np.round(poly * f * 16).astype(np.int32)[None]
        cv2.polylines(thumb, pts, True, _colour(placed.states[k]), 2, cv2.LINE_AA, shift=4)
        top = poly[np.argmin(poly[:, 1])] * f  # the name at the outline's highest point, inside the picture
        _text(thumb, names[k], (int(np.clip(top[0], 2, width - 60)), int(np.clip(top[1] - 4, 14, thumb.shape[0] - 4))),
              _colour(placed.states[k]))
    if placed.whole:  # a red frame: this frame is masked whole
        cv2.rectangle(thumb, (1, 1), (thumb.shape[1] - 2, thumb.shape[0] - 2), COLOURS["masked whole"], 4)
    lines = [f"frame {index}, {time_s:.1f} s"] + [f"{names[k]}: {s}" for k, s in sorted(placed.states.items())]
    for n, text in enumerate(lines):
        _text(thumb, text, (6, 18 + 17 * n))
    return thumb


def contact_sheet(video: Path, places: Places, out: Path, every_s: float = 2.0, columns: int = 4,
                  width: int = 480, overwrite: bool = False, on_advance=None) -> dict:
    """Write a PNG grid of frames ``every_s`` apart (and the last) with every place outlined: green placed,
    cyan tracked, orange uncertain (grown), blue keep, a red border where the frame is masked whole. Telemetry
    gaps are shown (masked whole) rather than refused. Returns the places' report over the frames shown."""
    places = replace(places, cfg=places.cfg.with_overrides(telemetry_gaps="mask"))
    reader = VideoReader(video)
    info = reader.info
    placer = places.for_video(video, info, on_advance)
    fps = placer.fps
    step = max(1, round(every_s * fps))
    last = (info.frames or 0) - 1
    thumbs = []
    for frame in reader.frames():
        time_s = placer.time_of(frame.index, frame.pts)
        if frame.index % step == 0 or frame.index == last:
            thumbs.append(_thumb(frame.image, placer.place(frame.index, time_s), places, frame.index, time_s, width))
    rows = [thumbs[i:i + columns] for i in range(0, len(thumbs), columns)]
    blank = np.zeros_like(thumbs[0])
    grid = np.vstack([np.hstack(r + [blank] * (columns - len(r))) for r in rows])
    with atomic_output(out, overwrite, video) as tmp:
        ok, png = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
        tmp.write_bytes(png.tobytes())
    return {"sheet": str(out), "frames_shown": len(thumbs), **placer.report()}
