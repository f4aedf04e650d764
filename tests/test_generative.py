"""The generative methods (methods.md 2.4, 3): the DCGAN decoder, face warping, autoencoder, autoencoder-ap, replace.

Unit properties use a model trained for a few steps on the real decoder (its quality does not matter to them); the
privacy figures come from `deid evaluate` on the trained default models (docs/methods.md).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("gan_face_generate")

from deidcli.detections import Detections  # noqa: E402
from deidcli.errors import ModelUnavailableError  # noqa: E402
from deidcli.generative import face_warp, synthetic  # noqa: E402
from deidcli.generative.model import GenerativeModel  # noqa: E402
from deidcli.generative.training import train_attribute_preserving, train_autoencoder  # noqa: E402
from deidcli.methods import get_method  # noqa: E402
from deidcli.methods.generative_methods import ap_faces, autoencoder_faces, match_colours  # noqa: E402
from deidcli.methods.regions import FallbackLog, RegionStyle, anonymize_frame  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[GenerativeModel, object]:
    """An autoencoder trained 3 steps, and its path on disk."""
    model = train_autoencoder(steps=3, batch=8)
    path = tmp_path_factory.mktemp("models") / "ae.pt"
    model.save(path)
    return model, path


def faces(n: int = 6, seed: int = 3) -> torch.Tensor:
    with torch.no_grad():
        return synthetic.load_decoder()(synthetic.sample_codes(n, torch.Generator().manual_seed(seed)))


def test_the_decoder_draws_faces_in_the_unit_range():
    x = faces(4)
    assert x.shape == (4, 3, 64, 64)
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    assert float(x.std()) > 0.1  # a picture, not a constant
    assert not any(p.requires_grad for p in synthetic.load_decoder().parameters())


def test_warping_to_the_square_and_back_is_the_identity_on_the_face():
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 120), torch.linspace(0, 1, 90), indexing="ij")
    x = torch.stack([yy, xx, yy * xx])[None]
    t = face_warp.crop_transforms(120, 90, 1 / 1.3, 1)
    back = face_warp.from_canonical(face_warp.to_canonical(x, t), t, 120, 90)
    inside = face_warp.from_canonical(face_warp.face_mask(), t, 120, 90)[0, 0] > 0.99
    assert inside.float().mean() > 0.2
    assert float((back - x).abs()[0][:, inside].mean()) < 2e-3


def test_the_landmark_similarity_recovers_a_known_rotation_and_scale():
    a = torch.deg2rad(torch.tensor(20.0))
    rot = torch.tensor([[torch.cos(a), -torch.sin(a)], [torch.sin(a), torch.cos(a)]]) * 150
    pts = synthetic.LANDMARKS @ rot.T + torch.tensor([40.0, 25.0])
    t = face_warp.landmark_transform(pts[None])[0]
    assert torch.allclose(t[:, :2], rot, atol=1e-3)
    assert torch.allclose(t[:, 2], torch.tensor([40.0, 25.0]), atol=1e-2)


def test_wild_landmarks_fall_back_to_the_box():
    wild = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.5, 0.5], [0.2, 1.0], [0.8, 1.0]]])  # a 1-pixel "face"
    t = face_warp.crop_transforms(100, 100, 1 / 1.3, 1, wild)
    assert torch.allclose(t, face_warp.crop_transforms(100, 100, 1 / 1.3, 1))


def test_colour_matching_gives_the_old_faces_mean_colour():
    mask = face_warp.face_mask()
    new, old = faces(3, 1), faces(3, 2) * 0.5 + 0.3
    out = match_colours(new, old, mask)
    w = mask / mask.sum()
    assert torch.allclose((out * w).sum((2, 3)), (old * w).sum((2, 3)), atol=0.02)


# methods.md 2.4, unit tests
def test_autoencoder_at_zero_is_the_plain_reconstruction(tiny):
    model, _ = tiny
    x = faces()
    with torch.no_grad():
        plain = model.decoder(model.encoder(x))
    assert torch.equal(autoencoder_faces(model, x, 0.0), plain)


def test_autoencoder_at_one_maps_every_face_to_the_mean_face(tiny):
    """At 1 every code points along the mean code, kept at the face's own code length (where the decoder draws
    faces; the short mean code itself decodes to a blob)."""
    model, _ = tiny
    x = faces()
    out = autoencoder_faces(model, x, 1.0)
    with torch.no_grad():
        length = model.encoder(x).norm(dim=1, keepdim=True)
        expected = model.decoder(model.mean_code[None] / model.mean_code.norm() * length)
    assert torch.allclose(out, expected, atol=1e-5)


def test_autoencoder_is_deterministic(tiny):
    model, _ = tiny
    x = faces()
    assert torch.equal(autoencoder_faces(model, x, 0.4), autoencoder_faces(model, x, 0.4))


def test_a_saved_model_loads_back_the_same(tiny):
    model, path = tiny
    loaded = GenerativeModel.load(path, "autoencoder")
    x = faces(2)
    assert torch.equal(autoencoder_faces(loaded, x, 0.3), autoencoder_faces(model, x, 0.3))
    assert loaded.info["licence"] == synthetic.DATA_LICENCE


class _Bar:
    """Records what training shows on a progress bar."""

    def __init__(self) -> None:
        self.stages: list[tuple[int | None, str]] = []
        self.steps = 0

    def start(self, total, description):
        self.stages.append((total, description))

    def advance(self, n):
        self.steps += n


@pytest.fixture
def small_recipes(monkeypatch, tmp_path):
    """An empty cache, and default recipes of a few steps (the real ones are checked by the slow test below)."""
    from deidcli.generative import training

    monkeypatch.setenv("DEID_CACHE", str(tmp_path))
    monkeypatch.setattr(training, "RECIPES", {"autoencoder": {"steps": 3, "batch": 8},
                                              "autoencoder-ap": {"steps": 2, "batch": 4, "pool": 24,
                                                                 "landmark_steps": 3},
                                              "gan": {"steps": 2, "batch": 4, "pool": 24, "targets": 16}})
    return tmp_path / "models"


def test_the_first_use_trains_the_default_model_into_the_cache(small_recipes, capsys):
    from deidcli.methods.registry import train_untrained, untrained

    assert untrained(["blur", "gan", "replace"]) == ["gan"]
    assert untrained(["gan"], model="mine.pt") == []
    bar = _Bar()
    assert train_untrained(["gan", "blur"], None, bar) == ["gan"]
    # gan starts from the default autoencoder, which is kept too; each shows its own bar
    assert (small_recipes / "gan.pt").is_file() and (small_recipes / "autoencoder.pt").is_file()
    assert bar.stages == [(3, "train autoencoder"), (2, "train gan")] and bar.steps == 5
    assert "training its model once" in capsys.readouterr().err
    assert untrained(["gan", "autoencoder"]) == []
    before = (small_recipes / "gan.pt").stat().st_mtime_ns
    get_method("gan")  # read from the cache, not trained again
    assert (small_recipes / "gan.pt").stat().st_mtime_ns == before


def test_a_default_model_of_another_recipe_is_trained_again_and_ones_own_is_kept(small_recipes, monkeypatch):
    from deidcli.generative import training
    from deidcli.generative.model import needs_training

    get_method("autoencoder")
    assert not needs_training("autoencoder")
    monkeypatch.setitem(training.RECIPES, "autoencoder", {"steps": 4, "batch": 8})  # a later deid's recipe
    assert needs_training("autoencoder")
    get_method("autoencoder")
    assert not needs_training("autoencoder")
    own = train_autoencoder(steps=3, batch=8)  # deid train with its own settings: no recipe recorded
    own.save(small_recipes / "autoencoder.pt")
    assert not needs_training("autoencoder")
    (small_recipes / "autoencoder.pt").write_bytes(b"damaged")
    assert needs_training("autoencoder")


def test_a_library_caller_gets_the_model_trained_too(small_recipes):
    method = get_method("autoencoder")  # no CLI, no bar: trained and kept all the same
    assert method.model.kind == "autoencoder" and (small_recipes / "autoencoder.pt").is_file()


def test_an_unwritable_cache_still_runs_and_says_so(small_recipes, monkeypatch, capsys):
    from deidcli.generative import model as gm

    def refuse(self, path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(gm.GenerativeModel, "save", refuse)
    assert get_method("autoencoder").model.kind == "autoencoder"
    assert "set DEID_CACHE to a writable folder" in capsys.readouterr().err


def test_a_file_that_is_not_a_model_is_one_error(tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelUnavailableError, match="not a deid generative model"):
        get_method("autoencoder", model=bad)


def test_an_autoencoder_model_is_not_taken_for_an_attribute_preserving_one(tiny):
    _, path = tiny
    with pytest.raises(ModelUnavailableError, match="not autoencoder-ap"):
        get_method("autoencoder-ap", model=path)


# methods.md 3, unit tests 1, 2 and 4
def test_attribute_preserving_fine_tuning_leaves_the_decoder_and_base_encoder_untouched(tiny):
    model, _ = tiny
    before = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    base = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    ap = train_attribute_preserving(model, steps=2, batch=4, pool=24, landmark_steps=2)
    assert all(torch.equal(before[k], v) for k, v in ap.decoder.state_dict().items())
    assert all(torch.equal(base[k], v) for k, v in ap.encoder.state_dict().items())
    assert any(not torch.equal(base[k], v) for k, v in ap.encoder_ap.state_dict().items())
    x = faces()
    assert torch.equal(ap_faces(ap, x, 0.0), autoencoder_faces(ap, x, 0.0))  # beta 0: the base reconstruction
    assert torch.equal(ap_faces(ap, x, 1.0), ap_faces(ap, x, 1.0))


def _photo_with_face(size: int = 160) -> tuple[np.ndarray, Detections]:
    """A frame with a synthetic face in the middle, and its box."""
    x = faces(1, 7)[0]
    face = torch.nn.functional.interpolate(x[None], size=(size, size), mode="bilinear")[0]
    img = np.full((320, 320, 3), 120, np.uint8)
    img[80 : 80 + size, 80 : 80 + size] = (face.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    h = synthetic.BOX_HEIGHT * size
    cy = 80 + synthetic.BOX_CENTRE_Y * size
    box = np.array([[240 - 80 - h / 2 + 0, cy - h / 2, 160 + h / 2, cy + h / 2]], np.float32)
    box[0, 0] = 160 - h / 2
    return img, Detections(box, np.ones(1, np.float32), np.zeros(1, np.int64))


@pytest.mark.parametrize("name", ["autoencoder", "replace"])
def test_a_generative_method_changes_the_face_and_is_not_frosted(name, tiny):
    _, path = tiny
    img, dets = _photo_with_face()
    log = FallbackLog()
    style = RegionStyle(get_method(name, model=path))
    out = anonymize_frame(img, dets, style, fallbacks=log)
    assert log.total == 0
    x1, y1, x2, y2 = dets.xyxy[0].astype(int)
    assert np.abs(out[y1:y2, x1:x2].astype(int) - img[y1:y2, x1:x2]).mean() > 5
    top = int((y1 + y2) / 2 - (y2 - y1) * style.mask_scale / 2) - 1
    assert top > 0 and (out[:top] == img[:top]).all()  # outside the region nothing moves


def test_replace_keeps_one_donor_per_track():
    method = get_method("replace")
    img, dets = _photo_with_face()
    tracked = Detections(dets.xyxy, dets.confidence, dets.class_id, tracker_id=np.array([4]))
    first = anonymize_frame(img, tracked, RegionStyle(method), frame_index=0)
    moved = np.roll(img, 3, axis=1)  # the next frame: the face moved, its landmarks too
    shifted = Detections(tracked.xyxy + np.array([3, 0, 3, 0], np.float32), dets.confidence, dets.class_id,
                         tracker_id=np.array([4]))
    second = anonymize_frame(moved, shifted, RegionStyle(method), frame_index=1)
    assert len(method.model.track_target) == 1
    assert np.abs(np.roll(first, 3, axis=1)[100:200, 110:210].astype(int) - second[100:200, 110:210]).mean() < 6


def test_replace_takes_donors_from_a_folder(tmp_path):
    from PIL import Image

    img, _ = _photo_with_face(200)
    Image.fromarray(img).save(tmp_path / "donor.png")
    method = get_method("replace", donors=tmp_path)
    assert len(method.model.faces) == 1
    frame, dets = _photo_with_face()
    out = anonymize_frame(np.ascontiguousarray(frame[:, ::-1]), dets, RegionStyle(method))
    assert out.shape == frame.shape


@pytest.fixture(scope="module")
def tiny_gan(tiny, tmp_path_factory):
    from deidcli.generative.training import train_gan

    model = train_gan(tiny[0], steps=2, batch=4, targets=16, pool=24)
    path = tmp_path_factory.mktemp("models") / "gan.pt"
    model.save(path)
    return path


def test_the_gan_generator_never_sees_the_face():
    from deidcli.generative.training import gan_planes

    x = faces(2)
    other = x.clone()
    inside = face_warp.face_mask() >= 1
    other[:, :, inside[0, 0]] = torch.rand_like(other[:, :, inside[0, 0]])  # a different face, same surroundings
    lm = synthetic.LANDMARKS.expand(2, 5, 2)
    assert torch.equal(gan_planes(x, lm), gan_planes(other, lm))


def test_gan_keeps_one_target_identity_per_track(tiny_gan):
    method = get_method("gan", model=tiny_gan)
    img, dets = _photo_with_face()
    for frame, shift in enumerate((0, 2, 4)):
        moved = np.roll(img, shift, axis=1)
        d = Detections(dets.xyxy + np.array([shift, 0, shift, 0], np.float32), dets.confidence, dets.class_id,
                       tracker_id=np.array([9]))
        log = FallbackLog()
        anonymize_frame(moved, d, RegionStyle(method), frame_index=frame, fallbacks=log)
        assert log.total == 0
    assert list(method.model.track_target) == [("target", 9)]


def test_gan_never_targets_the_faces_own_code(tiny_gan):
    from deidcli.methods.generative_methods import choose_targets

    method = get_method("gan", model=tiny_gan)
    model = method.model
    x = faces(8)
    with torch.no_grad():
        own = model.encoder(x)
    chosen = choose_targets(model, x, torch.Generator().manual_seed(0), None)
    d_all = torch.cdist(own, model.targets)
    d_chosen = (chosen - own).norm(dim=1)
    assert (d_chosen >= d_all.median(dim=1).values - 1e-4).all()  # always among the farther half


def test_the_report_records_the_target_policy():
    from deidcli.config import DeidConfig
    from deidcli.report import method_summary

    summary = method_summary(DeidConfig(method="gan"))["face"]
    assert "one target identity per track" in summary["policy"] and summary["natural_face"]
    assert summary["model"].endswith("gan.pt")


def test_deid_train_then_run_with_the_model(tmp_path, small_recipes):
    from PIL import Image

    from conftest import run_cli

    model = tmp_path / "ae.pt"
    r = run_cli("train", "autoencoder", "--steps", "2", "-o", str(model), "-q")
    assert r.returncode == 0, r.stderr
    assert model.is_file() and "non-commercial" in r.stdout
    again = run_cli("train", "autoencoder", "--steps", "2", "-o", str(model), "-q")
    assert again.returncode == 2 and "--overwrite" in again.stderr
    img, _ = _photo_with_face(200)
    Image.fromarray(img).save(tmp_path / "face.png")
    out = tmp_path / "anon.png"
    r = run_cli("run", str(tmp_path / "face.png"), "-o", str(out), "--method", "autoencoder", "--model", str(model),
                "-q", "--report", str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stderr
    assert np.abs(np.asarray(Image.open(out), dtype=int) - img).max() > 30


def test_a_missing_model_is_exit_code_9_with_one_line(tmp_path):
    from PIL import Image

    from conftest import run_cli

    img, _ = _photo_with_face(200)
    Image.fromarray(img).save(tmp_path / "face.png")
    r = run_cli("run", str(tmp_path / "face.png"), "-o", str(tmp_path / "o.png"), "--method", "gan", "--model",
                str(tmp_path / "none.pt"), "-q")
    assert r.returncode == 9
    assert len(r.stderr.strip().splitlines()) == 1 and "no such file" in r.stderr


def test_gan_is_deterministic_for_a_seed(tiny_gan):
    method = get_method("gan", model=tiny_gan)
    crops = torch.nn.functional.interpolate(faces(3), size=(96, 96), mode="bilinear")
    a = method(crops, generator=torch.Generator().manual_seed(7))
    b = method(crops, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
