"""What an anonymized face keeps: pose from landmarks, tone, detail, diversity (deidcli.evaluation.attributes)."""

import math

import cv2
import numpy as np
import pytest

from deidcli.evaluation.attributes import attribute_errors, detail, detail_ratio, diversity, pose, tone

FRONTAL = np.array([[40, 50], [60, 50], [50, 60], [42, 72], [58, 72]], np.float64)


def _rotated(points: np.ndarray, angle: float, centre=(50, 60)) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    r = np.array([[c, -s], [s, c]])
    return (points - centre) @ r.T + centre


def test_frontal_face_has_no_yaw_or_roll_and_pose_ignores_size_place_and_rotation():
    p = pose(FRONTAL)
    assert p["yaw"] == pytest.approx(0) and p["roll"] == pytest.approx(0)
    assert p["pitch"] == pytest.approx(10 / 22) and p["mouth"] == pytest.approx(16 / 20)
    moved = pose(FRONTAL * 3 + 100)
    turned = pose(_rotated(FRONTAL, 0.3))
    for key in ("yaw", "pitch", "mouth"):
        assert moved[key] == pytest.approx(p[key]) and turned[key] == pytest.approx(p[key], abs=1e-9)
    assert turned["roll"] == pytest.approx(0.3)


def test_yaw_follows_the_nose_and_a_wider_mouth_is_a_larger_mouth_figure():
    right = FRONTAL.copy()
    right[2, 0] += 4
    assert pose(right)["yaw"] == pytest.approx(0.2)
    smile = FRONTAL.copy()
    smile[3, 0] -= 3
    smile[4, 0] += 3
    assert pose(smile)["mouth"] > pose(FRONTAL)["mouth"]


def test_tone_reads_the_centre_of_the_box_and_detail_falls_with_blur():
    rng = np.random.default_rng(0)
    img = np.zeros((100, 100, 3), np.uint8)
    img[25:75, 25:75] = (200, 150, 100)  # the central half of the box 0..100
    assert tone(img, np.array([0, 0, 100, 100])) == pytest.approx(np.array([200, 150, 100]) / 255)
    texture = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    box = np.array([0, 0, 64, 64])
    blurred = cv2.GaussianBlur(texture, (0, 0), 3)
    assert detail(np.full_like(texture, 128), box) == 0
    assert detail(blurred, box) < 0.1 * detail(texture, box)
    assert detail(np.kron(texture, np.ones((4, 4, 1), np.uint8)), box * 4) == pytest.approx(detail(texture, box))
    assert detail_ratio([2.0, 2.0], [1.0, 1.0]) == pytest.approx(0.5)


def test_attribute_errors_are_zero_for_the_same_faces_and_count_lost_landmarks():
    same = {"pose": pose(FRONTAL), "tone": np.array([0.5, 0.4, 0.3])}
    turned = {"pose": pose(_rotated(FRONTAL, 0.2)), "tone": np.array([0.6, 0.4, 0.3])}
    lost = {"pose": None, "tone": np.array([0.5, 0.4, 0.3])}
    e = attribute_errors([same, same], [same, same])
    assert e["found"] == 1 and e["tone"] == 0 and e["yaw"] == 0 and e["roll"] == 0
    e = attribute_errors([same, same], [turned, lost])
    assert e["found"] == 0.5 and e["roll"] == pytest.approx(0.2) and e["tone"] == pytest.approx(0.1 / 3 / 2)
    assert math.isnan(attribute_errors([same], [lost])["yaw"])


def test_diversity_is_one_for_the_originals_and_zero_when_everyone_becomes_one_face():
    rng = np.random.default_rng(1)
    e = rng.normal(size=(20, 8))
    assert diversity(e, e) == pytest.approx(1)
    assert diversity(np.repeat(e[:1], 20, 0), e) == 0
    assert diversity(e * 0.5, e) == pytest.approx(0.5)
