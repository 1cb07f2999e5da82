"""The torchvision detectors' side of training (Faster R-CNN, RetinaNet): a COCO split as
images and box targets, the detection training data (loss, val COCO AP), the predictor that
turns a checkpoint into COCO results records, and the family object (interface.ModelFamily). The loop itself: engine.py."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar

import cv2
import torch

from .. import metrics, pretrained
from ..progress import progress
from ..weights import fit, load_state
from .engine import checkpoints, train
from .interface import Explainable, Predictor

BuildModel = Callable[[dict, int | None], torch.nn.Module]  # (a model's settings, number of classes) -> model


@dataclass(frozen=True)
class TorchvisionFamily:
    """A torchvision detector family (interface.ModelFamily): its name, its
    model builder, and the model label of class index 0 (1 where label 0 is the background)."""

    name: str
    build_model: BuildModel  # num_classes None: torchvision's weights with their own head (evaluate-only)
    label_offset: int
    detector_weights: Callable[[dict], object]  # a model's torchvision weight enum, or None
    task: ClassVar[str] = "detection"

    def train(self, settings: dict, set_dir: Path, run_dir: Path, seed: int, cuda: bool, categories: list[dict]) -> dict:
        device = torch.device("cuda" if cuda else "cpu")
        data = DetectionData(set_dir, categories, self.label_offset)
        return train(self.name, lambda: self.build_model(settings, len(categories)), data, settings, run_dir, seed, device)

    def load_predictor(self, settings: dict, checkpoint: Path, categories: list[dict], cuda: bool,
                       label_map: dict[int, int] | None = None) -> Predictor:
        return load_detector(self, settings, checkpoint, categories, cuda, label_map)

    def explainable(self, settings: dict, checkpoint: Path, categories: list[dict], cuda: bool,
                    label_map: dict[int, int] | None = None) -> Explainable:
        return explainable(self, settings, checkpoint, categories, cuda, label_map)

    def own_classes(self, settings: dict) -> tuple[Path, dict[int, str] | None]:
        return pretrained.torchvision_classes(settings["weights"], self.detector_weights(settings), f"{self.name} {settings['arch']}")

    @staticmethod
    def checkpoints(done: dict, run_dir: Path) -> list[dict]:
        return checkpoints(done, run_dir)


class CocoSplit:
    """Images and labelled boxes of one split of a COCO export (crowd regions left out)."""

    def __init__(self, coco_json: Path, category_index: dict[int, int], label_offset: int):
        self.root = coco_json.parent
        self.coco = metrics.load_coco(coco_json)
        self.ids = sorted(self.coco.getImgIds())
        self.category_index = category_index
        self.label_offset = label_offset  # model label of class index 0: 1 where label 0 is the background

    def __len__(self) -> int:
        return len(self.ids)

    def image(self, image_id: int) -> torch.Tensor:
        info = self.coco.loadImgs(image_id)[0]
        rgb = cv2.cvtColor(cv2.imread(str(self.root / info["file_name"]), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        return torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255)

    def sample(self, image_id: int, flip: bool) -> tuple[torch.Tensor, dict]:
        img = self.image(image_id)
        anns = [a for a in self.coco.loadAnns(self.coco.getAnnIds(imgIds=[image_id], iscrowd=False)) if a["bbox"][2] > 0 and a["bbox"][3] > 0]
        boxes = torch.tensor([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in anns],
                             dtype=torch.float32).reshape(-1, 4)
        labels = torch.tensor([self.category_index[a["category_id"]] + self.label_offset for a in anns], dtype=torch.int64)
        if flip:
            img = img.flip(-1)
            boxes[:, [0, 2]] = img.shape[-1] - boxes[:, [2, 0]]
        return img, {"boxes": boxes, "labels": labels}


def category_of_label(categories: list[dict], label_offset: int) -> dict[int, int]:
    """Model label -> category id for a model trained on these categories (CocoSplit's targets' inverse)."""
    return {c["index"] + label_offset: c["category_id"] for c in categories}


class Samples(torch.utils.data.Dataset):
    """(image tensor, target) of a split's i-th image, flipped or not: what the DataLoader's workers decode."""

    def __init__(self, split: CocoSplit):
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, key: tuple[int, bool]) -> tuple[torch.Tensor, dict]:
        index, flip = key
        return self.split.sample(self.split.ids[index], flip)


class DetectionData:
    """A detection set's train split (boxes of labelled objects) and its val split, scored by COCO AP."""

    metric = "AP"

    def __init__(self, set_dir: Path, categories: list[dict], label_offset: int):
        category_index = {c["category_id"]: c["index"] for c in categories}
        self.category_of_label = category_of_label(categories, label_offset)
        self.samples = Samples(CocoSplit(set_dir / "coco" / "train.json", category_index, label_offset))
        self.val = CocoSplit(set_dir / "coco" / "val.json", category_index, label_offset)
        self.val_samples = Samples(self.val)

    @staticmethod
    def loss(model: torch.nn.Module, batch: list, device: torch.device) -> dict[str, torch.Tensor]:
        """torchvision's loss dict (Faster R-CNN: loss_classifier, loss_box_reg, loss_objectness,
        loss_rpn_box_reg; RetinaNet: classification, bbox_regression)."""
        images = [s[0].to(device) for s in batch]
        targets = [{k: v.to(device) for k, v in s[1].items()} for s in batch]
        return model(images, targets)

    def val_score(self, model: torch.nn.Module, device: torch.device) -> float | None:
        if not len(self.val):
            return None
        return metrics.coco_metrics(self.val.coco, predict(model, self.val, device, self.category_of_label))["AP"]


@torch.inference_mode()
def predict(model: torch.nn.Module, split: CocoSplit, device: torch.device, category_of_label: dict[int, int],
            batch_size: int = 4, score_threshold: float = 0.001) -> list[dict]:
    """COCO results records for every image of a split; detections of a model label that maps to
    no dataset category (an evaluate-only model's other classes) are left out."""
    model.eval()
    results = []
    for start in progress(range(0, len(split), batch_size), desc=f"detect {split.root.parent.name}", unit="batch"):
        ids = split.ids[start : start + batch_size]
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            outputs = model([split.image(i).to(device) for i in ids])
        for image_id, out in zip(ids, outputs):
            for box, label, score in zip(out["boxes"].float().cpu().tolist(), out["labels"].cpu().tolist(), out["scores"].float().cpu().tolist()):
                if score >= score_threshold and label in category_of_label:
                    results.append({"image_id": image_id, "category_id": category_of_label[label],
                                    "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]], "score": score})
    return results


def load_model(family: TorchvisionFamily, settings: dict, checkpoint: Path, categories: list[dict],
               label_map: dict[int, int] | None = None) -> tuple[torch.nn.Module, dict[int, int]]:
    """A checkpoint of this loop and its model label -> category id map; with a `label_map` (an
    evaluate-only model's) the torchvision weights themselves, head and all."""
    if label_map is None:
        model = family.build_model({**settings, "weights": "none"}, len(categories))
        fit(model, load_state(checkpoint).get("model", {}), checkpoint, "model")
        return model, category_of_label(categories, family.label_offset)
    return family.build_model(settings, None), label_map


def load_detector(family: TorchvisionFamily, settings: dict, checkpoint: Path, categories: list[dict], cuda: bool,
                  label_map: dict[int, int] | None = None) -> Predictor:
    """A checkpoint, loaded once, as a function of the COCO split to run on."""
    device = torch.device("cuda" if cuda else "cpu")
    model, label_map = load_model(family, settings, checkpoint, categories, label_map)
    model.to(device)
    category_index = {c["category_id"]: c["index"] for c in categories}
    return lambda coco_json: predict(model, CocoSplit(Path(coco_json), category_index, family.label_offset), device, label_map)


class FeatureMaps(torch.nn.Module):
    """A torchvision detector's feature pyramid on one image, as EigenCAM reads it: the model's own
    resize and normalisation, every level cut to the image (not the padding the transform adds,
    so the map lies on the picture) and brought to the finest level's size, concatenated; `maps`
    (an identity) is the layer whose activations the map is made of."""

    def __init__(self, detector: torch.nn.Module):
        super().__init__()
        self.detector = detector
        self.maps = torch.nn.Identity()

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        images, _ = self.detector.transform(list(batch))
        (height, width), padded = images.image_sizes[0], images.tensors.shape[-2:]
        levels = [level[..., : math.ceil(level.shape[-2] * height / padded[0]), : math.ceil(level.shape[-1] * width / padded[1])]
                  for level in self.detector.backbone(images.tensors).values()]
        size = levels[0].shape[-2:]
        return self.maps(torch.cat([torch.nn.functional.interpolate(level, size=size, mode="bilinear", align_corners=False)
                                    for level in levels], 1))


def explainable(family: TorchvisionFamily, settings: dict, checkpoint: Path, categories: list[dict], cuda: bool,
                label_map: dict[int, int] | None = None) -> Explainable:
    """EigenCAM over the feature pyramid (the detector's heads have no one class score to differentiate)."""
    model, _ = load_model(family, settings, checkpoint, categories, label_map)
    wrapped = FeatureMaps(model.eval()).to(torch.device("cuda" if cuda else "cpu"))
    return Explainable(wrapped, [wrapped.maps], lambda rgb: torch.from_numpy(rgb).permute(2, 0, 1).float().div(255)[None], "eigencam")
