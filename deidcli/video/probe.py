"""What a media file holds: every stream, and the part it plays in the output.

Each stream gets a role (:class:`StreamInfo.role`): the video streams (all of them are anonymized), cover pictures
(anonymized too), audio, subtitles, telemetry and other data, timecode and chapter tracks (rebuilt by the muxer),
attachments. QuickTime files are also read box by box (:mod:`deidcli.video.isobmff`) for what ffmpeg does not say:
a data track's own format (DJI ``djmd``) and which text track is the chapter list.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import av

QUICKTIME = "mov,mp4,m4a,3gp,3g2,mj2"
FONT_MIMETYPES = ("font/", "application/x-truetype-font", "application/vnd.ms-opentype", "application/x-font",
                  "application/font")


@dataclass(frozen=True)
class StreamInfo:
    """One stream of the source and the part it plays in the output.

    ``role``: ``main`` (the video stream read first), ``video`` (another video stream: anonymized as well),
    ``cover`` (an attached picture: anonymized), ``audio``, ``subtitle``, ``data`` (telemetry ffmpeg can copy),
    ``opaque`` (a QuickTime data track of a format ffmpeg cannot write, e.g. DJI ``djmd``: carried as binary data),
    ``timecode`` and ``chapters`` (rebuilt by the muxer from the video's timecode tag and the chapter list),
    ``font`` (an attachment a subtitle renderer needs), ``attachment`` (any other attached file).
    """

    index: int
    type: str
    codec: str | None
    role: str
    fourcc: str = ""  # QuickTime sample format (from the file's own boxes), "" elsewhere
    disposition: tuple[str, ...] = ()  # default, forced, attached_pic, ...
    metadata: dict = field(default_factory=dict, compare=False)
    packets: int = 0  # the container index's count; 0 when unknown
    stated_span: float | None = None  # how long the header says the stream lasts (s), where it says so per stream


def ffmpeg_path(path: Path | str) -> str:
    """A path ffmpeg reads as a file whatever its name: absolute, so ``12:30:00.mp4`` is no URL and ``-clip.mp4``
    no option."""
    return os.path.abspath(os.fspath(path))


def open_media(path: Path):
    return av.open(ffmpeg_path(path), metadata_errors="ignore")


def stream_info(s, main: int, tracks: dict, chapters: set[int], container: str) -> StreamInfo:
    cc = s.codec_context
    codec = _codec_name(cc)
    track = tracks.get(s.id)
    fourcc = track.fourcc if track else ""
    disposition = _disposition(s)
    meta = dict(s.metadata)
    if s.index == main:
        role = "main"
    elif s.type == "video":
        role = "cover" if "attached_pic" in disposition else "video"
    elif s.type in ("audio", "subtitle"):
        role = s.type
    elif s.type == "attachment":
        mime = meta.get("mimetype", "").lower()
        role = "font" if mime.startswith(FONT_MIMETYPES) else "attachment"
    elif s.type == "data":
        if fourcc == "tmcd" or "timecode" in meta:
            role = "timecode"
        elif track is not None and track.track_id in chapters:
            role = "chapters"
        elif codec is None and fourcc:
            role = "opaque"
        else:
            role = "data"
    else:
        role = "other"
    return StreamInfo(s.index, s.type, codec, role, fourcc, disposition, meta, int(s.frames or 0),
                      _stated_stream_span(s, container))


def _codec_name(cc) -> str | None:
    """The codec's own name (mp3, subrip), not its decoder's (mp3float, srt)."""
    if cc is None:
        return None
    try:
        return cc.codec.canonical_name
    except (AttributeError, av.error.FFmpegError):
        return cc.name


def _stated_stream_span(s, container: str) -> float | None:
    if container == QUICKTIME and s.duration and s.time_base:
        return float(s.duration * s.time_base)
    tag = s.metadata.get("DURATION")  # Matroska: written by ffmpeg and mkvmerge for every track
    if tag:
        try:
            h, m, sec = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(sec)
        except ValueError:
            return None
    return None


DISPOSITIONS = ("default", "dub", "original", "comment", "lyrics", "karaoke", "forced", "hearing_impaired",
                "visual_impaired", "clean_effects", "attached_pic", "captions", "descriptions", "metadata")


def _disposition(stream) -> tuple[str, ...]:
    try:
        flags = stream.disposition
        return tuple(n for n in DISPOSITIONS if flags & getattr(av.stream.Disposition, n))
    except AttributeError:
        return ()


def is_cover_art(stream) -> bool:
    return "attached_pic" in _disposition(stream)


def why(exc: Exception) -> str:
    """An FFmpeg error in a few words, without the path it repeats."""
    msg = getattr(exc, "strerror", None) or str(exc)
    return msg.split(": '")[0].strip() or exc.__class__.__name__


def subtitle_text(path: Path, index: int, packets: int = 500) -> str:
    """The text of the first ``packets`` packets of subtitle stream ``index`` (every text format keeps its words
    readable in the packet bytes: SubRip, ASS, WebVTT, mov_text)."""
    parts = []
    try:
        with open_media(path) as c:
            s = next(x for x in c.streams if x.index == index)
            for n, p in enumerate(c.demux(s)):
                if n >= packets:
                    break
                if p.size:
                    parts.append(bytes(p).decode("utf-8", errors="replace"))
    except (av.error.FFmpegError, StopIteration):
        pass
    return "\n".join(parts)
