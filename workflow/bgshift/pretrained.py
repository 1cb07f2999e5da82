"""Evaluate-only models: a detector or classifier evaluated as it is, with no training job.

The field's first question is how much an existing model depends on backgrounds: COCO
detectors on colour-background variants of COCO val, ImageNet classifiers on ImageNet-9's
variants. Such a model (`evaluate_only: true`) gets an `adopt` job instead of training: it
finds the weights (torchvision's from the torch hub cache, with their own head; a checkpoint
file of an earlier run on this dataset's classes; an ultralytics .pt), maps the model's classes
onto the dataset's by name and by `class_map`, and writes the run record that `detect` reads,
under the training-set label "pretrained" and seed 0. From there it is a run like any other:
detections, metrics, tables and claims. A claim over evaluate-only models alone has no seed
level (the model is given); a claim comparing one with trained runs pairs it with every seed.
"""
from __future__ import annotations

from pathlib import Path

from .config import ConfigError
from .weights import weights_file

PRETRAINED = "pretrained"  # the training-set label of an evaluate-only model's run
PRETRAINED_SEED = 0
BACKGROUND_NAMES = ("__background__", "N/A")  # torchvision's label 0 and COCO's unused ids


def evaluated_only(config: dict) -> list[str]:
    return [name for name, model in config["train"]["models"].items() if model.get("evaluate_only")]


def runs(config: dict, trained_sets: list[str]) -> list[tuple[str, str, int]]:
    """Every (model, training set, seed) the config plans: trained models on each of their sets
    (a model's own `sets`, else train.sets) and seeds, evaluate-only ones once."""
    fixed = set(evaluated_only(config))
    return [(model, trainset, seed) for model, settings in config["train"]["models"].items() if model not in fixed
            for trainset in settings.get("sets") or trained_sets for seed in config["train"]["seeds"]] + [
        (model, PRETRAINED, PRETRAINED_SEED) for model in fixed]


def training_sets_of(config: dict, trained_sets: list[str]) -> dict[str, list[str]]:
    """Model -> the training-set labels of its runs ("pretrained" for an evaluate-only model)."""
    return {model: sorted({trainset for m, trainset, _ in runs(config, trained_sets) if m == model}) for model in config["train"]["models"]}


def check(config: dict, set_names: list[str], trained_sets: list[str]) -> None:
    """What an evaluate-only model needs, before any job: weights to evaluate, and a class map only
    where it is used; "pretrained" is no set's name."""
    if PRETRAINED in set_names:
        raise ConfigError(f"sets: {PRETRAINED!r} is the training-set label of evaluate-only models; give the set another name")
    for name, model in config["train"]["models"].items():
        where = f"train.models.{name}"
        unknown = sorted(set(model.get("sets") or []) - set(trained_sets))
        if unknown:
            raise ConfigError(f"{where}.sets: {unknown} are not trained sets (train.sets or sets.train: {trained_sets})")
        if model.get("class_map") and not model.get("evaluate_only"):
            raise ConfigError(f"{where}.class_map: only an evaluate-only model maps its classes (a trained one learns the dataset's)")
        if not model.get("evaluate_only"):
            continue
        if model["family"] == "yolo" and not model["model"].endswith(".pt"):
            raise ConfigError(f"{where}: an evaluate-only YOLO needs trained weights: model {model['model']!r} is no .pt file")
        if model["family"] != "yolo" and model["weights"] == "none":
            raise ConfigError(f"{where}: an evaluate-only model needs weights (torchvision, or a checkpoint file), not 'none'")


def label_map(model_classes: dict[int, str], categories: list[dict], class_map: dict, where: str) -> dict[int, int]:
    """Model label -> dataset category id: by class_map, else by the same name; labels that map to
    nothing are left out. Refuses a class_map naming a class that does not exist on either side,
    and a dataset class that no model class maps to (its objects could never be found)."""
    dataset = {c["name"]: c["category_id"] for c in categories}
    names = set(model_classes.values())
    unknown = sorted(set(class_map) - names)
    if unknown:
        raise ConfigError(f"{where}.class_map: {unknown[:5]} are not classes of the model (it has {len(names)}, e.g. "
                          f"{sorted(names)[:5]})")
    targets = sorted({t for t in class_map.values() if t is not None} - set(dataset))
    if targets:
        raise ConfigError(f"{where}.class_map: {targets[:5]} are not dataset classes ({sorted(dataset)[:10]})")
    mapping = {}
    for label, name in model_classes.items():
        target = class_map[name] if name in class_map else name if name in dataset else None
        if target is not None:
            mapping[label] = dataset[target]
    mapped = set(mapping.values())
    unmapped = sorted(name for name, cid in dataset.items() if cid not in mapped)
    if unmapped:
        raise ConfigError(f"{where}: dataset classes {unmapped[:10]} map to no class of the model: name a model class for "
                          f"each in class_map (model class -> dataset class)")
    return mapping


def torchvision_classes(weights: str, enum, what: str) -> tuple[Path, dict[int, str] | None]:
    """An evaluate-only model's weights file and its classes by label: torchvision's `enum` (from
    the torch hub cache) with its own categories, or a checkpoint file of this dataset's classes (None)."""
    if weights == "torchvision" and enum is None:
        raise ConfigError(f"{what}: torchvision has no weights of this architecture to evaluate as they are")
    path = weights_file(weights, enum, what)
    if weights != "torchvision":
        return path, None
    return path, {label: name for label, name in enumerate(enum.meta["categories"]) if name not in BACKGROUND_NAMES}
