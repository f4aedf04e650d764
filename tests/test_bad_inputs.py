"""Every bad input gets one clear line, its own exit code, no output, and an untouched input."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


from conftest import ffmpeg, run_deid, sha256
from deidcli.errors import ExitCode


def _no_outputs(folder: Path, keep: set[Path]) -> None:
    left = {p for p in folder.rglob("*") if p.is_file()} - keep
    assert not left, f"unexpected files left behind: {sorted(left)}"


def _check(args, code: ExitCode, words: str, folder: Path, inputs: list[Path]):
    before = {p: sha256(p) for p in inputs if p.is_file()}
    r = run_deid("run", "--quiet", *args)
    assert r.returncode == int(code), r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("deid: error:"), r.stderr
    assert words in lines[0], lines[0]
    assert "Traceback" not in r.stderr
    _no_outputs(folder, set(before))
    assert {p: sha256(p) for p in before} == before


def test_missing_file(tmp_path):
    _check([tmp_path / "nope.mp4"], ExitCode.INPUT_NOT_FOUND, "no such file", tmp_path, [])


def test_folder_without_media(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    _check([tmp_path], ExitCode.NO_MEDIA, "holds no video or image", tmp_path, [tmp_path / "notes.txt"])


def test_zero_byte_file(tmp_path):
    f = tmp_path / "empty.mp4"
    f.touch()
    _check([f], ExitCode.INVALID_MEDIA, "empty", tmp_path, [f])


def test_text_file_named_mp4(tmp_path):
    f = tmp_path / "fake.mp4"
    f.write_text("this is not a video\n" * 50)
    _check([f], ExitCode.INVALID_MEDIA, "not a readable video", tmp_path, [f])


def test_audio_only_file(tmp_path):
    f = tmp_path / "voice.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:duration=1", "-c:a", "aac", str(f))
    _check([f], ExitCode.INVALID_MEDIA, "no video stream", tmp_path, [f])


def test_truncated_video(tmp_path, sample):
    """Index at the front, picture data cut off: decoding stops early, the file is refused, no frame is written."""
    whole = tmp_path / "whole.mp4"
    ffmpeg("-i", str(sample), "-c", "copy", "-movflags", "+faststart", str(whole))
    cut = tmp_path / "cut.mp4"
    data = whole.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    whole.unlink()
    _check([cut], ExitCode.DECODE_ERROR, "truncated", tmp_path, [cut])


def test_truncated_video_without_index(tmp_path, sample):
    """A camera file cut before its index (moov) was written cannot be opened at all."""
    cut = tmp_path / "cut.mp4"
    data = sample.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    _check([cut], ExitCode.INVALID_MEDIA, "not a readable video", tmp_path, [cut])


def test_unwritable_output_folder(tmp_path, sample):
    src = tmp_path / "in.mp4"
    shutil.copy(sample, src)
    if os.geteuid() == 0:
        target = Path("/proc/deid-out")  # root ignores permission bits; /proc refuses everyone
    else:
        target = tmp_path / "locked"
        target.mkdir()
        target.chmod(0o500)
    _check([src, "-o", target / "out.mp4"], ExitCode.OUTPUT_NOT_WRITABLE, "output folder", tmp_path, [src])


def test_existing_output_is_not_overwritten(tmp_path, sample):
    src = tmp_path / "in.mp4"
    shutil.copy(sample, src)
    dst = tmp_path / "in_anonymized.mp4"
    dst.write_bytes(b"keep me")
    _check([src], ExitCode.OUTPUT_EXISTS, "--overwrite", tmp_path, [src, dst])
    assert dst.read_bytes() == b"keep me"


def test_output_may_not_be_the_input(tmp_path, sample):
    src = tmp_path / "in.mp4"
    shutil.copy(sample, src)
    _check([src, "-o", src, "--overwrite"], ExitCode.OUTPUT_EXISTS, "overwrite the input", tmp_path, [src])


def test_unknown_method_is_a_usage_error(tmp_path, sample):
    r = run_deid("run", sample, "-o", tmp_path / "x.mp4", "--method", "smudge")
    assert r.returncode == int(ExitCode.USAGE)
    assert "unknown method" in r.stderr
    assert not (tmp_path / "x.mp4").exists()


def test_decode_error_mid_video(tmp_path, sample):
    """Damaged picture data in the middle: the file is aborted after the frames before it; nothing is written."""
    bad = tmp_path / "damaged.mp4"
    data = bytearray(sample.read_bytes())
    for i in range(int(len(data) * 0.45), int(len(data) * 0.55)):
        data[i] = (data[i] * 7 + 13) & 0xFF
    bad.write_bytes(bytes(data))
    _check([bad], ExitCode.DECODE_ERROR, "decoding failed after frame", tmp_path, [bad])
