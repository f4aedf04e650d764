"""Actors and crowd: leave the faces of people who consented visible, anonymize everyone else.

The lecture separates actors, who signed consent forms, from spectators and crowd. ``--consented DIR`` holds photos
of the actors. Every face region is checked in every frame on its own pixels: it stays visible only when dlib puts
it closer than ``max_distance`` to a consented photo. That threshold is strict (0.45 against dlib's usual 0.6: on
shared/data/identities no two photos of different people come closer than 0.5), and a face that is not clearly a
consented person (too small, turned away, a miss of the recognizer) is anonymized: when in doubt, anonymize. A
track is never trusted as a whole, so a tracker that swaps two people cannot leak the bystander.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deidcli.detection import FaceDetector
from deidcli.detections import Detections
from deidcli.errors import ConfigError
from deidcli.photos import load_photos
from deidcli.recognition.recognizer import DlibRecognizer, Recognizer, embed_faces

MIN_FACE_PX = 40  # below this height dlib's landmarks are guesses: such faces are always anonymized


@dataclass
class ConsentGallery:
    recognizer: Recognizer
    names: list[str]  # "identity (file)" of each consented photo
    embeddings: np.ndarray  # (N, D)
    max_distance: float = 0.45

    @classmethod
    def from_folder(cls, folder: Path, detector: FaceDetector, recognizer: Recognizer | None = None,
                    max_distance: float = 0.45) -> "ConsentGallery":
        """The largest face of each photo in ``folder`` (sub-folders or ``identities.csv`` name the people)."""
        rec = recognizer or DlibRecognizer()
        names, embeds = [], []
        for p in load_photos(folder, detector):
            if p.box is not None:
                names.append(f"{p.identity} ({p.path.name})" if p.identity != p.path.stem else p.path.name)
                embeds.append(embed_faces(rec, p.image, p.box[None])[0])
        if not embeds:
            raise ConfigError(f"--consented {folder}: no face found in any photo")
        return cls(rec, names, np.stack(embeds), max_distance)

    def match(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, list[str | None], np.ndarray]:
        """For each box: visible?, the consented photo it matched (or None), and the distance to the nearest."""
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        visible = np.zeros(len(boxes), dtype=bool)
        dist = np.full(len(boxes), np.inf)
        who: list[str | None] = [None] * len(boxes)
        big = np.nonzero((boxes[:, 3] - boxes[:, 1]) >= MIN_FACE_PX)[0]
        if len(big):
            e = embed_faces(self.recognizer, image, boxes[big])
            d = np.linalg.norm(e[:, None] - self.embeddings[None], axis=2)
            for k, i in enumerate(big):
                j = int(d[k].argmin())
                dist[i] = float(d[k, j])
                if dist[i] < self.max_distance:
                    visible[i], who[i] = True, self.names[j]
        return visible, who, dist


@dataclass
class ConsentLog:
    """Which tracks were left visible, as whom, in how many frames, and how sure the recognizer was."""

    tracks: dict[int | tuple[str, int], dict] = field(default_factory=dict)  # track id, or ("face", k) untracked
    threshold: float = 0.45

    def record(self, track: int | tuple[str, int], frame: int, visible: bool, who: str | None, distance: float
               ) -> None:
        t = self.tracks.setdefault(track, {"checked": 0, "visible": 0, "who": {}, "distances": [], "frames": []})
        t["checked"] += 1
        if visible:
            t["visible"] += 1
            t["who"][who] = t["who"].get(who, 0) + 1
            t["distances"].append(distance)
            t["frames"].append(frame)

    def as_list(self) -> list[dict]:
        """Every track left visible in at least one frame (``track`` None: an untracked face, e.g. in a photo)."""
        out = []
        for key, t in sorted(self.tracks.items(), key=lambda kv: str(kv[0])):
            if not t["visible"]:
                continue
            out.append({
                "track": key if isinstance(key, int) else None,
                "consented_as": max(t["who"], key=t["who"].get),
                "frames_visible": t["visible"],
                "frames_checked": t["checked"],
                "first_visible_frame": min(t["frames"]),
                "last_visible_frame": max(t["frames"]),
                "median_distance": round(float(np.median(t["distances"])), 4),
                "why": f"nearer than {self.threshold} to a consented photo in each visible frame (anonymized in "
                       "every other frame)",
            })
        return out


def split_consented(image: np.ndarray, dets: Detections, gallery: ConsentGallery, face_class: int, frame: int,
                    log: ConsentLog | None = None) -> Detections:
    """``dets`` without the face regions of consented people (those stay visible); everything else is kept."""
    faces = np.nonzero(dets.class_id == face_class)[0]
    if not len(faces):
        return dets
    visible, who, dist = gallery.match(image, dets.xyxy[faces])
    if log is not None:
        log.threshold = gallery.max_distance
        for k, i in enumerate(faces):
            tid = -1 if dets.tracker_id is None else int(dets.tracker_id[i])
            log.record(tid if tid >= 0 else ("face", k), frame, bool(visible[k]), who[k], float(dist[k]))
    keep = np.ones(len(dets), dtype=bool)
    keep[faces[visible]] = False
    return dets[keep]
