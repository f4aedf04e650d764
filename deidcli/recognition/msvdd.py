"""M-SVDD (Mygdalis, Tefas, Pitas 2020) as a hardened recognizer: one hypersphere per person, reject the rest.

Instead of a linear head that always names someone, each enrolled person ``j`` gets a centre ``c_j`` and a radius
``R_j`` in the recognizer's embedding space; a face is scored ``s_j = R_j^2 - |e - c_j|^2`` and accepted as the best
person only when it falls inside that person's sphere (``s >= 0``). An adversarial face pushed out of its own
sphere lands inside no one else's as a rule, so it is rejected instead of misnamed.

Here the map into the space is the recognizer's own embedding (the spec's per-class non-linear map left as the
identity, the network being already non-linear); each radius is the ``quantile`` of the person's own photos'
distances to their centre, widened by ``slack``, fitted leave-one-out so a photo is not measured against a sphere
it shaped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class MSVDD:
    labels: np.ndarray  # (C,) person ids
    centres: np.ndarray  # (C, D)
    radii: np.ndarray  # (C,)

    @classmethod
    def fit(cls, embeddings: np.ndarray, ids: np.ndarray, quantile: float = 1.0, slack: float = 1.1) -> "MSVDD":
        """One sphere per person in ``ids`` from their ``embeddings: (N, D)``."""
        labels = np.unique(ids)
        centres, radii = [], []
        for lab in labels:
            own = embeddings[ids == lab]
            c = own.mean(0)
            if len(own) > 1:  # leave-one-out distances: each photo against the centre of the others
                loo = [(np.linalg.norm(own[i] - (c * len(own) - own[i]) / (len(own) - 1))) for i in range(len(own))]
                r = float(np.quantile(loo, quantile)) * slack
            else:
                r = 0.0  # one photo: no spread to learn from, nothing else is accepted as this person
            centres.append(c)
            radii.append(r)
        return cls(labels, np.stack(centres), np.array(radii))

    def scores(self, e: np.ndarray) -> np.ndarray:
        """``(N, C)``: ``R_j^2 - |e - c_j|^2``; positive inside person ``j``'s sphere."""
        d2 = ((e[:, None] - self.centres[None]) ** 2).sum(2)
        return self.radii[None] ** 2 - d2

    def predict(self, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The best person for each embedding and whether it is accepted (inside that person's sphere)."""
        s = self.scores(e)
        best = s.argmax(1)
        return self.labels[best], s[np.arange(len(e)), best] >= 0


def msvdd_identification(probes: np.ndarray, gallery: np.ndarray, ids: np.ndarray) -> dict[str, float]:
    """M-SVDD's answers for ``probes: (N, D)``, probe ``i`` being (a changed copy of) gallery photo ``i`` of
    person ``ids[i]``. Spheres are fitted without photo ``i`` (the protocol of the rest of `deid evaluate`: a probe
    meets only the *other* originals).

    ``rank1``: accepted as the true person (M-SVDD never names anyone else unless the face falls in their sphere,
    so this is also its open-set rate); ``rank5``: the true person among the five best sphere scores;
    ``rejected``: inside no sphere; ``accepted_other``: inside someone else's.
    """
    true = rejected = other = top5 = 0
    everyone = np.arange(len(ids))
    for i in everyone:
        model = MSVDD.fit(gallery[everyone != i], ids[everyone != i])
        s = model.scores(probes[i:i + 1])[0]
        best = int(s.argmax())
        accepted = s[best] >= 0
        named = model.labels[best]
        true += bool(accepted and named == ids[i])
        other += bool(accepted and named != ids[i])
        rejected += not accepted
        top5 += ids[i] in model.labels[np.argsort(-s)[:5]]
    n = len(ids)
    return {"rank1": true / n, "rank5": top5 / n, "rank1_open": true / n, "rejected": rejected / n,
            "accepted_other": other / n}


class MSVDDRecognizer:
    """A recognizer hardened by M-SVDD (`--recognizer msvdd`, or `msvdd-facenet`): embeds with ``base``; `deid
    evaluate` scores its probes with :func:`msvdd_identification` instead of nearest-photo ranks."""

    def __init__(self, base) -> None:
        self.base = base
        self.name = "msvdd" if base.name == "dlib" else f"msvdd-{base.name}"
        self.size, self.framing, self.match_distance = base.size, base.framing, base.match_distance

    def embed(self, crops):
        return self.base.embed(crops)
