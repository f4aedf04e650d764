"""Carry QuickTime data tracks that ffmpeg cannot write (DJI ``djmd``/``dbgi`` and other unknown formats).

ffmpeg reads such a track as a data stream of codec "none" and refuses to write one. Its packets are therefore
copied, with their timestamps, into an MP4 beside the output as binary data tracks, which ffmpeg can map like any
other input; once the output is written, :func:`deidcli.video.isobmff.rename_sample_formats` gives each track its
own format name back. The payload is not read or changed.
"""

from __future__ import annotations

from pathlib import Path

import av

from deidcli.errors import DecodeError
from deidcli.video.probe import StreamInfo, ffmpeg_path


def write_graft_file(source: Path, streams: list[StreamInfo], dst: Path) -> int:
    """Copy every packet of ``streams`` of ``source`` into an MP4 at ``dst``, one binary data track each, in the
    given order; returns the number of packets copied."""
    copied = 0
    try:
        with av.open(ffmpeg_path(source), metadata_errors="ignore") as src, \
                av.open(ffmpeg_path(dst), "w", format="mp4") as out:
            by_index = {s.index: s for s in src.streams}
            targets = {}
            for info in streams:
                s = by_index[info.index]
                o = out.add_data_stream(codec_name="bin_data")
                o.time_base = s.time_base
                targets[info.index] = o
            for packet in src.demux(*(by_index[i.index] for i in streams)):
                if packet.size == 0:
                    continue
                p = av.Packet(bytes(packet))
                p.pts, p.duration = packet.pts, packet.duration
                p.dts = packet.dts if packet.dts is not None else packet.pts
                p.time_base = packet.time_base
                p.stream = targets[packet.stream.index]
                out.mux(p)
                copied += 1
    except av.error.FFmpegError as exc:
        raise DecodeError(f"{source}: cannot copy its telemetry tracks ({exc})") from None
    return copied
