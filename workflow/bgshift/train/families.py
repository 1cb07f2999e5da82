"""The model families, one record each: name, task, which setting may name a weights file, and
where the family's code lives.

Records import nothing heavy, so the Snakefile reads them while it parses (which models are
classifiers, which weights files are a training job's inputs); a family's code (torch,
ultralytics) is imported only by the jobs that train, adopt or detect. Adding a family: its module
in this package with a FAMILY implementing interface.ModelFamily, a record below, and its schema
entry under train.models (DESIGN.md walks through one).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .interface import ModelFamily

TORCHVISION_KEYWORDS = ("none", "torchvision")  # weights values that name no file of the project's


@dataclass(frozen=True)
class FamilyRecord:
    name: str
    task: str  # "detection" or "classification"
    load: Callable[[], ModelFamily]  # imports the family's code
    weights_setting: str  # the model setting that may name a weights file
    names_file: Callable[[str], bool]  # whether a value of that setting is a file on disk

    def weight_files(self, settings: dict) -> list[str]:
        """The weights file a model of this family starts from or is, when its settings name one:
        a training or adopt job's input, so placing a new file reruns it."""
        value = settings[self.weights_setting]
        return [value] if self.names_file(value) else []


def _yolo() -> ModelFamily:
    from .yolo import FAMILY
    return FAMILY


def _frcnn() -> ModelFamily:
    from .frcnn import FAMILY
    return FAMILY


def _retinanet() -> ModelFamily:
    from .retinanet import FAMILY
    return FAMILY


def _classifier() -> ModelFamily:
    from .classifier import FAMILY
    return FAMILY


def _torchvision_file(value: str) -> bool:
    return value not in TORCHVISION_KEYWORDS


RECORDS = (
    FamilyRecord("yolo", "detection", _yolo, "model", lambda value: value.endswith(".pt")),  # a .yaml builds from scratch
    FamilyRecord("frcnn", "detection", _frcnn, "weights", _torchvision_file),
    FamilyRecord("retinanet", "detection", _retinanet, "weights", _torchvision_file),
    FamilyRecord("classifier", "classification", _classifier, "weights", _torchvision_file),
)
FAMILIES = {record.name: record for record in RECORDS}
CLASSIFICATION_FAMILIES = tuple(r.name for r in RECORDS if r.task == "classification")


def record(name: str) -> FamilyRecord:
    if name not in FAMILIES:
        raise ValueError(f"unknown model family {name!r}; known: {list(FAMILIES)}")
    return FAMILIES[name]


def family(name: str) -> ModelFamily:
    """The code of a model family, imported now."""
    return record(name).load()
