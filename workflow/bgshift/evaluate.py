"""COCO detection metrics (pycocotools COCOeval) and counting error, from detections.

Detections are COCO results records: {"image_id", "category_id", "bbox": [x, y, w, h], "score"}.
"""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

STAT_NAMES = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]


def load_coco(path: str | Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def _cocoeval(gt: COCO, detections: list[dict]) -> COCOeval:
    """evaluate + accumulate + summarize, once; every figure below is read from this one run."""
    with contextlib.redirect_stdout(io.StringIO()):
        if detections:
            dt = gt.loadRes(detections)
        else:
            dt = COCO()
            dt.dataset = {"images": gt.dataset["images"], "categories": gt.dataset["categories"], "annotations": []}
            dt.createIndex()
        evaluator = COCOeval(gt, dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def _summary(evaluator: COCOeval) -> dict[str, float]:
    return {name: float(v) for name, v in zip(STAT_NAMES, evaluator.stats)}


def _per_class(evaluator: COCOeval) -> dict[int, float]:
    """AP (IoU .50:.95) per category id from COCOeval's precision table; -1 for classes without objects."""
    precision = evaluator.eval["precision"][:, :, :, 0, -1]  # T x R x K, area all, 100 detections
    out = {}
    for k, cid in enumerate(evaluator.params.catIds):
        values = precision[:, :, k]
        values = values[values > -1]
        out[int(cid)] = float(values.mean()) if values.size else -1.0
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


BACKGROUND_ONLY_FAMILIES = ("only_bg_b", "only_bg_t", "no_fg")


def metric_rows(gt: COCO, detections: list[dict], threshold: float, names: dict[int, str], background_only: bool) -> list[tuple[str, float]]:
    """Every figure of one (checkpoint, test set): COCO stats, per-class AP, count MAE, FP per image."""
    if background_only:  # no objects to find: only false positives can be measured
        return [("fp_per_image", false_positives_per_image(gt, detections, threshold))]
    evaluator = _cocoeval(gt, detections)
    rows = list(_summary(evaluator).items())
    rows += [(f"AP/{names[cid]}", ap) for cid, ap in sorted(_per_class(evaluator).items())]
    errors = count_errors(gt, detections, threshold)
    rows.append(("count_mae", errors[None]))
    rows += [(f"count_mae/{names[cid]}", errors[cid]) for cid in sorted(gt.getCatIds())]
    return rows


# ---------------------------------------------------------------- per-run jobs
def checkpoints_of(done: dict, run_dir: Path) -> list[dict]:
    """best first, then every kept checkpoint with its step (iteration or epoch)."""
    if done["family"] == "frcnn":
        best = {"label": "best", "step": done["best"]["iteration"], "path": run_dir / "best.pt"}
        kept = [{"label": Path(c["name"]).stem, "step": c["iteration"], "path": run_dir / "checkpoints" / c["name"]}
                for c in done["checkpoints"]]
    else:
        best = {"label": "best", "step": None, "path": run_dir / done["best"]["name"]}
        kept = [{"label": Path(c["name"]).stem, "step": c["epoch"], "path": run_dir / c["name"]} for c in done["checkpoints"]]
    return [best] + kept


def detect(config: dict, model_name: str, done_path: str | Path, test_sets: dict[str, str | Path],
           categories_path: str | Path, out_dir: str | Path) -> dict:
    """Run every needed (checkpoint, test set) once and keep the raw detections as COCO results JSON."""
    import pyarrow.parquet as pq
    import torch

    from . import inference
    from .io import write_json
    from .train import gpus

    settings = config["train"]["models"][model_name]
    done_path, out_dir = Path(done_path), Path(out_dir)
    done = json.loads(done_path.read_text())
    categories = sorted(pq.read_table(categories_path).to_pylist(), key=lambda c: c["index"])
    sweep = set(config["evaluate"]["sweep_test_sets"])
    allocation = gpus.allocate() if config["train"]["device"] == "auto" else gpus.Allocation(None)
    manifest = []
    try:
        cuda = allocation.device is not None and torch.cuda.is_available()
        for ckpt in checkpoints_of(done, done_path.parent):
            wanted = {name: folder for name, folder in sorted(test_sets.items())
                      if ckpt["label"] == "best" or name.removeprefix("test_") in sweep}
            detector = inference.load_detector(done["family"], settings, ckpt["path"], categories, cuda)
            for name, folder in wanted.items():
                gt_json = Path(folder) / "coco" / "test.json"
                dets = detector(gt_json)
                target = out_dir / ckpt["label"] / f"{name}.json"
                write_json(target, [{**d, "bbox": [round(v, 2) for v in d["bbox"]], "score": round(d["score"], 5)} for d in dets], indent=None)
                manifest.append({"checkpoint": ckpt["label"], "step": ckpt["step"], "test_set": name,
                                 "detections": str(target.relative_to(out_dir)), "ground_truth": str(gt_json)})
    finally:
        allocation.release()
    summary = {"model": model_name, "set": done["set"], "seed": done["seed"], "evaluations": manifest}
    write_json(out_dir / "manifest.json", summary)
    return summary


def score(config: dict, manifest_path: str | Path, out: str | Path) -> int:
    """Metrics of every stored evaluation (no inference): one long-format Parquet per run."""
    import pyarrow as pa

    from .io import write_parquet

    manifest_path = Path(manifest_path)
    manifest = json.loads(manifest_path.read_text())
    threshold = config["evaluate"]["score_threshold"]
    rows = []
    gts: dict[str, COCO] = {}
    for e in manifest["evaluations"]:
        gt = gts.setdefault(e["ground_truth"], load_coco(e["ground_truth"]))
        names = {c["id"]: c["name"] for c in gt.loadCats(gt.getCatIds())}
        dets = json.loads((manifest_path.parent / e["detections"]).read_text())
        variant = e["test_set"].removeprefix("test_")
        for metric, value in metric_rows(gt, dets, threshold, names, variant.startswith(BACKGROUND_ONLY_FAMILIES)):
            rows.append({"model": manifest["model"], "trainset": manifest["set"], "seed": manifest["seed"],
                         "checkpoint": e["checkpoint"], "step": e["step"], "testset": e["test_set"], "metric": metric, "value": value})
    schema = pa.schema([("model", pa.string()), ("trainset", pa.string()), ("seed", pa.int64()), ("checkpoint", pa.string()),
                        ("step", pa.int64()), ("testset", pa.string()), ("metric", pa.string()), ("value", pa.float64())])
    write_parquet(out, pa.Table.from_pylist(rows, schema=schema))
    return len(rows)
