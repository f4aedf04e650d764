"""M-SVDD, the hardened recognizer: one sphere per person, faces outside every sphere rejected."""

from __future__ import annotations

import numpy as np

from deidcli.recognition.msvdd import MSVDD, MSVDDRecognizer, msvdd_identification


def clusters(people: int = 6, photos: int = 5, spread: float = 0.1, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people, 16))
    ids = np.repeat(np.arange(people), photos)
    return centres[ids] + spread * rng.normal(size=(len(ids), 16)), ids, centres


def test_spheres_hold_their_own_photos_and_nothing_far_away():
    e, ids, centres = clusters()
    model = MSVDD.fit(e, ids)
    who, ok = model.predict(e)
    assert ok.all() and (who == ids).all()
    _, ok_far = model.predict(centres + 3.0)  # far from everyone: named by argmax, but rejected
    assert not ok_far.any()
    assert (model.radii > 0).all()


def test_identification_is_leave_one_out():
    e, ids, _ = clusters(seed=1)
    clean = msvdd_identification(e, e, ids)
    assert clean["rank1"] >= 0.8 and clean["rank5"] == 1.0 and clean["accepted_other"] == 0
    assert abs(clean["rank1"] + clean["rejected"] + clean["accepted_other"] - 1) < 1e-12
    # A person with one photo has nothing left to fit once it is left out: that photo can only be rejected.
    lone = np.concatenate([ids, [99]])
    single = msvdd_identification(np.vstack([e, e[:1] + 50]), np.vstack([e, e[:1] + 50]), lone)
    assert single["rejected"] > clean["rejected"]


def test_probes_moved_out_of_their_sphere_are_rejected_not_misnamed():
    e, ids, centres = clusters(seed=2)
    # Each probe pushed half-way towards another person's centre: out of its own sphere, short of the other's.
    other = centres[(ids + 1) % len(centres)]
    moved = e + 0.5 * (other - e)
    r = msvdd_identification(moved, e, ids)
    assert r["rank1"] == 0 and r["rejected"] >= 0.9


def test_recognizer_wraps_its_base():
    class Base:
        name, size, framing, match_distance = "dlib", 200, 1.6, 0.6

        def embed(self, crops):
            return crops.sum((2, 3))

    import torch

    rec = MSVDDRecognizer(Base())
    assert rec.name == "msvdd" and rec.size == 200 and rec.framing == 1.6
    assert torch.equal(rec.embed(torch.ones(2, 3, 4, 4)), torch.full((2, 3), 16.0))
