"""Detections of a trained checkpoint on a COCO export split, as COCO results records.

Both model families are run by our code on the same images and scored by the same
pycocotools evaluation, so their figures are comparable.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .evaluate import load_coco


def frcnn_detections(settings: dict, checkpoint: Path, coco_json: Path, categories: list[dict], device: torch.device) -> list[dict]:
    from .train import frcnn

    index_to_category = {c["index"]: c["category_id"] for c in categories}
    model = frcnn.build_model({**settings, "weights": "none"}, len(categories))
    model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True)["model"])
    split = frcnn.CocoSplit(coco_json, {c["category_id"]: c["index"] for c in categories})
    return frcnn.predict(model.to(device), split, device, index_to_category)


def yolo_detections(settings: dict, checkpoint: Path, coco_json: Path, categories: list[dict], device: str,
                    batch: int = 16) -> list[dict]:
    from ultralytics import YOLO

    index_to_category = {c["index"]: c["category_id"] for c in categories}
    coco = load_coco(coco_json)
    model = YOLO(str(checkpoint))
    images = coco.loadImgs(sorted(coco.getImgIds()))
    results = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        predictions = model.predict([str(coco_json.parent / im["file_name"]) for im in chunk], imgsz=settings["imgsz"],
                                    conf=0.001, iou=0.7, max_det=300, device=device, verbose=False)
        for im, pred in zip(chunk, predictions):
            boxes = pred.boxes
            for (x0, y0, x1, y1), cls, score in zip(boxes.xyxy.tolist(), boxes.cls.tolist(), boxes.conf.tolist()):
                results.append({"image_id": im["id"], "category_id": index_to_category[int(cls)],
                                "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(score)})
    return results
