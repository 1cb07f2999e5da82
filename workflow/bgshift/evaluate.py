"""COCO detection metrics (pycocotools COCOeval) and counting error, from detections.

Detections are COCO results records: {"image_id", "category_id", "bbox": [x, y, w, h], "score"}.
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

STAT_NAMES = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]


def load_coco(path: str | Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def coco_metrics(gt: COCO, detections: list[dict]) -> dict[str, float]:
    """The twelve COCOeval summary figures; -1 where undefined (no such objects)."""
    if not gt.getAnnIds() and not detections:
        return {name: -1.0 for name in STAT_NAMES}
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(detections) if detections else COCO()
        if not detections:
            dt.dataset = {"images": gt.dataset["images"], "categories": gt.dataset["categories"], "annotations": []}
            dt.createIndex()
        evaluator = COCOeval(gt, dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(v) for name, v in zip(STAT_NAMES, evaluator.stats)}


def count_mae(gt: COCO, detections: list[dict], threshold: float, category_id: int | None = None) -> float:
    """Mean over images of |detections scoring >= threshold - ground-truth objects| (crowd excluded)."""
    counts = {}
    for image_id in gt.getImgIds():
        anns = gt.loadAnns(gt.getAnnIds(imgIds=[image_id], iscrowd=False))
        counts[image_id] = [sum(1 for a in anns if category_id is None or a["category_id"] == category_id), 0]
    for d in detections:
        if d["score"] >= threshold and (category_id is None or d["category_id"] == category_id) and d["image_id"] in counts:
            counts[d["image_id"]][1] += 1
    if not counts:
        return float("nan")
    return float(np.mean([abs(pred - true) for true, pred in counts.values()]))
