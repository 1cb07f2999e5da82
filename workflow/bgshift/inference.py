"""Detections of a trained checkpoint on COCO export splits, as COCO results records.

Both model families are run by our code on the same images and scored by the same
pycocotools evaluation, so their figures are comparable. A checkpoint is loaded once
and then run on every test set it is evaluated on.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from .evaluate import load_coco
from .weights import load_state, load_yolo

Detector = Callable[[Path], list[dict]]  # a COCO split's json -> detections on its images


def load_detector(family: str, settings: dict, checkpoint: Path, categories: list[dict], cuda: bool) -> Detector:
    """The checkpoint's model, loaded once, as a function of the split to run on."""
    index_to_category = {c["index"]: c["category_id"] for c in categories}
    if family == "frcnn":
        from .train import frcnn

        device = torch.device("cuda" if cuda else "cpu")
        model = frcnn.build_model({**settings, "weights": "none"}, len(categories))
        model.load_state_dict(load_state(checkpoint)["model"])
        model.to(device)
        category_index = {c["category_id"]: c["index"] for c in categories}
        return lambda coco_json: frcnn.predict(model, frcnn.CocoSplit(coco_json, category_index), device, index_to_category)

    model = load_yolo(checkpoint)
    return lambda coco_json: _yolo_predict(model, settings["imgsz"], Path(coco_json), index_to_category, "0" if cuda else "cpu")


def _yolo_predict(model, imgsz: int, coco_json: Path, index_to_category: dict[int, int], device: str, batch: int = 16) -> list[dict]:
    """ultralytics predict at validation settings (conf 0.001, NMS IoU 0.7, up to 300 per image)."""
    coco = load_coco(coco_json)
    images = coco.loadImgs(sorted(coco.getImgIds()))
    results = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        predictions = model.predict([str(coco_json.parent / im["file_name"]) for im in chunk], imgsz=imgsz,
                                    conf=0.001, iou=0.7, max_det=300, device=device, verbose=False)
        for im, pred in zip(chunk, predictions):
            boxes = pred.boxes
            for (x0, y0, x1, y1), cls, score in zip(boxes.xyxy.tolist(), boxes.cls.tolist(), boxes.conf.tolist()):
                results.append({"image_id": im["id"], "category_id": index_to_category[int(cls)],
                                "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(score)})
    return results
