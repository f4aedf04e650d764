"""Detection on every k-th frame: frames between are detected unless both sides found the same faces."""

from __future__ import annotations

import numpy as np
import pytest

from deidcli.detection.keyframes import KeyframeCount, interpolate, keyframe_detections, match
from deidcli.detections import Detections


def _dets(*boxes, cls=0) -> Detections:
    boxes = np.array(boxes, dtype=float).reshape(-1, 4)
    landmarks = np.repeat(((boxes[:, :2] + boxes[:, 2:]) / 2)[:, None, :], 5, axis=1)
    return Detections(boxes, np.full(len(boxes), 0.9), np.full(len(boxes), cls), landmarks)


class _Scene:
    """Frame ``i`` is the integer ``i``; ``faces[i]`` what the detector finds there. Records what it was run on."""

    def __init__(self, faces: list[Detections]) -> None:
        self.faces, self.ran = faces, []

    def detect(self, i: int) -> Detections:
        self.ran.append(i)
        return self.faces[i]

    def run(self, every: int, count: KeyframeCount | None = None) -> list[tuple[int, Detections]]:
        return list(keyframe_detections(range(len(self.faces)), lambda i: i, self.detect, every, count))


def _walking(n: int, step: float = 2.0) -> list[Detections]:
    return [_dets([100 + step * i, 50, 140 + step * i, 100]) for i in range(n)]


def test_every_frame_once_and_in_order_whatever_the_stride():
    for every in (1, 2, 3, 5):
        for n in (1, 2, 3, 4, 7, 10):
            scene = _Scene(_walking(n))
            out = scene.run(every)
            assert [i for i, _ in out] == list(range(n)), (every, n)


def test_stride_one_detects_every_frame():
    scene = _Scene(_walking(6))
    out = scene.run(1)
    assert scene.ran == list(range(6))
    assert all(d is scene.faces[i] for i, d in out)


def test_agreeing_sides_are_interpolated_and_cover_the_face_between():
    scene = _Scene(_walking(9))
    count = KeyframeCount()
    out = scene.run(2, count)
    assert scene.ran == [0, 2, 4, 6, 8]
    assert (count.detected, count.interpolated) == (5, 4)
    true = _walking(9)
    for i, d in out:
        assert len(d) == 1
        b, t = d.xyxy[0], true[i].xyxy[0]
        assert b[0] <= t[0] and b[1] <= t[1] and b[2] >= t[2] and b[3] >= t[3]  # covers the real face
    mid = out[1][1]
    np.testing.assert_allclose(mid.landmarks[0, 0], true[1].landmarks[0, 0], atol=1e-4)


def test_last_frame_is_detected_when_the_video_ends_between_keyframes():
    scene = _Scene(_walking(6))
    scene.run(3)
    assert scene.ran == [0, 3, 5]  # frame 4 lies between agreeing sides


@pytest.mark.parametrize("change", ["appears", "vanishes", "jumps", "other target"])
def test_a_face_that_comes_goes_or_jumps_makes_the_frames_between_detected(change):
    faces = _walking(5)
    if change == "appears":  # a second face from frame 3 on: frame 2 shows it as well, half-way in
        faces = [f if i < 2 else _dets(f.xyxy[0], [300, 50, 340, 100]) for i, f in enumerate(faces)]
    elif change == "vanishes":
        faces = faces[:3] + [Detections.empty(), Detections.empty()]
    elif change == "jumps":
        faces = faces[:4] + [_dets([400, 300, 440, 350])]
    else:
        faces = faces[:4] + [_dets(faces[4].xyxy[0], cls=2)]
    scene = _Scene(faces)
    out = scene.run(4)
    assert sorted(scene.ran) == [0, 1, 2, 3, 4]
    assert all(d is faces[i] for i, d in out)


def test_match_pairs_one_to_one_by_overlap():
    a = _dets([0, 0, 10, 10], [100, 100, 120, 120])
    b = _dets([101, 101, 121, 121], [1, 0, 11, 10])
    assert match(a, b).tolist() == [[0, 1], [1, 0]]
    assert match(a, b[:1]) is None
    assert match(Detections.empty(), Detections.empty()).shape == (0, 2)
    far = _dets([0, 0, 10, 10], [140, 140, 160, 160])
    assert match(a, far) is None


def test_interpolated_boxes_grow_with_the_distance_moved():
    a, b = _dets([0, 0, 20, 20]), _dets([10, 0, 30, 20])
    box = interpolate(a, b, np.array([[0, 0]]), 0.5).xyxy[0]
    # centre half-way (5..25), grown by 10 / 20 of its size: 30 px a side
    np.testing.assert_allclose(box, [0, -5, 30, 25])
    assert interpolate(a, a, np.array([[0, 0]]), 0.5).xyxy[0].tolist() == [0, 0, 20, 20]


def test_objects_only_one_side_found_are_searched_for_near_where_they_were():
    faces = _walking(3)
    faces[2] = _dets(faces[2].xyxy[0], [300, 50, 340, 100])  # a second face, found on frame 2 only
    asked = []

    def near(i, lone):
        asked.append((i, lone.xyxy.tolist()))
        return _dets([298, 50, 338, 100])  # frame 1 shows it too, 2 px to the left

    count = KeyframeCount()
    out = list(keyframe_detections(range(3), lambda i: i, _Scene(faces).detect, 2, count, near))
    assert asked == [(1, [[300, 50, 340, 100]])]  # only the lone face, on the frame between
    assert (count.detected, count.searched, count.interpolated) == (2, 1, 0)
    mid = out[1][1]
    assert len(mid) == 2 and [298, 50, 338, 100] in mid.xyxy.tolist()


def test_where_a_crop_cannot_be_searched_the_whole_frame_is_detected():
    faces = _walking(3)
    faces[2] = _dets(faces[2].xyxy[0], [300, 50, 340, 100])
    scene = _Scene(faces)
    out = list(keyframe_detections(range(3), lambda i: i, scene.detect, 2, None, lambda i, lone: None))
    assert scene.ran == [0, 2, 1] and out[1][1] is faces[1]


def test_search_crops_are_whole_strides_around_the_box_inside_the_frame():
    from deidcli.detection.keyframes import search_crops

    (x1, y1, x2, y2), = search_crops(np.array([[100, 100, 140, 150]]), 1920, 1080, 0.5)
    assert x1 <= 100 and y1 <= 100 and x2 >= 140 and y2 >= 150
    assert (x2 - x1) * 0.5 % 32 == 0 and (y2 - y1) * 0.5 % 32 == 0 and (x2 - x1) >= 3 * 50
    (x1, y1, x2, y2), = search_crops(np.array([[1900, 1060, 1920, 1080]]), 1920, 1080, 0.5)
    assert x2 == 1920 and y2 == 1080 and x2 - x1 == 128  # moved inside at the corner, 64 px at scale 0.5


def test_search_around_finds_a_real_face_in_its_crop():
    from skimage import data

    from deidcli.detection.centerface import CenterFace
    from deidcli.detection.keyframes import search_around
    from deidcli.detections import box_iou

    image = np.ascontiguousarray(np.tile(data.astronaut(), (2, 3, 1)))  # 1024 x 1536, six faces
    det = CenterFace()
    whole = det.detect(image, 0.5)
    assert len(whole) >= 6
    found = search_around(det, image, whole.xyxy[:1], 0.5)
    assert len(found) >= 1 and box_iou(found.xyxy[:1], whole.xyxy[:1])[0, 0] > 0.8


def _mosaic(rows: int, cols: int) -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(np.tile(data.astronaut(), (rows, cols, 1)))


def test_keyframe_detection_is_detect_plus_the_near_misses():
    """NMS keeps a box whatever lower-scored ones do, so asking for near misses changes nothing of what is found."""
    from deidcli.anonymizer import FrameAnonymizer
    from deidcli.config import DeidConfig

    anonymizer = FrameAnonymizer.from_config(DeidConfig())
    image = _mosaic(2, 3)  # 1024 x 1536: no tiles
    found, near_misses = anonymizer.detect_keyframe(image)
    plain = anonymizer.detect(image)
    np.testing.assert_array_equal(found.xyxy, plain.xyxy)
    np.testing.assert_array_equal(found.confidence, plain.confidence)
    threshold = anonymizer.detectors["face"].base.threshold
    assert (near_misses.confidence < threshold).all() and (near_misses.confidence >= threshold / 2).all()


def test_search_near_a_face_in_a_tiled_frame_finds_it_again():
    """On a frame large enough for tiles, the search runs at the whole frame's scale and at the tiles' own."""
    from deidcli.anonymizer import FrameAnonymizer
    from deidcli.config import DeidConfig
    from deidcli.detections import box_iou

    anonymizer = FrameAnonymizer.from_config(DeidConfig())
    image = _mosaic(4, 8)  # 2048 x 4096: tiled
    faces = anonymizer.detect(image)
    assert len(faces) >= 32
    near = faces[:3]
    found = anonymizer.detect_near(image, near)
    assert found is not None and (box_iou(near.xyxy, found.xyxy).max(axis=1) > 0.7).all()
    body = Detections(near.xyxy[:1], near.confidence[:1], np.array([1]))
    assert anonymizer.detect_near(image, body) is None  # another target: the whole frame is detected


@pytest.mark.parametrize("every,batch", [(1, 4), (2, 3), (3, 8), (4, 2)])
@pytest.mark.parametrize("n", [1, 5, 10, 13])
def test_a_batch_read_ahead_gives_what_one_by_one_gives(every, batch, n):
    """The batched path (a GPU's) on the CPU: same regions, same order, the same frames detected."""
    faces = _walking(n)
    if n > 6:  # a face that comes and goes, so frames between are detected whole too
        faces = [f if not 4 <= i <= 6 else _dets(f.xyxy[0], [300, 50, 340, 100]) for i, f in enumerate(faces)]
    single, batched = _Scene(faces), _Scene(faces)
    calls = []

    def many(images):
        calls.append(list(images))
        return [batched.detect(i) for i in images]

    one = single.run(every)
    count = KeyframeCount()
    got = list(keyframe_detections(range(n), lambda i: i, batched.detect, every, count, detect_many=many,
                                   batch=batch))
    assert [i for i, _ in got] == [i for i, _ in one] == list(range(n))
    for (_, a), (_, b) in zip(one, got):
        np.testing.assert_array_equal(a.xyxy, b.xyxy)
    assert sorted(batched.ran) == sorted(single.ran)  # each frame detected exactly as often
    assert count.detected == len(single.ran)
    assert all(len(c) <= batch for c in calls) and any(len(c) > 1 for c in calls) == (n > every)


def test_batched_keyframes_of_a_real_video_are_the_single_ones(sample):
    """CenterFace over a batch of frames (one onnxruntime pass) against frame by frame."""
    from deidcli.anonymizer import FrameAnonymizer
    from deidcli.config import DeidConfig
    from deidcli.video import VideoReader

    anonymizer = FrameAnonymizer.from_config(DeidConfig())
    frames = [f.image for _, f in zip(range(6), VideoReader(sample).frames())]
    batched = anonymizer.detect_keyframes(frames)
    assert len(batched) == len(frames)
    for image, (faces, near) in zip(frames, batched):
        one, one_near = anonymizer.detect_keyframe(image)
        assert len(faces) == len(one) >= 1 and len(near) == len(one_near)
        np.testing.assert_allclose(faces.xyxy, one.xyxy, atol=0.05)
        np.testing.assert_allclose(faces.confidence, one.confidence, atol=1e-4)
