"""Errors that end a file's processing, each with its own process exit code.

Scripts tell failures apart by exit code, so every code here is stable and documented in docs/reference.md.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1
    USAGE = 2
    INPUT_NOT_FOUND = 3
    NO_MEDIA = 4
    INVALID_MEDIA = 5
    DECODE_ERROR = 6
    OUTPUT_EXISTS = 7
    OUTPUT_NOT_WRITABLE = 8
    MODEL_UNAVAILABLE = 9
    ENCODE_ERROR = 10
    LEAK_ABOVE_LIMIT = 11
    BATCH_PARTIAL = 12  # deid batch: some files failed, others were done
    BATCH_FAILED = 13  # deid batch: every file attempted failed
    METHOD_FAILED = 14  # a whole-frame method's change did not survive the encoder (nothing written)
    TELEMETRY_UNUSABLE = 15  # the telemetry cannot place a geofence: a gap, not covering the video, no orientation
    AREA_INPUT_INVALID = 16  # an areas, GeoJSON or telemetry file that does not parse (named with line or feature)
    REVIEW_PENDING = 17  # deid batch --require-review: some outputs are held until a person approves them
    INTERRUPTED = 130


class DeidError(Exception):
    """A failure with a one-line message for the user and a distinct exit code."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(DeidError):
    exit_code = ExitCode.USAGE


class InputNotFoundError(DeidError):
    exit_code = ExitCode.INPUT_NOT_FOUND


class NoMediaError(DeidError):
    exit_code = ExitCode.NO_MEDIA


class InvalidMediaError(DeidError):
    exit_code = ExitCode.INVALID_MEDIA


class DecodeError(DeidError):
    exit_code = ExitCode.DECODE_ERROR


class OutputExistsError(DeidError):
    exit_code = ExitCode.OUTPUT_EXISTS


class OutputNotWritableError(DeidError):
    exit_code = ExitCode.OUTPUT_NOT_WRITABLE


class ModelUnavailableError(DeidError):
    exit_code = ExitCode.MODEL_UNAVAILABLE


class EncodeError(DeidError):
    exit_code = ExitCode.ENCODE_ERROR


class MethodFailedError(DeidError):
    exit_code = ExitCode.METHOD_FAILED


class InterruptedRunError(DeidError):
    exit_code = ExitCode.INTERRUPTED


class TelemetryUnusableError(DeidError):
    """The flight's telemetry cannot say where a geofence is in some frames; refused rather than guessed."""

    exit_code = ExitCode.TELEMETRY_UNUSABLE


class AreaInputError(DeidError):
    """An areas file, a GeoJSON or a telemetry file that does not parse; the message names the file and the line
    or feature."""

    exit_code = ExitCode.AREA_INPUT_INVALID
