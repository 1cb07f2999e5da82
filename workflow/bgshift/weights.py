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
import zipfile
from pathlib import Path


class WeightsMissing(FileNotFoundError):
    """Pretrained weights are not on this machine; the message says which file to place where."""


class UnsafeWeights(ValueError):
    """A weights file that needs more than tensors and known layer classes to load (it could run code)."""


def hub_checkpoint(url: str) -> Path:
    """Where torchvision's weight enums look for a file in the torch hub cache."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def weights_file(weights: str, enum, what: str, otherwise: str = "") -> Path:
    """The file a model's `weights` setting names: torchvision's `enum` in the torch hub cache, or
    a path; a missing one is WeightsMissing naming the file to place (and `otherwise`, what else
    the setting could say)."""
    if weights == "torchvision":
        path = hub_checkpoint(enum.url)
        if not path.is_file():
            raise WeightsMissing(f"{what} weights not found offline: place {path.name} (torchvision {enum}, from {enum.url}) "
                                 f"at {path}{otherwise}")
        return path
    path = Path(weights)
    if not path.is_file():
        raise WeightsMissing(f"{what} weights {path} not found offline: place {path.name} at {path} (e.g. under "
                             f"resources/weights/){otherwise}")
    return path


def starting_state(weights: str, what: str, enum, otherwise: str = ", or set the model's weights to a checkpoint path or 'none'") -> tuple[str, dict | None, str]:
    """What a model starts from: ("none", None) from scratch, ("torchvision", state) torchvision's
    weights `enum` from the torch hub cache, or ("checkpoint", state) a state-dict file, with the
    file's path (for errors); a missing file is a WeightsMissing error naming the file to place.
    The one resolver of every torchvision family's and DeepLab's `weights` setting."""
    if weights == "none":
        return "none", None, ""
    path = weights_file(weights, enum, what, otherwise)
    if weights == "torchvision":
        return "torchvision", load_state(path), str(path)
    state = load_state(path)
    return "checkpoint", state.get("model", state), str(path)  # our checkpoints wrap the state dict


class BadWeights(ValueError):
    """A weights file torch cannot read, or whose tensors do not fit the model it is meant for."""


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:200]}"


def load_state(path: str | Path) -> dict:
    """A torch state dict (or our checkpoint dict) with tensors and plain containers only; a file
    that is not one (random bytes, truncated, a bare tensor) is one line naming the file."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "GLOBAL" not in str(exc):  # no code reference refused: bytes that are no weights pickle at all
            unpickler = next((line.strip() for line in str(exc).splitlines() if line.strip().startswith("Unsupported")), "")
            raise BadWeights(f"{path}: not a weights file torch can read ({unpickler or _first_line(exc)})") from None
        raise UnsafeWeights(f"{path}: refused, it holds objects other than tensors and plain containers "
                            f"(weights are loaded with weights_only=True): {str(exc).splitlines()[0]}") from None
    except (OSError, RuntimeError, EOFError, IndexError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise BadWeights(f"{path}: not a weights file torch can read ({_first_line(exc)})") from None
    if not isinstance(state, dict):
        raise BadWeights(f"{path}: holds a {type(state).__name__}, not a state dict (name -> tensor)")
    return state


def fit(model, state: dict, source: str | Path, what: str) -> None:
    """model.load_state_dict(state), or one line naming the file and what did not fit (torch's own
    error lists every key: a 49 KB log for a checkpoint of another architecture)."""
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        expected = model.state_dict()
        tensors = {k: v for k, v in state.items() if hasattr(v, "shape")} if isinstance(state, dict) else {}
        missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
        shapes = [k for k in sorted(set(expected) & set(tensors)) if tuple(expected[k].shape) != tuple(tensors[k].shape)]
        parts = [f"{len(missing)} of the model's tensors missing (first: {missing[0]})" if missing else "",
                 f"{len(unexpected)} not in the model (first: {unexpected[0]})" if unexpected else "",
                 f"{len(shapes)} of another shape (first: {shapes[0]}: file {tuple(tensors[shapes[0]].shape)}, "
                 f"model {tuple(expected[shapes[0]].shape)})" if shapes else ""]
        detail = "; ".join(p for p in parts if p) or _first_line(exc)
        raise BadWeights(f"{source}: does not fit the {what}: {detail}") from None


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
