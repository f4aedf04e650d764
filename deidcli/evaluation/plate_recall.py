"""Plate recall as deid detects plates: the labelled photos of shared/data/plates and the fisheye clip's plates."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from deidcli.evaluation.recall import matched
from deidcli.video import VideoReader

FISHEYE_VIDEO = "fisheye_plates_2560x1920.mp4"  # in shared/data/videos
# The readable plates of frames 0, 8, 16, 22, 23 of the fisheye clip, boxed by platedet and each checked by eye on
# bench/fisheye_plates.py's contact sheet (two more, too dim or cut by the image edge, are not listed).
FISHEYE_PLATES = {
    0: [[163, 853, 203, 883], [466, 739, 496, 757]],
    8: [[280, 1058, 325, 1089], [619, 935, 651, 955]],
    16: [[2292, 1166, 2444, 1302], [95, 942, 131, 968]],
    22: [[1546, 1118, 1584, 1186], [2399, 1339, 2558, 1500]],
    23: [[1533, 1082, 1572, 1152], [2430, 1298, 2558, 1456]],
}


def photos_found(det, folder: Path) -> tuple[int, int]:
    """Plates of ``folder/boxes.csv`` (image,x,y,w,h) that ``det`` finds at IoU 0.3, and how many there are."""
    found = total = 0
    with open(folder / "boxes.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            img = cv2.cvtColor(cv2.imread(str(folder / row["image"])), cv2.COLOR_BGR2RGB)
            x, y, w, h = (float(row[k]) for k in "xywh")
            found += matched(np.array([[x, y, x + w, y + h]]), det.detect(img).xyxy, 0.3)
            total += 1
    return found, total


def fisheye_found(det, video: Path) -> int:
    """Of the 10 :data:`FISHEYE_PLATES`, those ``det`` finds at IoU 0.3."""
    found = 0
    for f in VideoReader(video).frames():
        if f.index in FISHEYE_PLATES:
            found += matched(np.array(FISHEYE_PLATES[f.index], float), det.detect(f.image).xyxy, 0.3)
        if f.index >= max(FISHEYE_PLATES):
            break
    return found
