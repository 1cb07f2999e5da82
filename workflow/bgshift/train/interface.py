"""The interface every model family's code implements (bgshift.train.families lists the families).

A family's code trains one run, names its checkpoints, turns a checkpoint into a predictor, and
says what an evaluate-only model of it is. frcnn and retinanet implement it with
detection.TorchvisionFamily, yolo and classifier with module functions gathered in FamilyCode.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

Predictor = Callable[[Path], list]  # a test split's ground truth -> prediction records


@dataclass(frozen=True)
class Explainable:
    """What a saliency map (bgshift.saliency, pytorch-grad-cam) needs of a checkpoint: the module
    to call on one prepared image, the layers whose activations the map is made of, how an RGB
    image (H, W, 3 uint8) becomes that module's input batch, and the method: "gradcam" where a
    class score can be differentiated (classifiers), "eigencam" where a detector has none (the
    first principal component of its feature maps, Muhammad & Yeasin 2020)."""

    model: Any  # torch.nn.Module, evaluation mode
    layers: list  # [torch.nn.Module]; gradcam: candidate stages, shallow to deep (saliency.target_layers picks one)
    prepare: Callable[[Any], Any]  # np.ndarray (H, W, 3) uint8 RGB -> torch.Tensor (1, 3, h, w)
    method: str
    class_score: Callable[[Any, int], Any] | None = None  # gradcam: (one sample's output, class index) -> the score


@runtime_checkable
class ModelFamily(Protocol):
    """task: "detection" (trained on a set's export) or "classification" (on its crops)."""

    task: str

    def train(self, settings: dict, set_dir: Path, run_dir: Path, seed: int, cuda: bool, categories: list[dict]) -> dict:
        """One run, resumed exactly from run_dir; the run summary (its checkpoints and best)."""

    def load_predictor(self, settings: dict, checkpoint: Path, categories: list[dict], cuda: bool,
                       label_map: dict[int, int] | None = None) -> Predictor:
        """A checkpoint as a function of a test split's ground truth (train.ground_truth) returning COCO
        results (detectors) or {index, label, probabilities} per sample (classifiers); with a label_map
        (model class -> category id) an evaluate-only model's weights as they are."""

    def checkpoints(self, done: dict, run_dir: Path) -> list[dict]:
        """[{label, step, path}] of a finished run, best first."""

    def own_classes(self, settings: dict) -> tuple[Path, dict[int, str] | None]:
        """An evaluate-only model: its weights file and {model label: class name}, None when its
        classes are the dataset's own (a checkpoint of an earlier run)."""

    def explainable(self, settings: dict, checkpoint: Path, categories: list[dict], cuda: bool,
                    label_map: dict[int, int] | None = None) -> Explainable:
        """A checkpoint loaded for saliency maps (what load_predictor loads, seen from inside)."""


@dataclass(frozen=True)
class FamilyCode:
    """A family written as module functions (yolo, classifier), as one ModelFamily object."""

    task: str
    train: Callable[..., dict]
    load_predictor: Callable[..., Predictor]
    checkpoints: Callable[[dict, Path], list[dict]]
    own_classes: Callable[[dict], tuple[Path, dict[int, str] | None]]
    explainable: Callable[..., Explainable]
