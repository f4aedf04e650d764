"""The reliability corpus: the kinds of files a drone or camera archive holds, generated with the bundled ffmpeg.

Every case is made from the bundled sample clip (NASA's public-domain astronaut photo, ``sample_videos/``), or from a
``../shared`` clip when one is there, by a ``make`` function that writes the input into an empty folder and returns
the path to give ``deid run``. Each case says what it is, what deid must do with it (``expect``: exit code 0 and a
correct output, or one ``deid: error:`` line with that code) and, for docs/reliability.md's table, what deid does.

    python tests/corpus.py OUT_DIR            # write every case's input into OUT_DIR/<case>/
    python tests/corpus.py --table            # docs/reliability.md's table of cases (Markdown)

``tests/test_corpus.py`` runs one test per case.
"""

from __future__ import annotations

import fractions
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_videos" / "astronaut_pan.mp4"
SHARED = ROOT.parent / "shared" / "data"

OK, USAGE, INVALID, DECODE, EXISTS, NOT_WRITABLE = 0, 2, 5, 6, 7, 8


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def ff(*args: str | Path) -> None:
    """Run the bundled ffmpeg; any failure is a broken case builder, shown with ffmpeg's own words."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"ffmpeg failed building a corpus case: {' '.join(cmd)}\n{proc.stderr}")


@dataclass(frozen=True)
class Case:
    name: str
    group: str
    what: str  # the input, in a few words
    make: Callable[[Path], Path]  # writes the input into a folder; returns what to give deid
    does: str  # what deid does with it (docs/reliability.md's table)
    expect: int = OK
    words: str = ""  # the error line must contain this
    args: tuple[str, ...] = ()  # extra arguments of deid run
    out: str | None = None  # output file name (default: deid's own, NAME_anonymized.EXT)
    slow: bool = False
    shared: str | None = None  # the ../shared clip it is made from (skipped when absent)
    custom: bool = False  # a test of its own in test_corpus.py (faults, sidecars), not the generic run
    converted: dict[str, str] = field(default_factory=dict)  # stream codec the output may hold instead: {"srt": "mov_text"}


# --- sources -------------------------------------------------------------------------------------------------

SECONDS = "1"  # 25 frames: enough for tracking and timestamps, quick to encode in every codec


def _src(seconds: str = SECONDS) -> list[str]:
    """Input arguments for the sample clip: the astronaut's face in every frame."""
    return ["-t", seconds, "-i", str(SAMPLE)]


def _scale(size: str = "320x180", rate: str | None = None, then: str = "") -> list[str]:
    """Output arguments that size the first video stream (after every input), then apply filter ``then``."""
    vf = f"scale={size.replace('x', ':')}:flags=area"
    if rate:
        vf += f",fps={rate}"
    if then:
        vf += f",{then}"
    return ["-filter:v:0", vf]


def _h264(folder: Path, name: str, *extra: str, size: str = "320x180", audio: bool = True) -> Path:
    dst = folder / name
    a = ["-c:a", "aac", "-b:a", "48k"] if audio else ["-an"]
    ff(*_src(), *_scale(size), "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", *a, *extra, dst)
    return dst


def _encode(folder: Path, name: str, *codec: str, size: str = "320x180", audio: tuple[str, ...] = ("-c:a", "aac"),
            seconds: str = SECONDS, rate: str | None = None, then: str = "") -> Path:
    dst = folder / name
    ff(*_src(seconds), *_scale(size, rate, then), *codec, *audio, dst)
    return dst


def _shared(*parts: str) -> Path:
    return SHARED.joinpath(*parts)


def _pyav_data_tracks(folder: Path, name: str, tracks: list[tuple[bytes, str]], base: Path | None = None) -> Path:
    """An MP4/MOV with telemetry tracks: ``tracks`` = [(fourcc the file will carry, handler name)].

    ffmpeg's muxer writes a binary data track as ``gpmd`` (GoPro's GPMF); DJI's ``djmd``/``dbgi`` tracks have the
    same layout, so their fourcc is put in place of ``gpmd`` (same length) in the written sample description.
    """
    import av

    base = base or _h264(folder, "base.mp4")
    dst = folder / name
    with av.open(str(base)) as src, av.open(str(dst), "w") as out:
        v = out.add_stream_from_template(src.streams.video[0])
        a = out.add_stream_from_template(src.streams.audio[0]) if src.streams.audio else None
        data = []
        for _, handler in tracks:
            d = out.add_data_stream(codec_name="bin_data")
            d.time_base = fractions.Fraction(1, 1000)
            d.metadata["handler_name"] = handler
            data.append(d)
        for packet in src.demux():
            if packet.dts is None:
                continue
            target = v if packet.stream.type == "video" else a
            if target is not None and packet.stream.index in (src.streams.video[0].index, *(
                    [src.streams.audio[0].index] if a else [])):
                packet.stream = target
                out.mux(packet)
        for i in range(10):  # 10 Hz telemetry for one second: a GPS fix and an IMU reading per packet
            for k, d in enumerate(data):
                payload = f"GPS5 lat=28.5729{i} lon=-80.6490{i} alt=12.{i} track{k}".encode().ljust(64, b"\0")
                p = av.Packet(payload)
                p.stream, p.pts, p.dts, p.duration, p.time_base = d, i * 100, i * 100, 100, d.time_base
                out.mux(p)
    blob = dst.read_bytes()
    for fourcc, _ in tracks:  # each track names its format twice: its sample entry and its media header
        if fourcc != b"gpmd":
            blob = blob.replace(b"gpmd", fourcc, 2)
    dst.write_bytes(blob)
    base.unlink()
    return dst


def _srt(folder: Path, name: str = "subs.srt") -> Path:
    p = folder / name
    p.write_text("1\n00:00:00,000 --> 00:00:00,500\nhello\n\n2\n00:00:00,500 --> 00:00:01,000\nworld\n")
    return p


def _telemetry_srt(folder: Path) -> Path:
    p = folder / "telemetry.srt"
    p.write_text("1\n00:00:00,000 --> 00:00:00,500\n[iso : 100] [latitude: 28.572901] [longitude: -80.649012]\n\n"
                 "2\n00:00:00,500 --> 00:00:01,000\n[iso : 100] [latitude: 28.572911] [longitude: -80.649022]\n")
    return p


def _ass(folder: Path) -> Path:
    p = folder / "subs.ass"
    p.write_text(
        "[Script Info]\nScriptType: v4.00+\nPlayResX: 320\nPlayResY: 180\n\n[V4+ Styles]\n"
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, "
        "Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, "
        "MarginR, MarginV, Encoding\n"
        "Style: Default,DejaVu Sans,20,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,1,0,2,10,10,"
        "10,1\n\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
        "Dialogue: 0,0:00:00.00,0:00:00.90,Default,,0,0,0,,{\\b1}hello{\\b0} world\n"
    )
    return p


def _font() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def _chapters(folder: Path) -> Path:
    p = folder / "chapters.txt"
    p.write_text(";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=500\ntitle=Take-off\n"
                 "[CHAPTER]\nTIMEBASE=1/1000\nSTART=500\nEND=1000\ntitle=Survey\n")
    return p


def _cut(path: Path, share: float) -> Path:
    """Keep the first ``share`` of the file's bytes (a copy interrupted, a card pulled out)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * share)])
    return path


def _rename(path: Path, name: str) -> Path:
    dst = path.with_name(name)
    path.rename(dst)
    return dst


# --- cases -----------------------------------------------------------------------------------------------------


def containers() -> list[Case]:
    return [
        Case("mp4", "container", "MP4, H.264 + AAC, title and GPS tags", lambda d: _h264(
            d, "clip.mp4", "-metadata", "title=flight", "-metadata", "location=+28.5729-080.6490/"),
            "MP4, H.264, audio copied, tags kept"),
        Case("mp4_uppercase", "container", "DJI_0001.MP4 (upper-case extension)",
             lambda d: _h264(d, "DJI_0001.MP4"), "DJI_0001_anonymized.MP4"),
        Case("mov", "container", "QuickTime .mov, H.264 + AAC", lambda d: _h264(d, "clip.mov"), "MOV, H.264"),
        Case("m4v", "container", ".m4v, H.264 + AAC", lambda d: _h264(d, "clip.m4v"), "M4V, H.264"),
        Case("mkv", "container", "Matroska, H.264 + Opus", lambda d: _encode(
            d, "clip.mkv", "-c:v", "libx264", "-preset", "veryfast", audio=("-c:a", "libopus", "-b:a", "32k")),
            "MKV, H.264, Opus copied"),
        Case("webm", "container", "WebM, VP9 + Opus", lambda d: _encode(
            d, "clip.webm", "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k",
            audio=("-c:a", "libopus", "-b:a", "32k")),
            "WebM, re-encoded as VP9 (H.264 cannot go into WebM), Opus copied", converted={"video": "vp9"}),
        Case("avi", "container", "AVI, MPEG-4 Part 2 + MP3", lambda d: _encode(
            d, "clip.avi", "-c:v", "mpeg4", "-q:v", "4", audio=("-c:a", "libmp3lame", "-b:a", "64k")),
            "AVI, MPEG-4 Part 2 (H.264 in AVI has no presentation times), MP3 copied", converted={"video": "mpeg4"}),
        Case("ts", "container", "MPEG-TS, H.264 + AAC (90 kHz clock, 1.4 s start)",
             lambda d: _h264(d, "clip.ts"), "TS, H.264, timestamps and start kept"),
        Case("m2ts", "container", "AVCHD-style .m2ts, H.264 + AC-3", lambda d: _encode(
            d, "clip.m2ts", "-c:v", "libx264", "-preset", "veryfast", "-f", "mpegts", "-mpegts_m2ts_mode", "1",
            audio=("-c:a", "ac3", "-b:a", "96k")), "M2TS, H.264, AC-3 copied"),
        Case("mxf", "container", "MXF OP1a, MPEG-2 + PCM (broadcast)", lambda d: _encode(
            d, "clip.mxf", "-c:v", "mpeg2video", "-q:v", "3", "-r", "25", size="720x576",
            audio=("-c:a", "pcm_s16le", "-ar", "48000")),
            "MXF, H.264 without B-frames (MXF keeps no presentation times), PCM copied"),
        Case("mpg", "container", "MPEG-PS .mpg, MPEG-2 + MP2", lambda d: _encode(
            d, "clip.mpg", "-c:v", "mpeg2video", "-q:v", "3", audio=("-c:a", "mp2", "-b:a", "128k")),
            "written as .mkv (deid writes no MPEG-PS: it drops presentation times), H.264, MP2 copied"),
    ]


def codecs() -> list[Case]:
    return [
        Case("hevc_8bit", "codec", "HEVC 8-bit (hvc1) in MP4", lambda d: _encode(
            d, "hevc.mp4", "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error",
            "-tag:v", "hvc1"), "H.264 out, audio copied"),
        Case("hevc_10bit", "codec", "HEVC Main 10 in MP4", lambda d: _encode(
            d, "hevc10.mp4", "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error",
            "-pix_fmt", "yuv420p10le"), "H.264 High 10, 10 bits kept"),
        Case("vp9_mkv", "codec", "VP9 in Matroska", lambda d: _encode(
            d, "vp9.mkv", "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k",
            audio=("-c:a", "libopus")), "H.264 in MKV"),
        Case("av1", "codec", "AV1 (SVT-AV1) in MP4", lambda d: _encode(
            d, "av1.mp4", "-c:v", "libsvtav1", "-preset", "12", "-svtav1-params", "log-level=0"), "H.264 in MP4"),
        Case("prores", "codec", "ProRes 422 HQ in MOV, PCM audio", lambda d: _encode(
            d, "prores.mov", "-c:v", "prores_ks", "-profile:v", "3", audio=("-c:a", "pcm_s24le")),
            "H.264 4:2:2 10-bit, PCM copied"),
        Case("prores_4444", "codec", "ProRes 4444 with alpha in MOV", lambda d: _encode(
            d, "prores4444.mov", "-c:v", "prores_ks", "-profile:v", "4", "-pix_fmt", "yuva444p10le"),
            "H.264 4:4:4 10-bit (alpha dropped, said in the report)"),
        Case("mjpeg_avi", "codec", "Motion JPEG in AVI, PCM (ffmpeg writes an empty index entry)", lambda d: _encode(
            d, "mjpeg.avi", "-c:v", "mjpeg", "-q:v", "3", audio=("-c:a", "pcm_s16le")),
            "AVI, MPEG-4 Part 2; full-range colour converted (MPEG-4 Part 2 in AVI stores no range)",
            converted={"video": "mpeg4", "colour": "converted"}),
        Case("mpeg2_ts", "codec", "MPEG-2 video in MPEG-TS, MP2 audio", lambda d: _encode(
            d, "mpeg2.ts", "-c:v", "mpeg2video", "-q:v", "3", audio=("-c:a", "mp2")), "TS, H.264"),
        Case("ffv1_rgb", "codec", "FFV1 lossless RGB (bgr0) in MKV", lambda d: _encode(
            d, "ffv1.mkv", "-c:v", "ffv1", "-pix_fmt", "bgr0", audio=("-an",)), "H.264 4:4:4 (full chroma kept)"),
    ]


def pixel_formats() -> list[Case]:
    def x264(fmt: str, name: str):
        return lambda d: _encode(d, name, "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", fmt)

    return [
        Case("yuv422p", "pixel format", "H.264 4:2:2 8-bit", x264("yuv422p", "c422.mp4"), "4:2:2 kept"),
        Case("yuv444p", "pixel format", "H.264 4:4:4 8-bit", x264("yuv444p", "c444.mp4"), "4:4:4 kept"),
        Case("yuv420p10", "pixel format", "H.264 High 10 (4:2:0 10-bit)", x264("yuv420p10le", "c420p10.mp4"),
             "10-bit kept"),
        Case("yuv422p10", "pixel format", "H.264 4:2:2 10-bit (camera intra)", x264("yuv422p10le", "c422p10.mov"),
             "4:2:2 10-bit kept"),
        Case("gray", "pixel format", "H.264 greyscale (thermal camera)", x264("gray", "gray.mp4"), "grey kept"),
        Case("gray16_ffv1", "pixel format", "FFV1 16-bit greyscale (radiometric thermal)", lambda d: _encode(
            d, "gray16.mkv", "-c:v", "ffv1", "-pix_fmt", "gray16le", audio=("-an",)), "grey 10-bit H.264"),
        Case("rgb24_png", "pixel format", "PNG frames in MOV (RGB)", lambda d: _encode(
            d, "png.mov", "-c:v", "png", "-pix_fmt", "rgb24", audio=("-an",)), "H.264 4:4:4"),
        Case("yuvj420p", "pixel format", "full-range 4:2:0 (yuvj420p, phone camera)", x264("yuvj420p", "full.mp4"),
             "full range kept"),
    ]


def sizes() -> list[Case]:
    return [
        Case("odd_vp9", "size", "1919x1079 VP9 in WebM (odd both ways)", lambda d: _encode(
            d, "odd.webm", "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "1M",
            size="1919x1079", seconds="0.4", audio=("-c:a", "libopus")),
            "1919x1079 kept: VP9 in WebM", converted={"video": "vp9"}),
        Case("odd_h264_out", "size", "321x181 FFV1 in MKV, written to .mp4", lambda d: _encode(
            d, "odd.mkv", "-c:v", "ffv1", size="321x181", audio=("-an",)),
            "321x181 kept: H.264 4:2:0 padded to 322x182, the size a clean aperture", out="odd.mp4"),
        Case("odd_width", "size", "321x180 4:2:2 (odd width)", lambda d: _encode(
            d, "oddw.mkv", "-c:v", "ffv1", "-pix_fmt", "yuv422p", size="321x180", audio=("-an",)),
            "4:2:2 kept, padded to 322x180 (Matroska records no crop; --exact-size: 4:4:4 at 321x180)",
            converted={"size": "padded to even"}),
        Case("tiny_16", "size", "16x16 (a thumbnail track)", lambda d: _encode(
            d, "tiny.mp4", "-c:v", "libx264", "-preset", "veryfast", size="16x16"), "16x16 kept (no face to find)"),
        Case("portrait", "size", "180x320 portrait", lambda d: _encode(
            d, "portrait.mp4", "-c:v", "libx264", "-preset", "veryfast", size="180x320"), "portrait kept"),
        Case("uhd_4k", "size", "3840x2160 H.264, 3 frames", lambda d: _encode(
            d, "uhd.mp4", "-c:v", "libx264", "-preset", "ultrafast", size="3840x2160", seconds="0.12"),
            "4K kept; tiled detection", slow=True),
    ]


def _vfr(folder: Path) -> Path:
    dst = folder / "vfr.mp4"
    ff(*_src(), "-vf", "scale=320:180,setpts='(N/25+gt(N\\,10)*0.4+gt(N\\,18)*0.13)/TB'", "-fps_mode", "passthrough",
       "-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac", dst)
    return dst


def _no_keyframe(folder: Path) -> Path:
    """The first packet (the IDR frame) dropped: the stream opens on frames that cannot be decoded."""
    src = _encode(folder, "gop.mp4", "-c:v", "libx264", "-preset", "veryfast", "-g", "10", "-bf", "0")
    dst = folder / "nokey.mp4"
    ff("-i", src, "-c", "copy", "-bsf:v", "noise=drop=eq(n\\,0)", dst)
    src.unlink()
    return dst


def _edit_list(folder: Path) -> Path:
    """Cut at 0.3 s without re-encoding: the file starts on the previous keyframe and an edit list hides the lead."""
    src = _encode(folder, "whole.mp4", "-c:v", "libx264", "-preset", "veryfast", "-g", "50", seconds="2")
    dst = folder / "trimmed.mp4"
    ff("-ss", "0.3", "-i", src, "-c", "copy", dst)
    src.unlink()
    return dst


def timing() -> list[Case]:
    return [
        Case("vfr", "timing", "variable frame rate (gaps of 0.4 s and 0.13 s)", _vfr, "every timestamp kept"),
        Case("ntsc_2997", "timing", "29.97 frames/s (30000/1001)", lambda d: _encode(
            d, "ntsc.mp4", "-c:v", "libx264", "-preset", "veryfast", rate="30000/1001"), "29.97 kept"),
        Case("start_offset", "timing", "MPEG-TS starting at 10 s", lambda d: _encode(
            d, "offset.ts", "-c:v", "libx264", "-preset", "veryfast", "-output_ts_offset", "10"),
            "start time kept"),
        Case("start_offset_mp4", "timing", "MP4 whose video starts 0.5 s after its audio", _late_video,
             "offset kept"),
        Case("bframes_open_gop", "timing", "B-frames (3) and open GOPs", lambda d: _encode(
            d, "opengop.mp4", "-c:v", "libx264", "-preset", "veryfast", "-bf", "3", "-g", "8",
            "-x264-params", "open-gop=1"), "order and timestamps kept"),
        Case("no_leading_keyframe", "timing", "the first frame (IDR) missing", _no_keyframe,
             "the 9 undecodable leading frames reported; the decodable ones written"),
        Case("edit_list", "timing", "trimmed with -c copy (edit list hides the lead)", _edit_list,
             "the frames the edit list shows, at their times"),
        Case("audio_longer", "timing", "audio 2 s, video 1 s", lambda d: _h264_audio_longer(d),
             "all 2 s of audio kept"),
        Case("high_rate_60", "timing", "60 frames/s", lambda d: _encode(
            d, "hfr.mp4", "-c:v", "libx264", "-preset", "veryfast", rate="60"), "60 kept"),
    ]


def _late_video(folder: Path) -> Path:
    dst = folder / "late.mp4"
    ff("-itsoffset", "0.5", "-i", SAMPLE, "-i", SAMPLE, "-map", "0:v", "-map", "1:a", "-t", "1.5", "-vf",
       "scale=320:180,trim=duration=1", "-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac", dst)
    return dst


def _h264_audio_longer(folder: Path) -> Path:
    dst = folder / "longaudio.mp4"
    ff("-i", SAMPLE, "-f", "lavfi", "-i", "sine=frequency=500:duration=2", "-map", "0:v", "-map", "1:a", "-t", "2",
       "-vf", "scale=320:180,trim=duration=1", "-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac", dst)
    return dst


def _multi_audio(folder: Path) -> Path:
    dst = folder / "audio3.mov"
    ff(*_src(), "-f", "lavfi", "-i", "sine=frequency=600:duration=1", "-f", "lavfi", "-i", "anoisesrc=d=1:a=0.1",
       *_scale(), "-map", "0:v", "-map", "0:a", "-map", "1:a", "-map", "2:a", "-c:v", "libx264", "-preset", "veryfast",
       "-c:a:0", "aac", "-c:a:1", "pcm_s16le", "-c:a:2", "aac", "-metadata:s:a:0", "language=eng",
       "-metadata:s:a:1", "language=fra", "-metadata:s:a:2", "title=wind", dst)
    return dst


def _subs(folder: Path, name: str, codec: str, source: Path, *extra: str, audio: str = "aac") -> Path:
    """The sample clip with the subtitles of ``source`` in ``codec``; ``extra`` output options (tags, flags)."""
    dst = folder / name
    ff(*_src(), "-i", source, *_scale(), "-map", "0:v", "-map", "0:a", "-map", "1:s", "-c:v", "libx264", "-preset",
       "veryfast", "-c:a", audio, "-c:s", codec, "-metadata:s:s:0", "language=eng", *extra, dst)
    source.unlink()
    return dst


def _attachment(folder: Path) -> Path:
    dst = folder / "fonts.mkv"
    ff(*_src(), "-i", _ass(folder), *_scale(), "-map", "0:v", "-map", "0:a", "-map", "1:s", "-c:v", "libx264", "-preset",
       "veryfast", "-c:a", "libopus", "-c:s", "ass", "-attach", _font(), "-metadata:s:t:0", "mimetype=font/ttf",
       "-metadata:s:t:0", "filename=DejaVuSans.ttf", dst)
    (folder / "subs.ass").unlink()
    return dst


def _two_video(folder: Path) -> Path:
    """A second camera angle in the same file (360 and dual-lens cameras): both show faces."""
    dst = folder / "twocam.mkv"
    ff("-i", SAMPLE, "-i", SAMPLE, "-t", SECONDS, "-map", "0:v", "-map", "1:v", "-map", "0:a",
       "-filter:v:0", "scale=320:180", "-filter:v:1", "scale=240:136,hflip", "-c:v", "libx264", "-preset",
       "veryfast", "-c:a", "libopus", dst)
    return dst


def _cover_art(folder: Path) -> Path:
    """An MP4 whose cover picture is a photo of a face (it must be anonymized too, never copied)."""
    from PIL import Image
    from skimage import data

    cover = folder / "cover.jpg"
    Image.fromarray(data.astronaut()).resize((256, 256)).save(cover, quality=90)
    dst = folder / "cover.mp4"
    ff(*_src(), "-i", cover, *_scale(), "-map", "0:v", "-map", "0:a", "-map", "1:v", "-c:v:0", "libx264", "-preset", "veryfast",
       "-c:v:1", "copy", "-disposition:v:1", "attached_pic", "-c:a", "aac", dst)
    cover.unlink()
    return dst


def _chapters_in(folder: Path, name: str, audio: str) -> Path:
    dst = folder / name
    ff(*_src(), "-i", _chapters(folder), *_scale(), "-map", "0:v", "-map", "0:a", "-map_chapters", "1", "-c:v",
       "libx264", "-preset", "veryfast", "-c:a", audio, dst)
    (folder / "chapters.txt").unlink()
    return dst


def _ts_data(folder: Path) -> Path:
    """MPEG-TS with a KLV metadata stream (the STANAG 4609 way drones send position) and a binary data stream."""
    ts = _h264(folder, "plain.ts")
    klv = folder / "klv.bin"
    key = bytes.fromhex("060e2b34020b01010e01030101000000")
    klv.write_bytes(b"".join(key + bytes([20]) + bytes([2]) + bytes([8]) + i.to_bytes(8, "big") + b"\0" * 10
                             for i in range(25)))
    dst = folder / "klv.ts"
    ff("-i", ts, "-f", "data", "-i", klv, "-map", "0", "-map", "1", "-c", "copy", "-c:d", "copy", dst)
    ts.unlink()
    klv.unlink()
    return dst


def streams() -> list[Case]:
    return [
        Case("audio_x3", "streams", "three audio tracks (AAC, PCM, AAC) with languages and a title", _multi_audio,
             "all three copied with their tags"),
        Case("video_only", "streams", "no audio", lambda d: _h264(d, "silent.mp4", audio=False), "no audio added"),
        Case("mov_text", "streams", "mov_text subtitles in MP4", lambda d: _subs(d, "subs.mp4", "mov_text", _srt(d)),
             "copied"),
        Case("srt_mkv", "streams", "SRT subtitles in MKV", lambda d: _subs(d, "subs.mkv", "srt", _srt(d)), "copied"),
        Case("srt_to_mp4", "streams", "SRT subtitles in MKV, written to .mp4", lambda d: _subs(
            d, "subs.mkv", "srt", _srt(d)), "converted to mov_text (MP4's text format), said in the report",
            out="subs.mp4", converted={"subrip": "mov_text"}),
        Case("mov_text_to_mkv", "streams", "mov_text in MP4, written to .mkv", lambda d: _subs(
            d, "subs.mp4", "mov_text", _srt(d)), "converted to SRT", out="subs.mkv", converted={"mov_text": "subrip"}),
        Case("ass", "streams", "ASS subtitles with styling in MKV", lambda d: _subs(d, "styled.mkv", "ass", _ass(d)),
             "copied, styling kept"),
        Case("webvtt", "streams", "WebVTT subtitles in WebM", lambda d: _vtt_webm(d), "copied",
             converted={"video": "vp9"}),
        Case("gopro_gpmd", "streams", "GoPro GPMF telemetry track (gpmd)", lambda d: _pyav_data_tracks(
            d, "GX010001.MP4", [(b"gpmd", "GoPro MET")]), "telemetry copied (dropped with --strip-metadata)"),
        Case("dji_djmd", "streams", "DJI djmd + dbgi tracks", lambda d: _pyav_data_tracks(
            d, "DJI_0002.MP4", [(b"djmd", "DJI meta"), (b"dbgi", "DJI dbgi")]),
            "both copied as they are (ffmpeg cannot write them: carried as binary data, renamed back)"),
        Case("dji_djmd_stripped", "streams", "DJI djmd + dbgi tracks, --strip-metadata", lambda d: _pyav_data_tracks(
            d, "DJI_0002.MP4", [(b"djmd", "DJI meta"), (b"dbgi", "DJI dbgi")]), "both removed (they hold GPS)",
            args=("--strip-metadata",)),
        Case("dji_subtitle_gps", "streams", "DJI telemetry embedded as a subtitle track (mov_text)",
             lambda d: _subs(d, "DJI_0004.MOV", "mov_text", _telemetry_srt(d)), "copied"),
        Case("dji_subtitle_gps_stripped", "streams", "the same, --strip-metadata", lambda d: _subs(
            d, "DJI_0004.MOV", "mov_text", _telemetry_srt(d)), "the subtitle track left out: it carries GPS positions",
            args=("--strip-metadata",), converted={"subtitle": "left out"}),
        Case("ts_klv", "streams", "KLV/binary data stream in MPEG-TS", _ts_data, "copied"),
        Case("chapters_mp4", "streams", "MP4 chapters (a text track)",
             lambda d: _chapters_in(d, "chapters.mp4", "aac"), "chapters kept"),
        Case("chapters_mkv", "streams", "MKV chapters",
             lambda d: _chapters_in(d, "chapters.mkv", "libopus"), "chapters kept"),
        Case("attachment", "streams", "MKV with ASS subtitles and an attached font", _attachment,
             "font attachment and subtitles kept"),
        Case("timecode", "streams", "QuickTime timecode track", lambda d: _h264(
            d, "tc.mov", "-timecode", "01:00:00:00"), "timecode kept"),
        Case("two_video", "streams", "two video streams (second camera)", _two_video, "both anonymized"),
        Case("cover_art", "streams", "cover picture (a face) attached to an MP4", _cover_art,
             "cover picture anonymized too, kept as cover"),
    ]


def _vtt_webm(folder: Path) -> Path:
    vtt = folder / "subs.vtt"
    vtt.write_text("WEBVTT\n\n00:00:00.000 --> 00:00:00.900\nhello\n")
    dst = folder / "subs.webm"
    ff(*_src(), "-i", vtt, *_scale(), "-map", "0:v", "-map", "0:a", "-map", "1:s", "-c:v", "libvpx-vp9", "-deadline", "realtime",
       "-cpu-used", "8", "-b:v", "300k", "-c:a", "libopus", "-c:s", "webvtt", dst)
    vtt.unlink()
    return dst


def _mdta(folder: Path) -> Path:
    dst = folder / "iphone.mov"
    ff(*_src(), *_scale(), "-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac", "-movflags", "use_metadata_tags",
       "-metadata", "com.apple.quicktime.location.ISO6709=+28.5729-080.6490+003.000/",
       "-metadata", "com.apple.quicktime.make=Apple", "-metadata", "com.apple.quicktime.model=iPhone 15",
       "-metadata", "com.apple.quicktime.creationdate=2026-05-01T10:00:00+0200", dst)
    return dst


def _rotated(folder: Path) -> Path:
    flat = _h264(folder, "flat.mp4")
    dst = folder / "rotated.mp4"
    ff("-display_rotation", "90", "-i", flat, "-c", "copy", dst)
    flat.unlink()
    return dst


def metadata() -> list[Case]:
    return [
        Case("location", "metadata", "GPS (©xyz location) and title", lambda d: _h264(
            d, "gps.mp4", "-metadata", "location=+28.5729-080.6490/", "-metadata", "title=flight 7"),
            "kept (stripped with --strip-metadata)"),
        Case("location_stripped", "metadata", "GPS and title, --strip-metadata", lambda d: _h264(
            d, "gps.mp4", "-metadata", "location=+28.5729-080.6490/", "-metadata", "title=flight 7"),
            "GPS and title gone, audio kept", args=("--strip-metadata",)),
        Case("iso6709_stripped", "metadata", "QuickTime mdta GPS keys, --strip-metadata", _mdta, "all gone",
             args=("--strip-metadata",)),
        Case("iso6709_mdta", "metadata", "QuickTime mdta keys (com.apple.quicktime.location.ISO6709)", _mdta,
             "kept as mdta keys"),
        Case("creation_time", "metadata", "creation time, per-stream handler names and language", lambda d: _h264(
            d, "created.mp4", "-metadata", "creation_time=2026-05-01T10:00:00Z", "-metadata:s:a:0", "language=deu",
            "-metadata:s:v:0", "handler_name=DJI.AVC"), "kept"),
        Case("rotation", "metadata", "display rotation 90 degrees", _rotated, "rotation kept, frames as stored"),
        Case("colour_tags", "metadata", "BT.709 colour, full range", lambda d: _encode(
            d, "bt709.mp4", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv444p",
            then="setparams=range=pc:color_primaries=bt709:color_trc=bt709:colorspace=bt709"), "tags kept"),
        Case("hdr_pq", "metadata", "HDR10: HEVC 10-bit, BT.2020, PQ transfer", lambda d: _encode(
            d, "hdr.mp4", "-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le", "-x265-params",
            "log-level=error:colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc", "-color_primaries", "bt2020",
            "-color_trc", "smpte2084", "-colorspace", "bt2020nc", "-tag:v", "hvc1"), "10-bit, BT.2020 and PQ kept"),
        Case("hlg", "metadata", "HLG transfer (arib-std-b67) in MKV", lambda d: _encode(
            d, "hlg.mkv", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p10le", audio=("-c:a", "libopus"),
            then="setparams=color_primaries=bt2020:color_trc=arib-std-b67:colorspace=bt2020nc"), "kept"),
        Case("mkv_flags", "metadata", "MKV: stream titles, default and forced flags", lambda d: _subs(
            d, "flags.mkv", "srt", _srt(d), "-metadata:s:v:0", "title=Main camera", "-disposition:v:0", "default",
            "-disposition:a:0", "default", "-disposition:s:0", "forced", audio="libopus"),
             "flags and titles kept"),
    ]


def _damaged(folder: Path, name: str, share: float, *extra: str) -> Path:
    if name.endswith((".mkv", ".webm")):
        src = _encode(folder, "whole" + Path(name).suffix, "-c:v", "libx264" if name.endswith(".mkv") else "libvpx-vp9",
                      *(() if name.endswith(".mkv") else ("-deadline", "realtime", "-cpu-used", "8")),
                      audio=("-c:a", "libopus"), seconds="2")
    else:
        src = _encode(folder, "whole.mp4", "-c:v", "libx264", "-preset", "veryfast", *extra, seconds="2")
    return _cut(_rename(src, name), share)


def _flipped(folder: Path) -> Path:
    src = _encode(folder, "flipped.mp4", "-c:v", "libx264", "-preset", "veryfast", seconds="2")
    data = bytearray(src.read_bytes())
    for i in range(int(len(data) * 0.45), int(len(data) * 0.55)):
        data[i] = (data[i] * 7 + 13) & 0xFF
    src.write_bytes(bytes(data))
    return src


def damage() -> list[Case]:
    def trunc(name: str, share: float, *extra: str):
        return lambda d: _damaged(d, name, share, *extra)

    fast = ("-movflags", "+faststart")
    cases = [
        Case("zero_bytes", "damage", "an empty .mp4", lambda d: _touch(d / "empty.mp4"), "refused: empty",
             INVALID, "empty"),
        Case("random_bytes", "damage", "random bytes named .mp4", lambda d: _random(d / "noise.mp4"),
             "refused: not a readable video", INVALID, "not a readable video"),
        Case("text_file", "damage", "a text file named .mov", lambda d: _text(d / "notes.mov"),
             "refused: not a readable video", INVALID, "not a readable video"),
        Case("flipped_bytes", "damage", "bytes scrambled in the middle (10% of the file)", _flipped,
             "refused: decoding failed, nothing written", DECODE, "decoding failed"),
        Case("truncated_jpg", "damage", "a photo cut in half", lambda d: _cut_photo(d),
             "refused: not a readable image", INVALID, "not a readable image"),
    ]
    for share in (0.1, 0.5, 0.99):
        pct = int(share * 100)
        cases += [
            Case(f"mp4_cut_{pct}", "damage", f"MP4 (index at the end) cut at {pct}%", trunc("cut.mp4", share),
                 "refused: the index is missing", INVALID, "not a readable video"),
            Case(f"mp4_faststart_cut_{pct}", "damage", f"MP4 (index first) cut at {pct}%",
                 trunc("cut.mp4", share, *fast), "refused as truncated, nothing written", DECODE, "truncated"),
            Case(f"mkv_cut_{pct}", "damage", f"MKV cut at {pct}%", trunc("cut.mkv", share),
                 "refused as truncated (by duration), nothing written", DECODE, "truncated"),
        ]
    cases.append(Case("webm_cut_50", "damage", "WebM cut at 50%", trunc("cut.webm", 0.5),
                      "refused as truncated (by duration)", DECODE, "truncated"))
    return cases


def _touch(p: Path) -> Path:
    p.touch()
    return p


def _random(p: Path) -> Path:
    # Seeded: now and then os.urandom's bytes parsed as a stream with a video track of no size, which is refused
    # too, but with other words; a case must read the same on every run.
    p.write_bytes(random.Random(20261203).randbytes(200_000))
    return p


def _text(p: Path) -> Path:
    p.write_text("flight log, not a video\n" * 100)
    return p


def _cut_photo(folder: Path) -> Path:
    from PIL import Image
    from skimage import data

    p = folder / "half.jpg"
    Image.fromarray(data.astronaut()).save(p, quality=90)
    return _cut(p, 0.5)


def names() -> list[Case]:
    def named(name: str):
        return lambda d: _h264(d, name)

    return [
        Case("name_spaces", "names", "my flight 01.mp4", named("my flight 01.mp4"), "works"),
        Case("name_quotes", "names", "it's \"here\".mp4", named("it's \"here\".mp4"), "works"),
        Case("name_unicode", "names", "Überflug_東京_ñ.mp4", named("Überflug_東京_ñ.mp4"), "works"),
        Case("name_colon", "names", "12:30:00.mp4 (not a URL protocol)", named("12:30:00.mp4"),
             "works (paths reach ffmpeg absolute)"),
        Case("name_dash", "names", "-clip.mp4 (leading dash), given as ./-clip.mp4", named("-clip.mp4"),
             "works (given plainly: one line that says to write ./-clip.mp4)"),
        Case("name_percent", "names", "100%_%d.mp4 (printf and URL escapes)", named("100%_%d.mp4"), "works"),
        Case("name_newline", "names", "a name with a newline", named("two\nlines.mp4"), "works"),
    ]


def sidecars() -> list[Case]:
    return [
        Case("dji_srt_sidecar", "sidecar", "DJI_0003.MP4 with its DJI_0003.SRT telemetry (batch)", lambda d: d,
             "deid batch copies the .SRT beside the output; with --strip-metadata the GPS is removed from it",
             custom=True),
    ]


def faults() -> list[Case]:
    return [
        Case("read_only_folder", "faults", "output folder not writable", lambda d: d,
             "refused before any work, input untouched", NOT_WRITABLE, custom=True),
        Case("disk_full", "faults", "output on a 1 MiB tmpfs", lambda d: d,
             "one line: no space left on device; the temporary removed", NOT_WRITABLE, custom=True),
        Case("sigint", "faults", "Ctrl-C mid-run", lambda d: d, "no temporary left", 130, custom=True),
        Case("sigterm", "faults", "SIGTERM mid-run", lambda d: d, "no temporary left", 130, custom=True),
        Case("sighup", "faults", "SIGHUP mid-run (terminal closed)", lambda d: d, "no temporary left", 130,
             custom=True),
        Case("kill9_rerun", "faults", "kill -9 mid-run, then the same command again", lambda d: d,
             "the rerun removes the dead run's temporary and succeeds", custom=True),
        Case("same_output_twice", "faults", "the same command twice", lambda d: d,
             "the second run refused (use --overwrite); the first output untouched", EXISTS, custom=True),
        Case("file_output_many_inputs", "faults", "-o out.mp4 with two inputs", lambda d: d,
             "refused: -o must be a folder; nothing created", USAGE, custom=True),
        Case("clashing_outputs", "faults", "two inputs that would write the same output", lambda d: d,
             "refused before any work", USAGE, custom=True),
    ]


def shared_cases() -> list[Case]:
    """Made from real footage in ../shared when it is there."""
    street = "videos/street_faces_1080p.mp4"
    aerial = "videos/aerial_pedestrians_640.mp4"
    return [
        Case("real_1080p_vp9_odd", "real footage", "street clip as 1919x1079 VP9 WebM, 10 frames", lambda d: _real(
            d, street, "street.webm", "-vf", "scale=1919:1079", "-frames:v", "10", "-c:v", "libvpx-vp9",
            "-deadline", "realtime", "-cpu-used", "8", "-b:v", "2M", "-c:a", "libopus"),
            "every face anonymized, VP9 WebM out", shared=street, slow=True, converted={"video": "vp9"}),
        Case("real_aerial_dji", "real footage", "aerial clip with DJI djmd telemetry, MP4", lambda d: _pyav_data_tracks(
            d, "DJI_0100.MP4", [(b"djmd", "DJI meta")], base=_real(d, aerial, "aerial.mp4", "-frames:v", "24",
                                                                   "-c:v", "copy")),
            "telemetry copied", shared=aerial, slow=True),
    ]


def _real(folder: Path, rel: str, name: str, *args: str) -> Path:
    dst = folder / name
    ff("-i", _shared(rel), *args, dst)
    return dst


def all_cases() -> list[Case]:
    cases = (containers() + codecs() + pixel_formats() + sizes() + timing() + streams() + metadata() + damage()
             + names() + sidecars() + faults() + shared_cases())
    seen = set()
    for c in cases:
        assert c.name not in seen, f"two corpus cases named {c.name}"
        seen.add(c.name)
    return cases


CASES = all_cases()


def build(case: Case, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return case.make(folder)


def table() -> str:
    """docs/reliability.md's table: every case, what it is, what deid does with it."""
    rows = ["| group | case | input | what deid does |", "|---|---|---|---|"]
    for c in CASES:
        outcome = c.does if not c.expect else f"exit {c.expect}: {c.does}"
        rows.append(f"| {c.group} | `{c.name}` | {c.what.replace('|', '/')} | {outcome} |")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--table"]:
        print(table())
        return 0
    if not argv:
        print(__doc__)
        return 2
    out = Path(argv[0])
    for c in CASES:
        if c.custom or (c.shared and not _shared(c.shared).exists()):
            continue
        folder = out / c.name
        shutil.rmtree(folder, ignore_errors=True)
        path = build(c, folder)
        print(f"{c.name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
