"""Family `classifier`: torchvision image classifiers (ResNet-18/50, MobileNetV3, EfficientNet-B0)
trained on a set's crops (bgshift.crops) by the shared training engine (engine.py).

The same loop as the detectors (engine.py): SGD or AdamW, warm-up then step or
cosine decay, horizontal flips, a checkpoint every `checkpoint_every` iterations scored by
val accuracy, best.pt, exact resume. Inputs are normalised with ImageNet's statistics, as
torchvision's pretrained weights expect. Weights: none (from scratch), torchvision (the
ImageNet weights from the torch hub cache; the head is replaced for our classes) or a
checkpoint path, e.g. under resources/weights/.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
import torchvision.models as tvm

from ..images import decode_rgb
from .. import pretrained
from ..progress import progress
from ..weights import fit, load_state, starting_state
from . import engine
from .interface import Explainable, FamilyCode

TASK = "classification"
ARCHS = {
    "resnet18": (tvm.resnet18, tvm.ResNet18_Weights.IMAGENET1K_V1),
    "resnet50": (tvm.resnet50, tvm.ResNet50_Weights.IMAGENET1K_V2),
    "mobilenet_v3_small": (tvm.mobilenet_v3_small, tvm.MobileNet_V3_Small_Weights.IMAGENET1K_V1),
    "mobilenet_v3_large": (tvm.mobilenet_v3_large, tvm.MobileNet_V3_Large_Weights.IMAGENET1K_V2),
    "efficientnet_b0": (tvm.efficientnet_b0, tvm.EfficientNet_B0_Weights.IMAGENET1K_V1),
}
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def build_model(settings: dict, num_classes: int) -> torch.nn.Module:
    """The architecture with `num_classes` outputs, weights per settings["weights"]; `num_classes`
    None keeps torchvision's ImageNet head (an evaluate-only model)."""
    builder, enum = ARCHS[settings["arch"]]
    kind, state, source = starting_state(settings["weights"], f"classifier {settings['arch']}", enum)
    if kind == "torchvision":
        model = builder(weights=None, num_classes=len(enum.meta["categories"]))
        fit(model, state, source, f"ImageNet {settings['arch']}")
        if num_classes is None:
            return model
        _replace_head(model, num_classes)
        return model
    model = builder(weights=None, num_classes=num_classes)
    if state is not None:
        fit(model, state, source, f"{settings['arch']} with {num_classes} classes")
    return model


def _replace_head(model: torch.nn.Module, num_classes: int) -> None:
    """A new last layer for our classes (ResNet: fc; MobileNetV3 and EfficientNet: classifier[-1])."""
    if hasattr(model, "fc"):
        model.fc = torch.nn.Linear(model.fc.in_features, num_classes)
    else:
        model.classifier[-1] = torch.nn.Linear(model.classifier[-1].in_features, num_classes)


class CropSplit(torch.utils.data.Dataset):
    """One split of a crops export (its Parquet parts): JPEG bytes held, decoded per sample."""

    def __init__(self, folder: Path):
        parts = sorted(Path(folder).glob("*.parquet"))
        tables = [pq.read_table(p, columns=["image", "label"]).to_pydict() for p in parts]
        self.images = [im["bytes"] for t in tables for im in t["image"]]
        self.labels = [label for t in tables for label in t["label"]]

    def __len__(self) -> int:
        return len(self.labels)

    def tensor(self, index: int, flip: bool = False) -> torch.Tensor:
        pixels = decode_rgb(self.images[index])
        if flip:
            pixels = np.ascontiguousarray(pixels[:, ::-1])
        return (torch.from_numpy(pixels).permute(2, 0, 1).float().div_(255) - MEAN) / STD

    def __getitem__(self, key: tuple[int, bool]) -> tuple[torch.Tensor, int]:
        index, flip = key
        return self.tensor(index, flip), self.labels[index]


@torch.inference_mode()
def predict(model: torch.nn.Module, split: CropSplit, device: torch.device, batch_size: int = 64,
            label_map: dict[int, int] | None = None, classes: int = 0) -> list[dict]:
    """One record per sample, in the split's order: the predicted class and every class's probability.
    With a `label_map` (an evaluate-only model's class -> dataset class index) the model's own top
    class is mapped, -1 (always wrong) where it maps to nothing, as Xiao et al. score ImageNet
    models on ImageNet-9; a dataset class's probability is the sum of its model classes'."""
    model.eval()
    records = []
    matrix = None  # made once, when the model's class count is known
    for start in progress(range(0, len(split), batch_size), desc="classify", unit="batch"):
        batch = torch.stack([split.tensor(i) for i in range(start, min(len(split), start + batch_size))]).to(device)
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            probabilities = model(batch).float().softmax(1).cpu()
        if label_map is not None:
            top = probabilities.argmax(1).tolist()
            matrix = _mapping_matrix(label_map, probabilities.shape[1], classes) if matrix is None else matrix
            probabilities = probabilities @ matrix
        for offset, p in enumerate(probabilities.tolist()):
            label = int(np.argmax(p)) if label_map is None else label_map.get(top[offset], -1)
            records.append({"index": start + offset, "label": label, "probabilities": [round(v, 5) for v in p]})
    return records


def _mapping_matrix(label_map: dict[int, int], model_classes: int, classes: int) -> torch.Tensor:
    """(model classes, dataset classes) 0/1 matrix summing each dataset class's model classes."""
    matrix = torch.zeros(model_classes, classes)
    for label, index in label_map.items():
        matrix[label, index] = 1.0
    return matrix


class CropData:
    """A crops set's train split and its val split, scored by accuracy."""

    metric = "accuracy"

    def __init__(self, set_dir: Path):
        self.samples = CropSplit(set_dir / "parquet" / "train")
        self.val = self.val_samples = CropSplit(set_dir / "parquet" / "val")

    @staticmethod
    def loss(model: torch.nn.Module, batch: list[tuple[torch.Tensor, int]], device: torch.device) -> dict[str, torch.Tensor]:
        images = torch.stack([image for image, _ in batch]).to(device)
        labels = torch.tensor([label for _, label in batch], device=device)
        return {"cross_entropy": torch.nn.functional.cross_entropy(model(images), labels)}

    def val_score(self, model: torch.nn.Module, device: torch.device) -> float | None:
        if not len(self.val):
            return None
        predicted = [r["label"] for r in predict(model, self.val, device)]
        return float(np.mean(np.equal(predicted, self.val.labels)))


def train(settings: dict, set_dir: Path, run_dir: Path, seed: int, cuda: bool, categories: list[dict]) -> dict:
    data = CropData(Path(set_dir))
    if not len(data.samples):
        raise ValueError(f"{set_dir}: the training split has no crops (no labelled object in the set)")
    return engine.train("classifier", lambda: build_model(settings, len(categories)), data, settings, run_dir, seed,
                      torch.device("cuda" if cuda else "cpu"))


def load_model(settings: dict, checkpoint: Path, categories: list[dict], label_map: dict[int, int] | None = None):
    """A checkpoint and, with a `label_map` (model class -> category id: torchvision's ImageNet
    weights as they are), the model class -> class index map (None: the classes are the dataset's)."""
    if label_map is None:
        model = build_model({**settings, "weights": "none"}, len(categories))
        fit(model, load_state(checkpoint).get("model", {}), checkpoint, "classifier")
        return model, None
    index_of = {c["category_id"]: c["index"] for c in categories}
    return build_model(settings, None), {label: index_of[category] for label, category in label_map.items()}


def load_predictor(settings: dict, checkpoint: Path, categories: list[dict], cuda: bool, label_map: dict[int, int] | None = None):
    """A checkpoint as a function of a crops split's folder (its Parquet parts)."""
    device = torch.device("cuda" if cuda else "cpu")
    model, to_index = load_model(settings, checkpoint, categories, label_map)
    model.to(device)
    return lambda folder: predict(model, CropSplit(Path(folder)), device, label_map=to_index, classes=len(categories))


def explainable(settings: dict, checkpoint: Path, categories: list[dict], cuda: bool, label_map: dict[int, int] | None = None):
    """Grad-CAM differentiating the score of a sample's own class (an evaluate-only model: the sum
    of its classes that map to it), on a convolutional stage (ResNet: layer1-4; MobileNetV3 and
    EfficientNet: the blocks of `features`; saliency.target_layers picks one for the input size)."""
    model, to_index = load_model(settings, checkpoint, categories, label_map)
    model.eval().to(torch.device("cuda" if cuda else "cpu"))
    stages = [model.layer1, model.layer2, model.layer3, model.layer4] if hasattr(model, "layer4") else list(model.features)
    if to_index is None:
        def class_score(output: torch.Tensor, index: int) -> torch.Tensor:
            return output[index]
    else:
        def class_score(output: torch.Tensor, index: int) -> torch.Tensor:
            return output[[label for label, mapped in to_index.items() if mapped == index]].sum()
    return Explainable(model, stages, lambda rgb: ((torch.from_numpy(rgb).permute(2, 0, 1).float() / 255 - MEAN) / STD)[None],
                       "gradcam", class_score)


def own_classes(settings: dict) -> tuple[Path, dict[int, str] | None]:
    return pretrained.torchvision_classes(settings["weights"], ARCHS[settings["arch"]][1], f"classifier {settings['arch']}")


FAMILY = FamilyCode(TASK, train, load_predictor, engine.checkpoints, own_classes, explainable)
