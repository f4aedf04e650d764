"""Make sample_videos/astronaut_pan.mp4: a 3 s clip with camera motion and an audio track, from public-domain data.

The picture is NASA's photo of astronaut Eileen Collins (public domain), shipped in scikit-image as
``skimage.data.astronaut()``; the camera pans and zooms over it. The audio is a generated 440 Hz tone. The file
carries a title and a GPS location tag so ``--strip-metadata`` has something to strip.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
from skimage import data

W, H, FPS, SECONDS = 640, 360, 25, 3


def frames() -> list[np.ndarray]:
    photo = data.astronaut()  # 512 x 512 RGB
    canvas = cv2.copyMakeBorder(photo, 64, 64, 128, 128, cv2.BORDER_REFLECT)
    out = []
    n = FPS * SECONDS
    for i in range(n):
        t = i / (n - 1)
        zoom = 1.0 - 0.25 * np.sin(np.pi * t)  # zoom in and back out
        cw, ch = int(640 * zoom), int(360 * zoom)
        cx = int(128 + 256 + 120 * (t - 0.5) * 2)  # pan left to right across the face
        cy = int(64 + 200 - 40 * np.sin(2 * np.pi * t))
        x0 = int(np.clip(cx - cw // 2, 0, canvas.shape[1] - cw))
        y0 = int(np.clip(cy - ch // 2, 0, canvas.shape[0] - ch))
        out.append(cv2.resize(canvas[y0 : y0 + ch, x0 : x0 + cw], (W, H), interpolation=cv2.INTER_AREA))
    return out


def main(dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}", "-r", str(FPS), "-i", "pipe:0",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={SECONDS}",
        "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "medium", "-crf", "23", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "64k", "-shortest",
        "-metadata", "title=deid sample: NASA astronaut photo (public domain)",
        "-metadata", "location=+28.5729-080.6490/",
        str(dst),
    ]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    for f in frames():
        proc.stdin.write(np.ascontiguousarray(f).tobytes())
    proc.stdin.close()
    if proc.wait() != 0:
        sys.exit("ffmpeg failed to write the sample clip")
    print(dst)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "sample_videos/astronaut_pan.mp4"))
