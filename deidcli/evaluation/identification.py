"""Re-identification of anonymized photos: does a recognizer still match them to their person?

Protocol (methods.md section 11.3): each anonymized photo is a probe; the gallery is every *other* original photo.
Closed set, the probe is identified when its nearest gallery photo shows the same person; open set (how a search
system answers), only when that nearest photo is also within the recognizer's match distance (0.6 for dlib). The
face box comes from the original, so the recognizer looks exactly where the face was (the attacker knows where).

With no identity left, closed-set rank-1 falls to chance, ``sum n_i (n_i - 1) / (N (N - 1))`` over identities with
``n_i`` photos, not to zero: :attr:`IdentificationResult.chance` reports that floor beside the measured rate.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from deidcli.evaluation.recognizer import DlibRecognizer


@dataclass
class IdentificationResult:
    probes: int
    rank1_hits: int  # closed set
    rank1_hits_clean: int
    open_hits: int  # nearest is the same person and within the match distance
    open_hits_clean: int
    identities: int
    chance: float
    template_hits: int  # closed set against per-identity mean embeddings (methods.md 11.3)
    template_hits_clean: int

    @property
    def rank1_template(self) -> float:
        return self._rate(self.template_hits)

    def _rate(self, hits: int) -> float:
        return hits / self.probes if self.probes else float("nan")

    @property
    def rank1_open(self) -> float:
        return self._rate(self.open_hits)

    @property
    def rank1_open_clean(self) -> float:
        return self._rate(self.open_hits_clean)

    @property
    def rank1(self) -> float:
        return self._rate(self.rank1_hits)

    @property
    def rank1_clean(self) -> float:
        return self._rate(self.rank1_hits_clean)


def load_identities(folder: Path) -> list[tuple[str, Path]]:
    with open(folder / "identities.csv", newline="") as fh:
        return [(row["identity_id"], folder / row["file"]) for row in csv.DictReader(fh)]


def _largest(boxes: np.ndarray) -> np.ndarray:
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return boxes[int(np.argmax(areas))][None]


def rank1_identification(
    folder: Path,
    anonymize: Callable[[np.ndarray], np.ndarray],
    recognizer: DlibRecognizer | None = None,
    max_side: int = 1024,
) -> IdentificationResult:
    """Rank-1 identification rate of ``anonymize``'d photos against the other originals (and of the originals)."""
    rec = recognizer or DlibRecognizer()
    ids, clean, anon = [], [], []
    for identity, path in load_identities(folder):
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((max_side, max_side))  # photos up to 4000 px; the recognizer works on a 150 px chip
            img = np.asarray(im)
        boxes = rec.find_faces(img)
        if len(boxes) == 0:
            continue  # no face dlib can see even in the original: nothing to measure
        box = _largest(boxes)
        ids.append(identity)
        clean.append(rec.embed(img, box)[0])
        anon.append(rec.embed(anonymize(img), box)[0])
    ids_arr = np.array(ids)
    clean_arr, anon_arr = np.stack(clean), np.stack(anon)

    def hits(probes: np.ndarray) -> tuple[int, int]:
        d = np.linalg.norm(probes[:, None] - clean_arr[None], axis=2)
        np.fill_diagonal(d, np.inf)  # a probe's own original is not in its gallery
        nearest = d.argmin(axis=1)
        same = ids_arr[nearest] == ids_arr
        close = d[np.arange(len(d)), nearest] < rec.match_distance
        return int(same.sum()), int((same & close).sum())

    def template_hits(probes: np.ndarray) -> int:
        labels = sorted(set(ids))
        found = 0
        for i, probe in enumerate(probes):
            best, best_d = None, np.inf
            for label in labels:
                members = (ids_arr == label) & (np.arange(len(ids_arr)) != i)  # the probe's own photo left out
                if not members.any():
                    continue
                dist = np.linalg.norm(probe - clean_arr[members].mean(axis=0))
                if dist < best_d:
                    best, best_d = label, dist
            found += best == ids_arr[i]
        return int(found)

    n = len(ids)
    counts = np.unique(ids_arr, return_counts=True)[1]
    chance = float((counts * (counts - 1)).sum() / (n * (n - 1)))
    (a_closed, a_open), (c_closed, c_open) = hits(anon_arr), hits(clean_arr)
    return IdentificationResult(
        n, a_closed, c_closed, a_open, c_open, len(set(ids)), chance, template_hits(anon_arr), template_hits(clean_arr)
    )
