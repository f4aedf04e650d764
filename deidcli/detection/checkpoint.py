"""Read the tensors of a pickled PyTorch checkpoint without importing the classes it names.

Ultralytics checkpoints pickle whole model objects (``ultralytics.nn.tasks.DetectionModel`` and its layers), so
``torch.load`` would import ultralytics (AGPL-3.0) and run its code. Here every class outside torch, numpy and the
standard containers is replaced by :class:`Stand`, an ``nn.Module`` that only keeps what it is given: the layers'
parameters and buffers come back through ``state_dict()``, their plain attributes (``yaml``, ``stride``, ``names``)
as attributes, and no foreign code runs.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

# Modules whose classes are safe and needed to rebuild the tensors and containers (with their Python 2 names,
# which protocol-2 pickles use).
_TRUSTED = ("torch", "collections", "builtins", "__builtin__", "numpy", "copyreg", "copy_reg", "_codecs")


class Stand(nn.Module):
    """Any class from an untrusted module: keeps its state, runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.stand_args = (args, kwargs)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict) and "_modules" in state:
            super().__setstate__(state)
        elif isinstance(state, dict):
            nn.Module.__init__(self)
            for k, v in state.items():
                object.__setattr__(self, k, v)
        else:
            nn.Module.__init__(self)
            object.__setattr__(self, "stand_state", state)


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module.split(".")[0] in _TRUSTED:
            return super().find_class(module, name)
        return type(name, (Stand,), {"__module__": "deidcli.detection.checkpoint.stand"})


class _PickleModule:
    """What ``torch.load(pickle_module=...)`` needs: pickle with our class look-up."""

    Unpickler = _Unpickler
    load = staticmethod(lambda fh, **kw: _Unpickler(fh, **kw).load())
    __name__ = "deidcli.detection.checkpoint"


def load_foreign(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path`` with every foreign object a :class:`Stand` (on the CPU)."""
    return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_PickleModule)
