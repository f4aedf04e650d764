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


CLAP_SIZE = 40
_SAMPLE_ENTRY = 78  # a visual sample entry's fixed fields, between its header and its child boxes
_CHUNK_OFFSETS = {b"stco": ">I", b"co64": ">Q"}


def clean_apertures(path: Path) -> dict[int, tuple[int, int, int, int]]:
    """Track id -> (left, top, width, height) of each video track whose first sample entry has a ``clap`` box."""
    try:
        with open(path, "rb") as fh:
            found = _find_moov(fh)
    except OSError:
        return {}
    if found is None:
        return {}
    _, data = found
    apertures = {}
    for kind, s, e, _ in _boxes(data, _header(data), len(data)):
        t = _track(data, s, e) if kind == b"trak" else None
        if t is None or t.handler != "vide":
            continue
        entry = _sample_entry(data, s, e)
        clap = _child(data, entry[1] + _SAMPLE_ENTRY, entry[2], b"clap") if entry else None
        if clap and clap[1] - clap[0] >= 32:
            coded_w, coded_h = struct.unpack(">HH", data[entry[1] + 24:entry[1] + 28])
            apertures[t.track_id] = _aperture(data[clap[0]:clap[0] + 32], coded_w, coded_h)
    return apertures


def _aperture(clap: bytes, coded_w: int, coded_h: int) -> tuple[int, int, int, int]:
    wn, wd, hn, hd, xn, xd, yn, yd = struct.unpack(">IIIIiIiI", clap)
    width, height = wn // max(wd, 1), hn // max(hd, 1)
    # the offsets place the aperture's centre relative to the picture's: its left edge is what that leaves
    left = (coded_w - width) / 2 + xn / max(xd, 1)
    top = (coded_h - height) / 2 + yn / max(yd, 1)
    return int(left), int(top), width, height


def _sample_entry(data: bytes, start: int, end: int):
    stsd = _path(data, start, end, b"mdia", b"minf", b"stbl", b"stsd")
    if not stsd:
        return None
    entry = next(_boxes(data, stsd[0] + 8, stsd[1]), None)
    return (entry[3], entry[1], entry[2]) if entry else None  # box start, payload start, end


def set_clean_aperture(path: Path, width: int, height: int, video: int = 0) -> None:
    """Give video track number ``video`` (from 0) of the MP4/MOV at ``path`` a clean aperture of ``width`` x ``height`` at the top
    left of its coded picture. (The track header keeps the coded size: ffmpeg reads a smaller one there as a
    pixel aspect ratio.)

    This is how a picture padded to even sides for 4:2:0 chroma keeps its odd size: H.264's own cropping counts
    in chroma samples and cannot take one pixel off. The ``moov`` box grows by a ``clap`` box; media data after it
    moves, so its chunk offsets are shifted and the file is rewritten beside itself and renamed over.
    """
    with open(path, "rb") as fh:
        found = _find_moov(fh)
    if found is None:
        raise ValueError(f"{path.name}: no moov box")
    offset, old = found
    moov = _with_clap(old, width, height, video)
    shift = len(moov) - len(old)
    if shift:
        moov = _shift_chunks(moov, offset + len(old), shift)
    tmp = path.with_name(path.name + ".clap")
    try:
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            _copy(src, dst, offset)
            dst.write(moov)
            src.seek(offset + len(old))
            _copy(src, dst, None)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _copy(src: BinaryIO, dst: BinaryIO, length: int | None, chunk: int = 1 << 22) -> None:
    while length is None or length > 0:
        block = src.read(chunk if length is None else min(chunk, length))
        if not block:
            return
        dst.write(block)
        if length is not None:
            length -= len(block)


def _with_clap(moov: bytes, width: int, height: int, video: int) -> bytes:
    data = bytearray(moov)
    traks = [(s, e, at) for kind, s, e, at in _boxes(moov, _header(moov), len(moov)) if kind == b"trak"]
    videos = [(s, e, at) for s, e, at in traks if (t := _track(moov, s, e)) is not None and t.handler == "vide"]
    for s, e, at in videos[video:video + 1]:
        entry_at, entry, entry_end = _sample_entry(moov, s, e)
        coded_w, coded_h = struct.unpack(">HH", moov[entry + 24:entry + 28])
        box = struct.pack(">I4sIIIIiIiI", CLAP_SIZE, b"clap", width, 1, height, 1,
                          width - coded_w, 2, height - coded_h, 2)
        old = _child(moov, entry + _SAMPLE_ENTRY, entry_end, b"clap")
        if old:
            data[old[0] - 8:old[1]] = box
            return bytes(data)
        data[entry_end:entry_end] = box
        # every box around the new one grows by its size: moov, trak, mdia, minf, stbl, stsd and the sample entry
        stsd = _path(moov, s, e, b"mdia", b"minf", b"stbl", b"stsd")
        parents = [0, at] + [_path(moov, s, e, *kinds)[0] - 8 for kinds in (
            (b"mdia",), (b"mdia", b"minf"), (b"mdia", b"minf", b"stbl"))] + [stsd[0] - 8, entry_at]
        for p in parents:
            _grow(data, p, CLAP_SIZE)
        return bytes(data)
    raise ValueError("no video track")


def _grow(data: bytearray, at: int, by: int) -> None:
    size = struct.unpack(">I", data[at:at + 4])[0]
    if size == 1:
        data[at + 8:at + 16] = struct.pack(">Q", struct.unpack(">Q", data[at + 8:at + 16])[0] + by)
    else:
        data[at:at + 4] = struct.pack(">I", size + by)


def _shift_chunks(moov: bytes, after: int, by: int) -> bytes:
    """``moov`` with every chunk offset at or past ``after`` (the old end of the moov box) moved by ``by``."""
    data = bytearray(moov)
    for kind, s, e, _ in _boxes(moov, _header(moov), len(moov)):
        stbl = _path(moov, s, e, b"mdia", b"minf", b"stbl") if kind == b"trak" else None
        for k, ps, pe, _ in _boxes(moov, *stbl) if stbl else ():
            if k not in _CHUNK_OFFSETS:
                continue
            fmt = _CHUNK_OFFSETS[k]
            step = struct.calcsize(fmt)
            count = struct.unpack(">I", moov[ps + 4:ps + 8])[0]
            for i in range(ps + 8, min(pe, ps + 8 + count * step), step):
                value = struct.unpack(fmt, moov[i:i + step])[0]
                if value >= after:
                    if value + by >= 1 << (8 * step):
                        raise ValueError("a chunk offset would overflow its 32 bits")
                    data[i:i + step] = struct.pack(fmt, value + by)
    return bytes(data)


def disable_tracks(path: Path, track_ids: set[int]) -> int:
    """Clear the "enabled" flag in the track header of each track in ``track_ids`` (ffmpeg reads it as the default
    disposition), in place; returns how many were changed."""
    with open(path, "r+b") as fh:
        found = _find_moov(fh)
        if found is None:
            return 0
        offset, data = found
        changed = 0
        for kind, s, e, _ in _boxes(data, _header(data), len(data)):
            t = _track(data, s, e) if kind == b"trak" else None
            if t is None or t.track_id not in track_ids:
                continue
            tkhd = _child(data, s, e, b"tkhd")
            flags = data[tkhd[0] + 3]  # version (1 byte) and flags (3), "enabled" the lowest bit
            if flags & 1:
                fh.seek(offset + tkhd[0] + 3)
                fh.write(bytes([flags & ~1]))
                changed += 1
        return changed
