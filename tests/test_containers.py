"""The plan for every stream in an output container, the encoder's pixel format, ffmpeg's real cause, and the
MP4 boxes deid reads and mends: the decisions behind the corpus, one at a time."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from deidcli.errors import ConfigError
from deidcli.video.containers import output_suffix, plan_output
from deidcli.video.completeness import ReadStats, StreamTally, truncation
from deidcli.video.probe import StreamInfo
from deidcli.video.reader import VideoInfo
from deidcli.video.writer import encoder_pix_fmt, failure_cause, padded_size

MAIN = StreamInfo(0, "video", "h264", "main")


def info(*others: StreamInfo, path: str = "clip.mp4", fmt: str = "mov,mp4,m4a,3gp,3g2,mj2", **kw) -> VideoInfo:
    streams = (MAIN, *others)
    return VideoInfo(Path(path), 320, 180, "yuv420p", Fraction(1, 12800), Fraction(25), 25, 1.0, 0, fmt,
                     {}, streams, 0, {}, **kw)


def actions(plan) -> list[tuple[int, str, str]]:
    return [(o.source.index, o.action, o.codec) for o in plan.streams]


def test_webm_gets_vp9_and_mp4_gets_h264():
    assert plan_output(info(path="a.webm"), Path("a_anonymized.webm")).encoder == "libvpx-vp9"
    assert plan_output(info(), Path("a.mp4")).encoder == "libx264"
    assert plan_output(info(), Path("a.avi")).encoder == "mpeg4"


def test_an_encoder_the_container_cannot_hold_is_one_clear_line():
    with pytest.raises(ConfigError, match="webm cannot hold"):
        plan_output(info(), Path("a.webm"), "libx264")


def test_text_subtitles_are_converted_to_the_containers_own():
    srt = StreamInfo(1, "subtitle", "subrip", "subtitle")
    plan = plan_output(info(srt, path="a.mkv", fmt="matroska,webm"), Path("a.mp4"))
    assert actions(plan)[1] == (1, "convert", "mov_text")
    assert "converted to mov_text" in plan.notes[0]
    mov_text = StreamInfo(1, "subtitle", "mov_text", "subtitle")
    assert actions(plan_output(info(mov_text), Path("a.mkv")))[1] == (1, "convert", "srt")


def test_telemetry_is_copied_grafted_stripped_or_refused():
    gpmd = StreamInfo(2, "data", "bin_data", "data", "gpmd", metadata={"handler_name": "GoPro MET"})
    djmd = StreamInfo(3, "data", None, "opaque", "djmd", metadata={"handler_name": "DJI meta"})
    plan = plan_output(info(gpmd, djmd), Path("a.mp4"))
    assert actions(plan)[1:] == [(2, "copy", "copy"), (3, "graft", "copy")]
    stripped = plan_output(info(gpmd, djmd), Path("a.mp4"), strip_metadata=True)
    assert [o.action for o in stripped.streams[1:]] == ["drop", "drop"]
    assert all("--strip-metadata" in n for n in stripped.notes)
    with pytest.raises(ConfigError, match="matroska holds no data streams.*--strip-metadata"):
        plan_output(info(gpmd), Path("a.mkv"))


def test_timecode_and_chapter_tracks_are_left_to_the_muxer():
    tc = StreamInfo(1, "data", None, "timecode", "tmcd")
    chap = StreamInfo(2, "data", None, "chapters", "text")
    assert [o.action for o in plan_output(info(tc, chap), Path("a.mov")).streams[1:]] == ["rebuild", "rebuild"]


def test_attachments_deid_cannot_check_are_left_out_and_fonts_follow_their_subtitles():
    ass = StreamInfo(1, "subtitle", "ass", "subtitle")
    font = StreamInfo(2, "attachment", None, "font", metadata={"filename": "a.ttf", "mimetype": "font/ttf"})
    blob = StreamInfo(3, "attachment", None, "attachment", metadata={"filename": "x.bin",
                                                                     "mimetype": "application/octet-stream"})
    kept = plan_output(info(ass, font, blob, path="a.mkv", fmt="matroska,webm"), Path("a.mkv"))
    assert [o.action for o in kept.streams[1:]] == ["copy", "copy", "drop"]
    assert "cannot check it for faces" in kept.notes[0]
    converted = plan_output(info(ass, font, path="a.mkv", fmt="matroska,webm"), Path("a.mp4"))
    assert [o.action for o in converted.streams[1:]] == ["convert", "drop"]


def test_containers_deid_does_not_write():
    assert output_suffix(Path("dvd.VOB")) == ".mkv" and output_suffix(Path("a.mpg")) == ".mkv"
    assert output_suffix(Path("DJI_0001.MP4")) == ".MP4"
    with pytest.raises(ConfigError, match=r"\.mkv holds what it does"):
        plan_output(info(), Path("a.mpg"))


@pytest.mark.parametrize("source,size,expected", [
    ("yuv420p", (320, 180), "yuv420p"),
    ("yuv420p10le", (320, 180), "yuv420p10le"),
    ("yuv422p10le", (320, 180), "yuv422p10le"),
    ("yuv420p", (321, 181), "yuv420p"),  # odd sides are padded to even (padded_size), the chroma kept
    ("yuv422p", (321, 180), "yuv422p"),
    ("yuv422p", (320, 181), "yuv422p"),  # 4:2:2 subsamples only across
    ("bgr0", (320, 180), "yuv444p"),
    ("gray16le", (320, 180), "gray10le"),
    ("yuva444p12le", (320, 180), "yuv444p10le"),
])
def test_x264_pixel_formats(source, size, expected):
    fmt, note = encoder_pix_fmt("libx264", source, *size)
    assert fmt == expected
    assert bool(note) == (fmt != source)


def test_vp9_takes_odd_sizes_as_they_are():
    assert encoder_pix_fmt("libvpx-vp9", "yuv420p", 1919, 1079) == ("yuv420p", "")
    assert padded_size("libvpx-vp9", "yuv420p", 1919, 1079) == (1919, 1079)


def test_odd_sizes_are_padded_for_h26x_or_kept_in_444_with_exact_size():
    assert padded_size("libx264", "yuv420p", 1919, 1079) == (1920, 1080)
    assert padded_size("libx265", "yuv422p", 321, 181) == (322, 181)  # 4:2:2 subsamples only across
    assert padded_size("h264_nvenc", "yuv420p", 320, 181) == (320, 182)
    assert padded_size("libx264", "yuv444p", 321, 181) == (321, 181)
    fmt, note = encoder_pix_fmt("libx264", "yuv420p", 1919, 1079, exact_size=True)
    assert fmt == "yuv444p" and "odd side" in note


def test_the_cause_is_the_first_line_that_says_why():
    log = ("[vost#0:0/libx264 @ 0x1] [enc:libx264 @ 0x2] width not divisible by 2 (321x181)\n"
           "[vf#0:0 @ 0x3] Error sending frames to consumers: Invalid argument\n"
           "[out#0/mp4 @ 0x4] Nothing was written into output file, because at least one of its streams received "
           "no packets.\nConversion failed!\n")
    assert failure_cause(log) == "width not divisible by 2 (321x181)"
    assert failure_cause("Conversion failed!\n") == "Conversion failed!"


def _tally(packets: int, first: float, end: float, step: float = 0.04) -> StreamTally:
    return StreamTally(packets=packets, end=end, longest=step, first=first, last=end - step, step=step)


def test_truncation_by_index_by_stream_duration_and_by_file_duration():
    qt = "mov,mp4,m4a,3gp,3g2,mj2"
    audio = StreamInfo(1, "audio", "aac", "audio", packets=47, stated_span=1.0)
    video = StreamInfo(0, "video", "h264", "main", packets=25, stated_span=1.0)
    whole = ReadStats(25, {0: _tally(25, 0, 1.0), 1: _tally(47, 0, 1.0, 0.0213)})
    i = info(audio, fmt=qt)
    i = VideoInfo(**{**i.__dict__, "streams": (video, audio)})
    assert truncation(i, whole) is None
    cut = ReadStats(25, {0: _tally(25, 0, 1.0), 1: _tally(44, 0, 0.94, 0.0213)})
    assert "audio stream 1 ends after 44 of 47 packets" in truncation(i, cut)
    mkv_audio = StreamInfo(1, "audio", "opus", "audio", stated_span=2.008)
    mkv = VideoInfo(**{**i.__dict__, "container_format": "matroska,webm", "streams": (MAIN, mkv_audio),
                       "stated_s": 2.008})
    assert "lasts 1.961 s of the 2.008 s" in truncation(mkv, ReadStats(50, {0: _tally(50, 0, 2.0),
                                                                             1: _tally(98, 0, 1.961, 0.02)}))
    # a cut before a keyframe: the audio one AAC frame (21.3 ms) short of its stated span is whole; two are not
    one_short = ReadStats(50, {0: _tally(50, 0, 2.0), 1: _tally(93, 0, 2.008 - 0.0213, 0.0213)})
    assert truncation(mkv, one_short) is None
    two_short = ReadStats(50, {0: _tally(50, 0, 2.0), 1: _tally(92, 0, 2.008 - 0.0427, 0.0213)})
    assert "lasts 1.965 s of the 2.008 s" in truncation(mkv, two_short)
    primed = ReadStats(25, {0: _tally(25, 0, 2.0), 1: _tally(101, -0.021, 1.987, 0.02)})  # audio priming
    assert truncation(VideoInfo(**{**mkv.__dict__, "streams": (MAIN, StreamInfo(
        1, "audio", "aac", "audio", stated_span=2.008))}), primed) is None
    no_tags = VideoInfo(**{**mkv.__dict__, "streams": (MAIN, StreamInfo(1, "audio", "opus", "audio"))})
    assert "end at 0.68 s of the 2.01 s" in truncation(no_tags, ReadStats(17, {0: _tally(17, 0, 0.68)}))
    ts = VideoInfo(**{**no_tags.__dict__, "container_format": "mpegts"})
    assert truncation(ts, ReadStats(17, {0: _tally(17, 0, 0.68)})) is None  # states nothing reliable


def test_telemetry_track_formats_are_read_and_renamed(tmp_path):
    from corpus import _pyav_data_tracks
    from deidcli.video.isobmff import read_tracks, rename_sample_formats

    clip = _pyav_data_tracks(tmp_path, "DJI.MP4", [(b"gpmd", "DJI meta"), (b"gpmd", "DJI dbgi")])
    tracks = read_tracks(clip)
    assert [(t.handler, t.fourcc) for t in tracks] == [("vide", "avc1"), ("soun", "mp4a"), ("meta", "gpmd"),
                                                         ("meta", "gpmd")]
    assert [t.name for t in tracks[2:]] == ["DJI meta", "DJI dbgi"]
    assert rename_sample_formats(clip, {3: "djmd", 4: "dbgi"}) == 2
    assert [t.fourcc for t in read_tracks(clip)[2:]] == ["djmd", "dbgi"]
    assert read_tracks(tmp_path / "missing.mp4") == []


def _defaults(path: Path) -> list[tuple[str, bool]]:
    import av

    with av.open(str(path)) as c:
        return [(s.type, bool(s.disposition & av.stream.Disposition.default)) for s in c.streams
                if s.type in ("audio", "subtitle")]


@pytest.mark.parametrize("sub_default", [False, True])
def test_mp4_keeps_the_sources_default_flags(tmp_path, sub_default):
    """The MP4 muxer marks the first track of each kind default when none is: SubRip from Matroska, converted to
    mov_text, must not become a subtitle shown unasked; of two audio tracks only the second stays default."""
    from conftest import ffmpeg, run_deid

    srt = tmp_path / "s.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,500\nhello\n")
    src = tmp_path / "src.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:duration=1", "-f", "lavfi", "-i", "sine=d=1",
           "-f", "lavfi", "-i", "sine=d=1:f=880", "-i", str(srt), "-map", "0", "-map", "1", "-map", "2", "-map", "3",
           "-c:v", "libx264", "-c:a", "aac", "-c:s", "srt", "-disposition:a:0", "0", "-disposition:a:1", "default",
           "-disposition:s:0", "default" if sub_default else "0", str(src))
    want = [("audio", False), ("audio", True), ("subtitle", sub_default)]
    assert _defaults(src) == want
    out = tmp_path / "out.mp4"
    r = run_deid("run", src, "-o", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert _defaults(out) == want
