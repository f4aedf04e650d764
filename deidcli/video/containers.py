"""Which output container holds which streams, and the plan for every stream of a source in one of them.

The output keeps its source's container unless ``-o`` names another. Each source stream gets one fate
(:class:`OutStream`): encoded (the video streams, after anonymization), copied as it is, converted to a form the
container takes (said in the report), carried as opaque data (QuickTime telemetry ffmpeg cannot write), rebuilt by
the muxer (timecode, chapters), or left out for a stated reason (telemetry under ``--strip-metadata``, attachments
deid cannot check for faces). A stream the chosen container cannot hold at all is a configuration error naming a
container that can, never a silent loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from deidcli.errors import ConfigError
from deidcli.video.probe import StreamInfo
from deidcli.video.reader import VideoInfo

TEXT_SUBTITLES = {"subrip", "ass", "ssa", "webvtt", "mov_text", "text"}
ANY = None  # a muxer that takes every codec of a kind


@dataclass(frozen=True)
class Muxer:
    name: str  # ffmpeg's -f
    encoder: str  # the video encoder used when --codec is auto
    video: frozenset[str]  # video codecs it holds (what deid may encode into it)
    audio: frozenset[str] | None  # audio codecs it holds as they are (None: any)
    audio_fallback: str | None  # encoder for audio it cannot hold (None: it holds no audio of that kind)
    subtitles: frozenset[str]  # subtitle codecs it holds as they are
    text_subtitles: str | None  # the encoder text subtitles are converted with (None: holds no text subtitles)
    data: bool = False  # data streams (telemetry)
    opaque: bool = False  # QuickTime data tracks of formats ffmpeg cannot write (carried as binary data)
    attachments: bool = False
    cover: bool = False  # attached pictures
    bframes: bool = True  # AVI stores no presentation times: reordered frames would come out of order
    ts_delay: bool = False  # MPEG-TS/PS add a mux delay to copied timestamps unless told not to


_H26X = frozenset({"h264", "hevc"})
_QT_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "flac", "opus", "mp2", "dts", "truehd", "pcm_s16le",
                       "pcm_s16be", "pcm_s24le", "pcm_s24be", "pcm_s32le", "pcm_f32le", "pcm_f32be", "pcm_u8",
                       "pcm_s8"})
MUXERS: dict[str, Muxer] = {
    m.name: m
    for m in (
        Muxer("mp4", "libx264", _H26X | {"av1", "vp9", "mpeg4", "mjpeg"}, _QT_AUDIO, "aac",
              frozenset({"mov_text", "dvd_subtitle"}), "mov_text", data=True, opaque=True, cover=True),
        Muxer("mov", "libx264", _H26X | {"prores", "mjpeg", "mpeg4", "av1"}, ANY, "aac", frozenset({"mov_text"}),
              "mov_text", data=True, opaque=True, cover=True),
        Muxer("matroska", "libx264", _H26X | {"av1", "vp9", "vp8", "mpeg4", "ffv1", "prores", "mjpeg"}, ANY, "flac",
              frozenset({"subrip", "ass", "ssa", "webvtt", "dvd_subtitle", "hdmv_pgs_subtitle", "dvb_subtitle",
                         "arib_caption"}), "srt", attachments=True, cover=True),
        Muxer("webm", "libvpx-vp9", frozenset({"vp9", "vp8", "av1"}), frozenset({"opus", "vorbis"}), "libopus",
              frozenset({"webvtt"}), "webvtt"),
        # H.264 in AVI has no presentation times (readers guess them a frame late): MPEG-4 Part 2, as cameras wrote.
        Muxer("avi", "mpeg4", _H26X | {"mpeg4", "mjpeg"}, frozenset({"mp3", "ac3", "mp2", "aac", "pcm_s16le",
                                                                       "pcm_u8", "pcm_s24le", "dts"}),
              "pcm_s16le", frozenset(), None, bframes=False),
        Muxer("mpegts", "libx264", _H26X | {"mpeg2video", "av1"},
              frozenset({"aac", "mp2", "mp3", "ac3", "eac3", "opus", "dts", "truehd", "pcm_bluray"}), "aac",
              frozenset({"dvb_subtitle", "dvb_teletext", "hdmv_pgs_subtitle"}), None, data=True, ts_delay=True),
        Muxer("mxf", "libx264", _H26X | {"mpeg2video", "dnxhd"}, frozenset({"pcm_s16le", "pcm_s24le"}), "pcm_s24le",
              frozenset(), None, bframes=False),
        Muxer("asf", "libx264", _H26X | {"mpeg4", "wmv2", "wmv3"}, ANY, "aac", frozenset(), None),
        Muxer("flv", "libx264", _H26X | {"av1"}, frozenset({"aac", "mp3"}), "aac", frozenset(), None),
        # Extra video streams are encoded into NUT beside the output, then copied into it: NUT keeps every
        # timestamp exactly and holds whatever the final container does.
        Muxer("nut", "libx264", _H26X | {"av1", "vp9", "vp8", "mpeg4", "mpeg2video", "prores", "mjpeg", "ffv1"},
              ANY, None, frozenset(), None),
        Muxer("3gp", "libx264", _H26X | {"mpeg4"}, frozenset({"aac", "amr_nb", "amr_wb"}), "aac",
              frozenset({"mov_text"}), "mov_text"),
    )
}
EXTENSIONS = {
    ".mp4": "mp4", ".m4v": "mp4", ".lrf": "mp4", ".insv": "mp4", ".360": "mp4", ".mov": "mov", ".qt": "mov",
    ".mkv": "matroska", ".webm": "webm", ".avi": "avi", ".ts": "mpegts", ".mts": "mpegts", ".m2ts": "mpegts",
    ".mxf": "mxf", ".wmv": "asf", ".asf": "asf", ".flv": "flv",
    ".3gp": "3gp",
}
# The codec each encoder writes, for checking that a container holds what --codec asks for.
ENCODER_CODECS = {
    "libx264": "h264", "libx264rgb": "h264", "h264_nvenc": "h264", "h264_qsv": "h264", "h264_vaapi": "h264",
    "libopenh264": "h264", "libx265": "hevc", "hevc_nvenc": "hevc", "hevc_qsv": "hevc", "hevc_vaapi": "hevc",
    "libvpx-vp9": "vp9", "libvpx": "vp8", "libsvtav1": "av1", "libaom-av1": "av1", "av1_nvenc": "av1",
    "librav1e": "av1", "mpeg4": "mpeg4", "mpeg2video": "mpeg2video", "prores_ks": "prores", "ffv1": "ffv1",
    "mjpeg": "mjpeg", "dnxhd": "dnxhd",
}


@dataclass(frozen=True)
class OutStream:
    """One stream of the output and where it comes from."""

    source: StreamInfo
    action: str  # encode, copy, convert, graft, rebuild, drop
    codec: str = "copy"  # the encoder, for encode and convert
    note: str = ""  # what the report says about it (conversions and drops)


@dataclass(frozen=True)
class OutputPlan:
    muxer: Muxer
    encoder: str
    streams: tuple[OutStream, ...]

    @property
    def notes(self) -> list[str]:
        return [s.note for s in self.streams if s.note]

    def kept(self, *actions: str) -> list[OutStream]:
        return [s for s in self.streams if s.action in actions]


@dataclass
class _Problems:
    items: list[str] = field(default_factory=list)

    def add(self, s: StreamInfo, why: str) -> OutStream:
        self.items.append(f"stream {s.index} ({_describe(s)}): {why}")
        return OutStream(s, "drop")


# Sources whose own container deid does not write: MPEG program streams (.mpg, DVD .vob) drop presentation times
# of reordered frames; Matroska holds all they carry (MPEG audio, AC-3, DVD subtitles).
REWRITTEN_AS = {".mpg": ".mkv", ".mpeg": ".mkv", ".vob": ".mkv"}


def output_suffix(source: Path) -> str:
    """The extension of a source's default output: its own, unless deid writes that container as another."""
    return REWRITTEN_AS.get(source.suffix.lower(), source.suffix)


def muxer_for(path: Path) -> Muxer:
    """The muxer an output path asks for, by its extension."""
    ext = path.suffix.lower()
    if ext not in EXTENSIONS:
        instead = f" ({REWRITTEN_AS[ext]} holds what it does)" if ext in REWRITTEN_AS else ""
        raise ConfigError(f"{path.name}: deid does not write {ext or 'files without an extension'}{instead}; use "
                          f".mp4, .mov, .mkv, .webm, .avi, .ts or .mxf")
    return MUXERS[EXTENSIONS[ext]]


def choose_encoder(muxer: Muxer, requested: str) -> str:
    if requested == "auto":
        return muxer.encoder
    codec = ENCODER_CODECS.get(requested)
    if codec is not None and codec not in muxer.video:
        raise ConfigError(f"--codec {requested} writes {codec}, which {muxer.name} cannot hold; use --codec auto "
                          f"({muxer.encoder}) or another output container (.mkv holds most)")
    return requested


def plan_output(info: VideoInfo, output: Path, requested_codec: str = "auto", strip_metadata: bool = False,
                leave_out: dict[int, str] | None = None) -> OutputPlan:
    """Decide, for every stream of ``info``, what the output at ``output`` holds of it; ``leave_out`` names
    streams the caller found must not be written (stream index -> why).

    Raises :class:`ConfigError` (one line, naming a container that would do) when the output's container cannot
    hold a stream the source has and nothing it may drop explains the loss.
    """
    muxer = muxer_for(output)
    encoder = choose_encoder(muxer, requested_codec)
    problems = _Problems()
    subtitles_converted = False
    out: list[OutStream] = []
    for s in info.streams:
        if leave_out and s.index in leave_out and s.index != info.index:
            out.append(OutStream(s, "drop", note=f"stream {s.index}: {s.type} left out: {leave_out[s.index]}"))
        elif s.role in ("main", "video"):
            out.append(OutStream(s, "encode", encoder))
        elif s.role == "cover":
            out.append(OutStream(s, "encode", "cover") if muxer.cover else OutStream(
                s, "drop", note=f"stream {s.index}: cover picture left out ({muxer.name} holds none)"))
        elif s.role == "audio":
            out.append(_audio(s, muxer, problems))
        elif s.role == "subtitle":
            o = _subtitle(s, muxer, problems)
            subtitles_converted |= o.action == "convert"
            out.append(o)
        elif s.role in ("data", "opaque"):
            out.append(_data(s, muxer, strip_metadata, problems))
        elif s.role in ("timecode", "chapters"):
            out.append(OutStream(s, "rebuild"))
        elif s.role == "font":
            out.append(OutStream(s, "copy"))  # settled below, once the subtitles are
        elif s.role == "attachment":
            mime = s.metadata.get("mimetype", "unknown type")
            name = s.metadata.get("filename", f"stream {s.index}")
            out.append(OutStream(s, "drop", note=f"attachment {name} ({mime}) left out: deid cannot check it for "
                                                 f"faces"))
        else:
            out.append(problems.add(s, "deid does not know this kind of stream"))
    fonts = [i for i, o in enumerate(out) if o.source.role == "font"]
    for i in fonts:
        s = out[i].source
        name = s.metadata.get("filename", f"stream {s.index}")
        if subtitles_converted or not any(o.source.role == "subtitle" and o.action == "copy" for o in out):
            out[i] = OutStream(s, "drop", note=f"font {name} left out: no styled subtitles in the output need it")
        elif not muxer.attachments:
            out[i] = problems.add(s, f"{muxer.name} holds no attachments")
    if problems.items:
        hint = "leave -o out to keep the source's container" if output.suffix.lower() != info.path.suffix.lower() \
            else "write .mkv or .mov"
        raise ConfigError(f"{output.name}: {problems.items[0]}; {hint}")
    return OutputPlan(muxer, encoder, tuple(out))


def single_stream_plan(info: VideoInfo, encoder: str) -> OutputPlan:
    """Just the decoded video stream of ``info``, encoded with ``encoder`` into NUT: an extra video stream, made
    beside the output and then copied into it."""
    main = next(s for s in info.streams if s.index == info.index)
    return OutputPlan(MUXERS["nut"], encoder, (OutStream(main, "encode", encoder),))


def _audio(s: StreamInfo, muxer: Muxer, problems: _Problems) -> OutStream:
    if muxer.audio is ANY or s.codec in muxer.audio:
        return OutStream(s, "copy")
    if muxer.audio_fallback:
        return OutStream(s, "convert", muxer.audio_fallback,
                         f"stream {s.index}: audio {s.codec} converted to {muxer.audio_fallback} ({muxer.name} holds "
                         f"no {s.codec})")
    return problems.add(s, f"{muxer.name} holds no audio")


def _subtitle(s: StreamInfo, muxer: Muxer, problems: _Problems) -> OutStream:
    if s.codec in muxer.subtitles:
        return OutStream(s, "copy")
    if s.codec in TEXT_SUBTITLES and muxer.text_subtitles:
        return OutStream(s, "convert", muxer.text_subtitles,
                         f"stream {s.index}: subtitles {s.codec} converted to {muxer.text_subtitles} ({muxer.name} "
                         f"holds no {s.codec}; styling is lost)" if s.codec in ("ass", "ssa") else
                         f"stream {s.index}: subtitles {s.codec} converted to {muxer.text_subtitles} ({muxer.name} "
                         f"holds no {s.codec})")
    return problems.add(s, f"{muxer.name} holds no {s.codec} subtitles")


def _data(s: StreamInfo, muxer: Muxer, strip: bool, problems: _Problems) -> OutStream:
    what = _describe(s)
    if strip:
        return OutStream(s, "drop", note=f"stream {s.index}: {what} removed (--strip-metadata)")
    if s.role == "opaque":
        if s.fourcc == "mebx":
            return OutStream(s, "drop", note=f"stream {s.index}: Apple timed metadata (mebx) left out: its format "
                                             f"description cannot be rewritten (the file's location tags are kept)")
        if muxer.opaque:
            return OutStream(s, "graft", note="")
        return problems.add(s, f"{muxer.name} cannot hold QuickTime data tracks (give --strip-metadata to leave "
                               f"telemetry out)")
    if muxer.data:
        return OutStream(s, "copy")
    return problems.add(s, f"{muxer.name} holds no data streams (give --strip-metadata to leave telemetry out)")


def _describe(s: StreamInfo) -> str:
    name = s.fourcc or s.codec or "unknown"
    handler = s.metadata.get("handler_name")
    if s.type == "data":
        return f"data {name}" + (f", {handler!r}" if handler else "")
    return f"{s.type} {name}"
