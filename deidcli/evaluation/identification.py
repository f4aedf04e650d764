"""Re-identification of anonymized photos: does a recognizer still match them to their person?

Protocol (methods.md section 11.3): each anonymized photo is a probe; the gallery is every *other* original photo.
Closed set, the probe is identified when its nearest gallery photo shows the same person; open set (how a search
system answers), only when that nearest photo is also within the recognizer's match distance (0.6 for dlib). The
face box comes from the original, so the recognizer looks exactly where the face was (the attacker knows where).

With no identity left, closed-set rank-1 falls to chance, ``sum n_i (n_i - 1) / (N (N - 1))`` over identities with
``n_i`` photos, not to zero: :attr:`IdentificationResult.chance` reports that floor beside the measured rate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deidcli.photos import largest, load_rgb, photo_files
from deidcli.recognition.recognizer import DlibRecognizer, embed_faces


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


def rank1_identification(
    folder: Path,
    anonymize: Callable[[np.ndarray], np.ndarray],
    recognizer: DlibRecognizer | None = None,
    max_side: int = 1024,
) -> IdentificationResult:
    """Rank-1 identification rate of ``anonymize``'d photos against the other originals (and of the originals)."""
    rec = recognizer or DlibRecognizer()
    ids, clean, anon = [], [], []
    for identity, path in photo_files(folder):
        img = load_rgb(path, max_side)
        box = largest(rec.find_faces(img))
        if box is None:
            continue  # no face dlib can see even in the original: nothing to measure
        ids.append(identity)
        clean.append(embed_faces(rec, img, box)[0])
        anon.append(embed_faces(rec, anonymize(img), box)[0])
    ids_arr = np.array(ids)
    clean_arr, anon_arr = np.stack(clean), np.stack(anon)

    def hits(probes: np.ndarray) -> tuple[int, int]:
        closed = identity_ranks(probes, ids_arr, clean_arr, ids_arr) == 1  # a probe's own original left out
        return int(closed.sum()), int(open_set_hits(probes, clean_arr, ids_arr, rec.match_distance).sum())

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


def identity_ranks(probes: np.ndarray, probe_ids: np.ndarray, gallery: np.ndarray, gallery_ids: np.ndarray,
                   exclude_same_index: bool = True) -> np.ndarray:
    """Rank (1 = first) of each probe's true identity when identities are sorted by their nearest gallery photo.

    ``probes: (P, D)``, ``gallery: (G, D)``; with ``exclude_same_index`` probe ``i`` does not see gallery photo
    ``i`` (its own original). A probe whose identity has no other photo gets rank ``inf`` (it cannot be found).
    """
    d = np.linalg.norm(probes[:, None] - gallery[None], axis=2)
    if exclude_same_index:
        np.fill_diagonal(d, np.inf)
    labels = np.unique(gallery_ids)
    per_id = np.stack([d[:, gallery_ids == lab].min(axis=1) for lab in labels], axis=1)  # (P, identities)
    ranks = np.full(len(probes), np.inf)
    for i, pid in enumerate(probe_ids):
        j = int(np.nonzero(labels == pid)[0][0])
        if np.isfinite(per_id[i, j]):
            ranks[i] = 1 + int((per_id[i] < per_id[i, j]).sum())
    return ranks


def rank_k_rate(ranks: np.ndarray, k: int) -> float:
    """Share of findable probes (finite rank) identified within the first ``k`` identities."""
    found = ranks[np.isfinite(ranks)]
    return float((found <= k).mean()) if len(found) else float("nan")


def chance_rank_k(gallery_ids: np.ndarray, k: int) -> float:
    """Rank-k rate of a recognizer that ranks identities at random (``k / identities``, at most 1)."""
    return min(1.0, k / len(np.unique(gallery_ids)))


def verification_threshold(clean: np.ndarray, ids: np.ndarray, far: float) -> float:
    """Distance below which only ``far`` of the impostor pairs (different people, originals) are accepted."""
    d = np.linalg.norm(clean[:, None] - clean[None], axis=2)
    iu = np.triu_indices(len(clean), 1)
    impostor = d[iu][ids[iu[0]] != ids[iu[1]]]
    return float(np.quantile(impostor, far))


def true_accept_rate(probes: np.ndarray, clean: np.ndarray, ids: np.ndarray, threshold: float) -> float:
    """Share of genuine pairs (probe ``i`` against the original of another photo of the same person) accepted."""
    d = np.linalg.norm(probes[:, None] - clean[None], axis=2)
    genuine = (ids[:, None] == ids[None]) & ~np.eye(len(ids), dtype=bool)
    return float((d[genuine] < threshold).mean()) if genuine.any() else float("nan")


def open_set_hits(probes: np.ndarray, gallery: np.ndarray, ids: np.ndarray, match_distance: float) -> np.ndarray:
    """Per probe: is its nearest other gallery photo the same person *and* within ``match_distance``? That is how
    a search system answers (it reports no one rather than the least unlike stranger). Chance is near 0."""
    d = np.linalg.norm(probes[:, None] - gallery[None], axis=2)
    np.fill_diagonal(d, np.inf)
    nearest = d.argmin(axis=1)
    return (ids[nearest] == ids) & (d[np.arange(len(d)), nearest] < match_distance)


def open_set_rate(probes: np.ndarray, gallery: np.ndarray, ids: np.ndarray, match_distance: float) -> float:
    """Share of probes found by :func:`open_set_hits`."""
    hit = open_set_hits(probes, gallery, ids, match_distance)
    return float(hit.mean()) if len(hit) else float("nan")


def measured_chance(probes: np.ndarray, gallery: np.ndarray, ids: np.ndarray, match_distance: float
                    ) -> dict[str, float]:
    """Chance measured on the anonymized faces themselves: the rank-1 rules when each probe is given *another
    person's* anonymized face.

    ``probes: (N, D)`` anonymized faces and ``gallery: (N, D)`` originals, in the same order, ``ids: (N,)``. For
    each ordered pair (i, j) with ``ids[j] != ids[i]``, anonymized face ``j`` is ranked against every original but
    photo ``i`` (as probe ``i`` itself is): a closed-set hit when ``ids[i]`` is its nearest identity (ties count as
    a hit, as in :func:`identity_ranks`), an open-set hit when that nearest photo is also within
    ``match_distance``. Hits are averaged over the others ``j`` for each probe ``i``, then over the probes whose
    person has another photo, so each probe weighs as much as in :func:`rank_k_rate`; a method that turns every
    face into the same one gets a chance equal to its rank-1 rate.

    The analytic floor (:func:`chance_rank_k`, one in the number of people) assumes answers spread evenly over
    people; a method that collapses faces onto one look (a mean face) sends them all to whoever looks most like
    it, so its measured chance is higher. Returns ``{"chance_rank1": ..., "chance_rank1_open": ...}``.
    """
    d = np.linalg.norm(probes[:, None] - gallery[None], axis=2)  # (j, c): anonymized j to original c
    labels, lab = np.unique(ids, return_inverse=True)
    own, other = _nearest_without(d, lab, len(labels))  # (j, i) each
    closed = own <= other
    opened = closed & (own < match_distance)
    valid = (lab[:, None] != lab[None]) & np.isfinite(own)  # someone else's face; i's person findable
    per_probe = valid.any(axis=0)
    if not per_probe.any():
        return {"chance_rank1": float("nan"), "chance_rank1_open": float("nan")}

    def rate(hit: np.ndarray) -> float:
        hits = (hit & valid).sum(axis=0)[per_probe] / valid.sum(axis=0)[per_probe]
        return float(hits.mean())

    return {"chance_rank1": rate(closed), "chance_rank1_open": rate(opened)}


def _nearest_without(d: np.ndarray, lab: np.ndarray, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """For distances ``d: (J, N)`` from probes to gallery photos labelled ``lab: (N,)`` (0 .. n_labels - 1):
    ``own[j, i]``, the distance from probe ``j`` to the nearest photo of photo ``i``'s person other than ``i``
    itself (``inf`` when there is none), and ``other[j, i]``, to the nearest photo of anyone else. Both ``(J, N)``,
    from each probe's two nearest photos per person, so memory stays ``O(J N)``."""
    j_count, n = d.shape
    first = np.full((j_count, n_labels), np.inf)
    second = np.full((j_count, n_labels), np.inf)
    first_at = np.full((j_count, n_labels), -1)
    for k in range(n_labels):
        cols = np.nonzero(lab == k)[0]
        order = np.argsort(d[:, cols], axis=1)
        first[:, k] = d[np.arange(j_count), cols[order[:, 0]]]
        first_at[:, k] = cols[order[:, 0]]
        if len(cols) > 1:
            second[:, k] = d[np.arange(j_count), cols[order[:, 1]]]
    own = np.where(first_at[:, lab] == np.arange(n)[None], second[:, lab], first[:, lab])
    # Nearest other person: the best person per probe, or the runner-up where the best is i's own person.
    by_person = np.sort(first, axis=1)
    best_person = first.argmin(axis=1)
    runner_up = by_person[:, 1] if n_labels > 1 else np.full(j_count, np.inf)
    other = np.where(best_person[:, None] == lab[None], runner_up[:, None], by_person[:, :1])
    return own, other
