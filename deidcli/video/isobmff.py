"""Just enough of the ISO base media file format (MP4, MOV) to see and mend what ffmpeg cannot.

ffmpeg exposes a QuickTime data track whose format it does not know (DJI's ``djmd`` and ``dbgi``, Apple's ``mebx``)
as a data stream of codec "none" and cannot write one back; the chapter list of an MP4 is a text track that it
shows as a data stream but rebuilds from the chapters itself. This module reads each track's id, handler and sample
format from the ``moov`` box, and renames a track's sample format in a file ffmpeg wrote, so such a track can be
carried as opaque binary data and given its own name back.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"tref", b"gmhd", b"dinf"}


@dataclass(frozen=True)
class Track:
    track_id: int
    handler: str  # hdlr type: vide, soun, meta, text, tmcd, sbtl ...
    name: str  # hdlr name, e.g. "DJI meta"
    fourcc: str  # the first sample entry's format, e.g. "djmd"
    chapter_tracks: tuple[int, ...]  # ids this track names in its tref/chap box


def _boxes(data: bytes, start: int, end: int):
    """(type, payload start, payload end, box start) of each box in ``data[start:end]``."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        head = 8
        if size == 1:
            if pos + 16 > end:
                return
            size = struct.unpack(">Q", data[pos + 8:pos + 16])[0]
            head = 16
        elif size == 0:
            size = end - pos
        if size < head or pos + size > end:
            return
        yield kind, pos + head, pos + size, pos
        pos += size


def _find_moov(fh: BinaryIO) -> tuple[int, bytes] | None:
    """The ``moov`` box's offset and bytes (header included), walking the top-level boxes by their sizes."""
    fh.seek(0, 2)
    length = fh.tell()
    pos = 0
    while pos + 8 <= length:
        fh.seek(pos)
        head = fh.read(16)
        if len(head) < 8:
            return None
        size, kind = struct.unpack(">I4s", head[:8])
        if size == 1 and len(head) >= 16:
            size = struct.unpack(">Q", head[8:16])[0]
        elif size == 0:
            size = length - pos
        if size < 8:
            return None
        if kind == b"moov":
            fh.seek(pos)
            data = fh.read(size)
            return (pos, data) if len(data) == size else None
        pos += size
    return None


def _header(box: bytes) -> int:
    return 16 if struct.unpack(">I", box[:4])[0] == 1 else 8


def _child(data: bytes, start: int, end: int, kind: bytes):
    return next(((s, e) for k, s, e, _ in _boxes(data, start, end) if k == kind), None)


def _path(data: bytes, start: int, end: int, *kinds: bytes):
    span = (start, end)
    for kind in kinds:
        span = _child(data, *span, kind) if span else None
    return span


def _track(data: bytes, start: int, end: int) -> Track | None:
    tkhd = _child(data, start, end, b"tkhd")
    hdlr = _path(data, start, end, b"mdia", b"hdlr")
    stsd = _path(data, start, end, b"mdia", b"minf", b"stbl", b"stsd")
    if not (tkhd and hdlr and stsd):
        return None
    version = data[tkhd[0]]
    track_id = struct.unpack(">I", data[tkhd[0] + (20 if version == 1 else 12):][:4])[0]
    handler = data[hdlr[0] + 8:hdlr[0] + 12].decode("latin-1")
    raw_name = data[hdlr[0] + 24:hdlr[1]]
    if raw_name[:1] and raw_name[0] == len(raw_name) - 1:  # QuickTime writes a Pascal string
        raw_name = raw_name[1:]
    name = raw_name.split(b"\0", 1)[0].decode("utf-8", "replace")
    entries = list(_boxes(data, stsd[0] + 8, stsd[1]))
    fourcc = entries[0][0].decode("latin-1") if entries else ""
    chap = _path(data, start, end, b"tref", b"chap")
    refs = tuple(struct.unpack(f">{(chap[1] - chap[0]) // 4}I", data[chap[0]:chap[1] - (chap[1] - chap[0]) % 4])
                 ) if chap else ()
    return Track(track_id, handler, name, fourcc, refs)


def read_tracks(path: Path) -> list[Track]:
    """Every track of an MP4/MOV file, in file order; empty when there is no readable ``moov``."""
    try:
        with open(path, "rb") as fh:
            found = _find_moov(fh)
    except OSError:
        return []
    if found is None:
        return []
    _, data = found
    tracks = []
    for kind, s, e, _ in _boxes(data, _header(data), len(data)):
        if kind == b"trak":
            t = _track(data, s, e)
            if t is not None:
                tracks.append(t)
    return tracks


def chapter_track_ids(tracks: list[Track]) -> set[int]:
    return {i for t in tracks for i in t.chapter_tracks}


def rename_sample_formats(path: Path, renames: dict[int, str], written_as: str = "gpmd") -> int:
    """In the file at ``path``, give each track ``track_id -> fourcc`` of ``renames`` its sample format back.

    ffmpeg writes opaque binary data tracks as ``written_as`` (GoPro's ``gpmd``): in their sample entry and, for
    QuickTime, in a ``gpmd`` box of the base media header. Only those four-byte names change, in place. Returns how
    many tracks were renamed.
    """
    with open(path, "r+b") as fh:
        found = _find_moov(fh)
        if found is None:
            return 0
        offset, data = found
        patches: list[tuple[int, bytes]] = []
        renamed = 0
        for kind, s, e, _ in _boxes(data, _header(data), len(data)):
            if kind != b"trak":
                continue
            t = _track(data, s, e)
            if t is None or t.track_id not in renames or t.fourcc != written_as:
                continue
            new = renames[t.track_id].encode("latin-1")[:4].ljust(4, b" ")
            stsd = _path(data, s, e, b"mdia", b"minf", b"stbl", b"stsd")
            entry = next(_boxes(data, stsd[0] + 8, stsd[1]))
            patches.append((entry[3] + 4, new))
            renamed += 1
            gmhd = _path(data, s, e, b"mdia", b"minf", b"gmhd")
            if gmhd:
                for k, _, _, at in _boxes(data, *gmhd):
                    if k == written_as.encode():
                        patches.append((at + 4, new))
        for at, new in patches:
            fh.seek(offset + at)
            fh.write(new)
        return renamed
