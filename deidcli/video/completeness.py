"""Was the whole file read? Counts and ends of what the demuxer delivered, against what the container states.

A file whose MP4/MOV index lists packets it no longer holds, or whose streams last clearly less than the durations
its header states, is truncated, and nothing of it may be written. A file that states nothing (MPEG-TS, raw
streams) cannot be told from a shorter whole one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from deidcli.video.probe import QUICKTIME

if TYPE_CHECKING:
    from deidcli.video.reader import VideoInfo

# Containers whose header states the duration (not estimated from a bit rate), so a short file can be told apart.
STATED_DURATION = {QUICKTIME, "matroska,webm", "avi", "mxf", "nut", "asf", "flv"}
# Index counts that are samples rather than packets (uncompressed audio in MOV/AVI): never compared with packets.
PCM_PREFIX = "pcm_"
# MP4 track durations count decode time, while packets end at their presentation times: B-frame reordering and
# edit lists move the last presentation by a few frames either way.
_PTS_SLACK = {QUICKTIME: 0.15}
_ROUNDING = 0.002  # Matroska stores times in milliseconds: a 21.3 ms frame may read 22 ms short


@dataclass
class StreamTally:
    """What the demuxer actually delivered of one stream: packets and where the last one ends."""

    packets: int = 0
    end: float | None = None  # seconds
    longest: float = 0.0  # the longest packet duration seen, seconds (or time between packets, where unstored)
    first: float | None = None  # start of the earliest packet, seconds
    last: float | None = None  # start of the latest packet, seconds
    step: float = 0.0  # the shortest time between two packets: a packet's duration where the file stores none


@dataclass
class ReadStats:
    decoded: int = 0  # frames of the decoded stream
    tallies: dict[int, StreamTally] = field(default_factory=dict)  # stream index -> what it delivered


def tally(stats: ReadStats, packet) -> None:
    """Count one demuxed packet into ``stats``."""
    if packet.size == 0 and packet.pts is None:
        return  # the demuxer's end-of-stream marker
    t = stats.tallies.setdefault(packet.stream.index, StreamTally())
    t.packets += 1
    if packet.pts is not None and packet.time_base:
        start = float(packet.pts * packet.time_base)
        if t.last is not None and start > t.last:
            t.step = start - t.last if not t.step else min(t.step, start - t.last)
        t.last = start
        t.first = start if t.first is None else min(t.first, start)
        duration = float((packet.duration or 0) * packet.time_base) or t.step
        t.end = start + duration if t.end is None else max(t.end, start + duration)
        t.longest = max(t.longest, duration)


def truncation(info: VideoInfo, stats: ReadStats) -> str | None:
    """Why the file read is shorter than it says it is, or None when it is whole.

    * MP4/MOV index every packet: a stream that delivered fewer (uncompressed audio aside, indexed in samples) lost
      its end.
    * Where the header states a stream's duration (MP4/MOV track durations, Matroska's per-track DURATION tags),
      its packets must span it, within its longest packet (a cut before a keyframe, or a muxer's rounding, leaves a
      whole file one frame of a stream short of what its header states: one AAC frame, 21 ms); where it states only the file's duration, the
      streams together must reach that, within one and a half frames. A file that states nothing (MPEG-TS, raw
      streams) cannot be told from a shorter whole one.
    """
    for s in info.streams:
        if s.role in ("cover", "timecode", "chapters", "font", "attachment"):
            continue
        t = stats.tallies.get(s.index, StreamTally())
        if info.container_format == QUICKTIME and s.packets and s.type in ("video", "audio") \
                and not (s.codec or "").startswith(PCM_PREFIX):  # subtitles index empty samples it never delivers
            if t.packets < s.packets:
                return f"{s.type} stream {s.index} ends after {t.packets} of {s.packets} packets"
        if s.stated_span is not None and s.stated_span > 0 and s.type in ("video", "audio"):
            # Muxers count a stream's duration from zero, or from its first packet when that starts before zero
            # (audio priming): measured the same way, a whole stream reaches it.
            span = t.end - min(0.0, t.first) if t.end is not None and t.first is not None else 0.0
            if span < s.stated_span - max(0.005, t.longest + _ROUNDING) - _PTS_SLACK.get(info.container_format, 0):
                return f"{s.type} stream {s.index} lasts {span:.3f} s of the {s.stated_span:.3f} s its header states"
    if info.container_format not in STATED_DURATION:
        return None
    ends = [t for t in stats.tallies.values() if t.end is not None]
    if not ends or info.stated_s is None:
        return None
    container_end = info.start_s + info.stated_s
    reached = max(t.end for t in ends)
    frame = 1 / float(info.frame_rate) if info.frame_rate else 0.04
    slack = max(0.05, 1.5 * max(frame, max(t.longest for t in ends)))
    if reached < container_end - slack:
        return f"the streams end at {reached:.2f} s of the {container_end:.2f} s its header states"
    return None
