"""De-identification methods: batched tensor functions and the frame-level region anonymizer."""

from deidcli.methods.registry import METHODS, Method, get_method

__all__ = ["METHODS", "Method", "get_method"]
