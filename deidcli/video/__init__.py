"""Video I/O: PyAV decodes frames with their timestamps; an ffmpeg process encodes and muxes every other stream."""

from deidcli.video.reader import VideoInfo, VideoReader
from deidcli.video.writer import EncodeSettings, VideoWriter

__all__ = ["EncodeSettings", "VideoInfo", "VideoReader", "VideoWriter"]
