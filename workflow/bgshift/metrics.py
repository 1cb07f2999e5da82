"""COCO detection metrics and counting error, from detections, and classification accuracy,
from predicted labels: pure functions, used by the evaluation stage and by validation inside
training alike.

Detections are COCO results records: {"image_id", "category_id", "bbox": [x, y, w, h], "score"}.
The COCO scoring engine is faster-coco-eval (a C++ COCOeval, about 10x faster); pycocotools,
the reference, gives identical figures (tests/test_evaluate.py checks every one) and
remains selectable: `load_coco(path, engine="pycocotools")`.
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import faster_coco_eval
import numpy as np
import pycocotools.coco
import pycocotools.cocoeval

from .metric_names import AP_PER_IOU, STAT_NAMES, TIDE_ERRORS

# engine -> (its COCO ground-truth class, its COCOeval)
ENGINES = {
    "faster-coco-eval": (faster_coco_eval.COCO, faster_coco_eval.COCOeval_faster),
    "pycocotools": (pycocotools.coco.COCO, pycocotools.cocoeval.COCOeval),
}
COCO = faster_coco_eval.COCO | pycocotools.coco.COCO


def load_coco(path: str | Path, engine: str = "faster-coco-eval") -> COCO:
    """Ground truth as the engine's COCO object; the scoring functions below use that engine."""
    with contextlib.redirect_stdout(io.StringIO()):
        return ENGINES[engine][0](str(path))


def results_of(gt: COCO, detections: list[dict]) -> COCO:
    """Detections as gt's engine's results object; loadRes refuses an empty list, so no
    detection is an empty result set over the same images."""
    with contextlib.redirect_stdout(io.StringIO()):
        if detections:
            return gt.loadRes(detections)
        dt = type(gt)()
        dt.dataset = {"images": gt.dataset["images"], "categories": gt.dataset["categories"], "annotations": []}
        dt.createIndex()
    return dt


def _cocoeval(gt: COCO, detections: list[dict]):
    """evaluate + accumulate + summarize, once, with gt's engine; every figure below is read from this one run."""
    evaluator_class = next(pair[1] for pair in ENGINES.values() if isinstance(gt, pair[0]))
    dt = results_of(gt, detections)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = evaluator_class(gt, dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def _summary(evaluator) -> dict[str, float]:
    return {name: float(v) for name, v in zip(STAT_NAMES, evaluator.stats)}


def _per_class(evaluator) -> dict[int, float]:
    """AP (IoU .50:.95) per category id from COCOeval's precision table; -1 for classes without objects."""
    precision = evaluator.eval["precision"][:, :, :, 0, -1]  # T x R x K, area all, 100 detections
    out = {}
    for k, cid in enumerate(evaluator.params.catIds):
        values = precision[:, :, k]
        values = values[values > -1]
        out[int(cid)] = float(values.mean()) if values.size else -1.0
    return out


def _ap_per_iou(evaluator) -> dict[str, float]:
    """AP at each IoU threshold (.50, .55, ... .95), averaged as COCO averages AP: over the recall
    thresholds and the classes that have objects (area all, 100 detections); their mean is AP."""
    precision = evaluator.eval["precision"][:, :, :, 0, -1]  # T x R x K
    out = {}
    for name, values in zip(AP_PER_IOU, precision):
        valid = values[values > -1]
        out[name] = float(valid.mean()) if valid.size else -1.0
    return out


def coco_metrics(gt: COCO, detections: list[dict]) -> dict[str, float]:
    """The twelve COCOeval summary figures; -1 where undefined (no such objects)."""
    return _summary(_cocoeval(gt, detections))


def per_class_ap(gt: COCO, detections: list[dict]) -> dict[int, float]:
    """AP (IoU .50:.95) per category id; -1 for classes without objects."""
    return _per_class(_cocoeval(gt, detections))


def count_errors(gt: COCO, detections: list[dict], threshold: float) -> dict[int | None, float]:
    """Count MAE overall (key None) and per category id, in one pass over objects and detections:
    mean over images of |detections scoring >= threshold - ground-truth objects| (crowd excluded)."""
    image_ids = gt.getImgIds()
    if not image_ids:
        return {None: float("nan"), **{cid: float("nan") for cid in gt.getCatIds()}}
    row = {image_id: i for i, image_id in enumerate(image_ids)}
    col = {cid: k for k, cid in enumerate(gt.getCatIds())}
    diff = np.zeros((len(row), len(col)), np.int64)  # predicted - true, per image and class
    for a in gt.dataset["annotations"]:
        if not a.get("iscrowd", 0) and a["image_id"] in row:
            diff[row[a["image_id"]], col[a["category_id"]]] -= 1
    for d in detections:
        if d["score"] >= threshold and d["image_id"] in row and d["category_id"] in col:
            diff[row[d["image_id"]], col[d["category_id"]]] += 1
    out: dict[int | None, float] = {None: float(np.abs(diff.sum(1)).mean())}
    out.update({cid: float(np.abs(diff[:, k]).mean()) for cid, k in col.items()})
    return out


def count_mae(gt: COCO, detections: list[dict], threshold: float, category_id: int | None = None) -> float:
    """Mean over images of |detections scoring >= threshold - ground-truth objects|, overall or of one class."""
    return count_errors(gt, detections, threshold)[category_id]


def false_positives_per_image(gt: COCO, detections: list[dict], threshold: float) -> float:
    """Detections at or above the threshold per image: on background-only images every one is false."""
    images = len(gt.getImgIds())
    return sum(d["score"] >= threshold for d in detections) / images if images else float("nan")




def tide_errors(gt: COCO, detections: list[dict]) -> dict[str, float]:
    """TIDE (Bolya et al., the `tidecv` package): the AP50 each kind of error costs, as dAP50 on
    AP's 0-1 scale: classification, localisation, both, duplicate, background (a detection on
    nothing) and missed errors, then all false positives and all false negatives (the
    "special" errors). Boxes at IoU 0.5 for a hit and 0.1 for "near an object", TIDE's defaults.
    Without any detection there is nothing to decompose (and tidecv would divide by zero): nan."""
    from tidecv import TIDE
    from tidecv.data import Data

    if not detections:
        return dict.fromkeys(TIDE_ERRORS, float("nan"))

    truth, predicted = Data("gt", max_dets=100), Data("detections")
    for image in gt.dataset["images"]:
        truth.add_image(image["id"], image["file_name"])
    for category in gt.dataset["categories"]:
        truth.add_class(category["id"], category["name"])
    for ann in gt.dataset["annotations"]:
        add = truth.add_ignore_region if ann["iscrowd"] else truth.add_ground_truth
        add(ann["image_id"], ann["category_id"], ann["bbox"])
    for d in detections:
        predicted.add_detection(d["image_id"], d["category_id"], d["score"], d["bbox"])
    run = TIDE(pos_threshold=0.5, background_threshold=0.1, mode=TIDE.BOX).evaluate(truth, predicted, name="run")
    errors = {e.short_name: v for e, v in {**run.fix_main_errors(), **run.fix_special_errors()}.items()}
    return {name: errors[name] / 100 for name in TIDE_ERRORS}


def metric_rows(gt: COCO, detections: list[dict], threshold: float, names: dict[int, str], background_only: bool) -> list[tuple[str, float]]:
    """Every figure of one (checkpoint, test set): COCO stats, per-class AP, count MAE, FP per
    image, TIDE's errors (tide/<error>)."""
    if background_only:  # no objects to find: only false positives can be measured
        return [("fp_per_image", false_positives_per_image(gt, detections, threshold))]
    evaluator = _cocoeval(gt, detections)
    rows = list(_summary(evaluator).items()) + list(_ap_per_iou(evaluator).items())
    rows += [(f"AP/{names[cid]}", ap) for cid, ap in sorted(_per_class(evaluator).items())]
    errors = count_errors(gt, detections, threshold)
    rows.append(("count_mae", errors[None]))
    rows += [(f"count_mae/{names[cid]}", errors[cid]) for cid in sorted(gt.getCatIds())]
    rows += [(f"tide/{name}", value) for name, value in tide_errors(gt, detections).items()]
    return rows


def challenge_accuracy(correct: np.ndarray, foreground: list) -> float:
    """Xiao et al.'s backgrounds challenge: the share of foregrounds classified correctly on
    every background they were tried on (`foreground`: each sample's foreground key)."""
    passed = foreground_passes(correct, foreground)
    return float(np.mean(list(passed.values()))) if passed else float("nan")


def foreground_passes(correct: np.ndarray, foreground: list) -> dict:
    """Each foreground key -> whether every sample of it was classified correctly."""
    passed: dict = {}
    for key, ok in zip(foreground, correct):
        passed[key] = passed.get(key, True) and bool(ok)
    return passed


def classification_outcomes(truth: str | Path, predictions: list[dict]) -> dict:
    """Each sample of a crops test set against its prediction: labels, correct, the source image
    and object of each sample, the class names, and whether it is the backgrounds challenge.
    `truth`: the split's Parquet parts; predictions: records with the index of their sample."""
    import datasets
    import pyarrow.parquet as pq

    parts = sorted(Path(truth).glob("*.parquet"))
    table = pq.read_table(parts, columns=["label", "image_id", "ann_id", "variant"]) if parts else None
    names = datasets.Features.from_arrow_schema(pq.read_schema(parts[0]))["label"].names if parts else []
    labels = np.array(table.column("label").to_pylist() if table is not None else [], dtype=np.int64)
    predicted = np.array([p["label"] for p in sorted(predictions, key=lambda p: p["index"])], dtype=np.int64)
    if len(predicted) != len(labels):
        raise ValueError(f"{truth}: {len(labels)} samples but {len(predicted)} predictions")
    column = (lambda name: table.column(name).to_pylist()) if table is not None else (lambda name: [])
    return {"labels": labels, "predicted": predicted, "correct": predicted == labels, "image_ids": column("image_id"),
            "ann_ids": column("ann_id"), "names": names, "challenge": set(column("variant")) == {"challenge"}}


def classification_rows(outcomes: dict, confusion: bool = True) -> list[tuple[str, float]]:
    """Every figure of one (checkpoint, crops test set): top-1 accuracy, per-class accuracy, the
    confusion matrix as counts (confusion/<true>/<predicted>; only if `confusion`, as classes^2
    rows are many), and on the backgrounds challenge set its challenge accuracy."""
    labels, predicted, correct, names = outcomes["labels"], outcomes["predicted"], outcomes["correct"], outcomes["names"]
    rows = [("accuracy", float(correct.mean()) if len(labels) else float("nan"))]
    rows += [(f"accuracy/{name}", float(correct[labels == k].mean())) for k, name in enumerate(names) if (labels == k).any()]
    if confusion:
        rows += [(f"confusion/{names[t]}/{names[p]}", float(np.sum((labels == t) & (predicted == p))))
                 for t in range(len(names)) for p in range(len(names))]
    if outcomes["challenge"]:
        rows.append(("challenge_accuracy", challenge_accuracy(correct, list(zip(outcomes["image_ids"], outcomes["ann_ids"])))))
    return rows
