"""End to end on real encoded files: nothing but the faces may change."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from skimage import data

from conftest import ffmpeg, probe, run_deid, sha256


def _frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def _seconds(info: dict) -> list[float]:
    return [float(p * info["video_tb"]) for p in info["video_pts"]]


def test_sample_clip_end_to_end(tmp_path, sample):
    """The bundled clip: same frames and timestamps, audio and metadata kept, the face changed, a report written."""
    before = sha256(sample)
    out, report = tmp_path / "out.mp4", tmp_path / "report.json"
    r = run_deid("run", sample, "-o", out, "--report", report)
    assert r.returncode == 0, r.stderr
    assert sha256(sample) == before
    src, dst = probe(sample), probe(out)
    assert _frames(out) == _frames(sample) == 75
    assert np.allclose(_seconds(dst), _seconds(src), atol=1e-3)
    assert [s["type"] for s in dst["streams"]] == [s["type"] for s in src["streams"]]
    a_src = next(s for s in src["streams"] if s["type"] == "audio")
    a_dst = next(s for s in dst["streams"] if s["type"] == "audio")
    assert a_dst["codec"] == a_src["codec"] and abs(a_dst["duration"] - a_src["duration"]) < 0.05
    assert dst["metadata"].get("title") == src["metadata"]["title"]
    assert dst["metadata"].get("location") == src["metadata"]["location"]
    rep = json.loads(report.read_text())
    f = rep["files"][0]
    assert rep["version"] and rep["methods"]["face"]["name"] == "frost" and rep["methods"]["face"]["strength"] == 24
    assert f["status"] == "ok" and f["frames"] == 75 and len(f["faces_per_frame"]) == 75
    assert min(f["faces_per_frame"]) >= 1, "the astronaut's face must be found in every frame"
    assert f["tracks"] and f["tracks"][0]["detected_frames"] >= 70, "one track follows her through the clip"
    assert len(f["regions_per_frame"]) == 75
    assert f["frames_detected"] <= 39 and f["frames_detected"] + f["frames_searched"] + f["frames_interpolated"] == 75
    assert f["fps"] > 0


def test_strip_metadata_drops_gps_and_title(tmp_path, sample):
    out = tmp_path / "out.mp4"
    r = run_deid("run", sample, "-o", out, "--strip-metadata", "--quiet")
    assert r.returncode == 0, r.stderr
    meta = probe(out)["metadata"]
    assert "location" not in meta and "title" not in meta
    assert any(s["type"] == "audio" for s in probe(out)["streams"]), "stripping metadata keeps the audio"


def test_audio_first_several_audio_and_subtitles(tmp_path):
    """Streams are copied by type: audio at index 0, two audio tracks and a subtitle track all survive."""
    srt = tmp_path / "subs.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n\n2\n00:00:01,000 --> 00:00:02,000\nworld\n")
    src = tmp_path / "multi.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "sine=frequency=300:duration=2",
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=2",
        "-f", "lavfi", "-i", "sine=frequency=600:duration=2", "-i", str(srt),
        "-map", "0:a", "-map", "1:v", "-map", "2:a", "-map", "3:s",
        "-c:a", "aac", "-c:v", "libx264", "-c:s", "mov_text",
        "-metadata:s:a:1", "language=fra", "-metadata:s:a:0", "language=eng", str(src),
    )
    out = tmp_path / "out.mp4"
    r = run_deid("run", src, "-o", out, "--quiet")
    assert r.returncode == 0, r.stderr
    s_in, s_out = probe(src)["streams"], probe(out)["streams"]
    assert sorted((s["type"], s["codec"]) for s in s_out) == sorted(
        ("video" if s["type"] == "video" else s["type"], "h264" if s["type"] == "video" else s["codec"]) for s in s_in
    )
    langs = [s["metadata"].get("language") for s in s_out if s["type"] == "audio"]
    assert langs == ["eng", "fra"]
    assert _frames(out) == 50


def test_variable_frame_rate_and_rotation_kept(tmp_path):
    src = tmp_path / "vfr.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=2",
        "-vf", "setpts='(N/25+gt(N,20)*0.7+gt(N,35)*0.33)/TB'", "-fps_mode", "passthrough",
        "-c:v", "libx264", str(tmp_path / "flat.mp4"),
    )
    ffmpeg("-display_rotation", "90", "-i", str(tmp_path / "flat.mp4"), "-c", "copy", str(src))
    out = tmp_path / "out.mp4"
    r = run_deid("run", src, "-o", out, "--quiet")
    assert r.returncode == 0, r.stderr
    a, b = probe(src), probe(out)
    assert len(b["video_pts"]) == len(a["video_pts"]) == 50
    assert np.allclose(_seconds(b), _seconds(a), atol=1e-3)
    gaps = np.diff(_seconds(b))
    assert gaps.max() > 0.5, "the 0.7 s gap must stay a gap"
    with av.open(str(out)) as c:
        assert next(c.decode(video=0)).rotation == 90


def test_photo_keeps_exif_unless_stripped(tmp_path):
    img = Image.fromarray(data.astronaut())
    exif = Image.Exif()
    exif[0x010F] = "NASA"  # Make
    exif.get_ifd(0x8825)[2] = (28.0, 34.0, 22.0)  # GPSLatitude
    src = tmp_path / "astronaut.jpg"
    img.save(src, exif=exif, quality=95)
    r = run_deid("run", src, "--quiet")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "astronaut_anonymized.jpg"
    with Image.open(out) as im:
        assert im.getexif()[0x010F] == "NASA"
        assert im.getexif().get_ifd(0x8825)
        face_out = np.asarray(im.convert("RGB"))[60:150, 180:250].astype(float)
    face_in = data.astronaut()[60:150, 180:250].astype(float)
    assert np.abs(face_out - face_in).mean() > 10, "the face must be anonymized"
    r = run_deid("run", src, "-o", tmp_path / "stripped.jpg", "--strip-metadata", "--quiet")
    assert r.returncode == 0, r.stderr
    with Image.open(tmp_path / "stripped.jpg") as im:
        assert not im.getexif()


def test_folder_input_maps_to_output_folder(tmp_path, sample):
    src = tmp_path / "shoot"
    src.mkdir()
    Image.fromarray(data.astronaut()).save(src / "a.png")
    (src / "clip.mp4").write_bytes(sample.read_bytes())
    (src / "readme.txt").write_text("not media")
    r = run_deid("run", src, "--quiet")
    assert r.returncode == 0, r.stderr
    done = tmp_path / "shoot_anonymized"
    assert sorted(p.name for p in done.iterdir()) == ["a.png", "clip.mp4"]


def test_pixel_format_and_colour_tags_kept(tmp_path):
    src = tmp_path / "tagged.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=1", "-c:v", "libx264", "-pix_fmt", "yuv444p",
        "-colorspace", "bt709", "-color_range", "pc", str(src),
    )
    out = tmp_path / "out.mp4"
    r = run_deid("run", src, "-o", out, "--quiet")
    assert r.returncode == 0, r.stderr

    def props(path):
        with av.open(str(path)) as c:
            f = next(c.decode(video=0))
            # decoders report full-range 4:4:4 as yuvj444p or as yuv444p + range tag: the same pixels
            return f.format.name.replace("yuvj", "yuv"), int(f.colorspace), int(f.color_range), f.to_ndarray(
                format="rgb24"
            ).astype(float)

    *tags_out, rgb_out = props(out)
    *tags_src, rgb_src = props(src)
    assert tags_out == tags_src == ["yuv444p", 1, 2]
    psnr = 10 * np.log10(255**2 / ((rgb_out - rgb_src) ** 2).mean())
    assert psnr > 35, "colours must survive the round trip (a wrong matrix or range costs 10+ dB)"


@pytest.mark.parametrize("ext", ["mov", "mp4"])
def test_timecode_track_survives(tmp_path, ext):
    """Camera files carry a QuickTime timecode track; it must come through, also from .mov into .mp4."""
    src = tmp_path / "tc.mov"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=1", "-f", "lavfi", "-i", "sine=duration=1",
        "-c:v", "libx264", "-c:a", "aac", "-timecode", "01:00:00:00", str(src),
    )
    out = tmp_path / f"out.{ext}"
    r = run_deid("run", src, "-o", out, "--quiet")
    assert r.returncode == 0, r.stderr
    streams = probe(out)["streams"]
    assert [s["type"] for s in streams].count("data") == 1
    assert streams[0]["metadata"].get("timecode") == "01:00:00:00"


def test_quiet_run_prints_nothing_on_a_fresh_machine(tmp_path, sample):
    """Ultralytics prints a settings banner on stdout the first time it is imported; deid keeps it quiet."""
    r = run_deid("run", sample, "-o", tmp_path / "out.mp4", "--quiet", env={"YOLO_CONFIG_DIR": str(tmp_path / "cfg")})
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""


@pytest.mark.parametrize("speed,shown", [(25.0, "25.0 fps"), (1.0, "1.0 fps"), (0.05, "20.0 s/frame")])
def test_progress_shows_seconds_a_frame_for_slow_methods(speed, shown):
    from types import SimpleNamespace

    from deidcli.progress import FpsColumn

    assert FpsColumn().render(SimpleNamespace(finished_speed=None, speed=speed)).plain.strip() == shown


def _decoded(path: Path) -> tuple[list[int], list[np.ndarray], str]:
    """Timestamps, RGB pictures (as stored, padding included) and pixel format, with plain PyAV."""
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
        return [f.pts for f in frames], [f.to_ndarray(format="rgb24") for f in frames], frames[0].format.name


@pytest.mark.parametrize("ext,stored", [("mp4", (322, 182)), ("mov", (322, 182)), ("mkv", (322, 182))])
def test_odd_size_is_padded_to_420_and_cropped_back(tmp_path, ext, stored):
    """An odd size stays 4:2:0 (4:4:4 H.264 plays in few players): padded to even with the edge repeated, the true
    size a clean aperture in MP4/MOV that deid reads back; the frames and their times unchanged."""
    from deidcli.video import isobmff
    from deidcli.video.reader import VideoReader

    src = tmp_path / "odd.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=321x181:rate=25:duration=0.4", "-c:v", "ffv1", "-pix_fmt", "yuv420p",
           str(src))
    out = tmp_path / f"out.{ext}"
    r = run_deid("run", src, "-o", out, "--quiet")
    assert r.returncode == 0, r.stderr
    pts_src, rgb_src, _ = _decoded(src)
    pts_out, rgb_out, fmt = _decoded(out)
    assert fmt == "yuv420p" and rgb_out[0].shape[1::-1] == stored
    assert len(pts_out) == len(pts_src) == 10
    assert np.allclose(np.array(pts_out) / 1000, np.array(pts_src) / 1000, atol=1e-3)
    for a, b in zip(rgb_src, rgb_out):
        diff = (a.astype(float) - b[:181, :321]) ** 2
        # the whole picture is subsampled again (testsrc's 1-pixel colour detail: 28 dB); shifted by a pixel, 18
        assert 10 * np.log10(255**2 / diff.mean()) > 25
        assert np.abs(b[:, 321].astype(int) - b[:, 320]).mean() < 8, "the pad repeats the edge"
    shown = (321, 181) if ext != "mkv" else stored  # Matroska: no crop that ffmpeg writes
    reader = VideoReader(out)
    assert (reader.info.width, reader.info.height) == shown
    assert {f.image.shape for f in reader.frames()} == {(shown[1], shown[0], 3)}
    assert isobmff.clean_apertures(out) == ({1: (0, 0, 321, 181)} if ext != "mkv" else {})
    # deid on its own output: the size read back is the one shown, and stays so
    again = tmp_path / f"again.{ext}"
    assert run_deid("run", out, "-o", again, "--quiet").returncode == 0
    assert (VideoReader(again).info.width, VideoReader(again).info.height) == shown


def test_exact_size_keeps_odd_sides_in_444(tmp_path):
    src = tmp_path / "odd.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=321x181:rate=25:duration=0.2", "-c:v", "ffv1", "-pix_fmt", "yuv420p",
           str(src))
    out = tmp_path / "out.mp4"
    r = run_deid("run", src, "-o", out, "--quiet", "--exact-size")
    assert r.returncode == 0, r.stderr
    _, rgb, fmt = _decoded(out)
    assert fmt == "yuv444p" and rgb[0].shape == (181, 321, 3)
