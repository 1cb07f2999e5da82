"""Model weights from disk, never unpickled: one missing-weights error and one safe loader.

Pretrained weights cannot be downloaded on the machines this pipeline targets, so every
loader looks on disk (the torch hub cache for torchvision's weight enums, or a path under
resources/weights/) and names the file to place when it is missing. Weight files are
untrusted input: a pickle can run code, so every load is `weights_only=True`, and
ultralytics checkpoints (pickled whole models) are loaded in ultralytics' safe-load mode,
which allows only its own and torch's layer classes.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path


class WeightsMissing(FileNotFoundError):
    """Pretrained weights are not on this machine; the message says which file to place where."""


class UnsafeWeights(ValueError):
    """A weights file that needs more than tensors and known layer classes to load (it could run code)."""


def hub_checkpoint(url: str) -> Path:
    """Where torchvision's weight enums look for a file in the torch hub cache."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def load_state(path: str | Path) -> dict:
    """A torch state dict (or our checkpoint dict) with tensors and plain containers only."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeWeights(f"{path}: refused, it holds objects other than tensors and plain containers "
                            f"(weights are loaded with weights_only=True): {str(exc).splitlines()[0]}") from None


def forbid_unpickling() -> None:
    """Make every torch.load in this process weights_only, with ultralytics' allow-list of its own
    model classes registered (its safe-load mode), before any ultralytics checkpoint is read.

    torch reads TORCH_FORCE_WEIGHTS_ONLY_LOAD at each load, so this also covers the loads
    ultralytics makes with weights_only=False (resume, best.pt, the model named in the config).
    ultralytics reads ULTRALYTICS_SAFE_LOAD once at import, hence the module flags as well.
    """
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    os.environ["ULTRALYTICS_SAFE_LOAD"] = "1"
    import ultralytics.nn.tasks
    import ultralytics.utils

    ultralytics.utils.SAFE_LOAD = True
    ultralytics.nn.tasks.SAFE_LOAD = True


def load_yolo(path: str | Path):
    """An ultralytics YOLO model from a .pt file, loaded safely (see forbid_unpickling)."""
    forbid_unpickling()
    from ultralytics import YOLO

    try:
        return YOLO(str(path))
    except (TypeError, pickle.UnpicklingError) as exc:
        if "outside the supported" in str(exc) or isinstance(exc, pickle.UnpicklingError):
            raise UnsafeWeights(f"{path}: refused, it references code outside ultralytics' and torch's model classes "
                                f"(ultralytics checkpoints are loaded in its safe-load mode)") from None
        raise
