"""Evaluation stage: adopt an evaluate-only model as a run (`adopt`, see pretrained.py), run a
run's checkpoints on the test sets (`detect`, raw predictions kept as JSON: COCO results for
detectors, one record per crop for classifiers), then compute every metric from those files
(`score`), so a new threshold rescores without inference."""
from __future__ import annotations

import json
from pathlib import Path

from .findings import per_image
from .pretrained import PRETRAINED, PRETRAINED_SEED, label_map
from .progress import progress
from .metrics import COCO, classification_outcomes, classification_rows, load_coco, metric_rows


def adopt(config: dict, model_name: str, categories_path: str | Path, done: str | Path) -> dict:
    """The run record of an evaluate-only model: its weights file and its label map (None when
    its classes are the dataset's own, as in a checkpoint of an earlier run on this dataset)."""
    from .io import read_categories, write_json
    from .train import family

    settings = config["train"]["models"][model_name]
    weights, model_classes = family(settings["family"]).own_classes(settings)
    categories, _ = read_categories(categories_path)
    mapping = None if model_classes is None else label_map(model_classes, categories, settings.get("class_map", {}), f"train.models.{model_name}")
    record = {"family": settings["family"], "evaluate_only": True, "weights": str(weights), "model": model_name,
              "set": PRETRAINED, "seed": PRETRAINED_SEED, "model_classes": None if model_classes is None else len(model_classes),
              "label_map": None if mapping is None else {str(label): cid for label, cid in sorted(mapping.items())}}
    write_json(done, record)
    return record


def checkpoints_of(models, done: dict, run_dir: Path) -> tuple[list[dict], dict[int, int] | None]:
    """A run's checkpoints, best first, and its label map: an evaluate-only model is one
    checkpoint, its weights as they are."""
    if not done.get("evaluate_only"):
        return models.checkpoints(done, run_dir), None
    mapping = None if done["label_map"] is None else {int(label): cid for label, cid in done["label_map"].items()}
    return [{"label": "best", "step": None, "path": Path(done["weights"])}], mapping


def detect(config: dict, model_name: str, done_path: str | Path, test_sets: dict[str, str | Path],
           categories_path: str | Path, out_dir: str | Path, device: str = "auto") -> dict:
    """Run every needed (checkpoint, test set) once and keep the raw detections as COCO results JSON."""
    import torch

    from .io import read_categories, write_json
    from . import devices
    from .train import family, ground_truth

    settings = config["train"]["models"][model_name]
    done_path, out_dir = Path(done_path), Path(out_dir)
    done = json.loads(done_path.read_text())
    categories, _ = read_categories(categories_path)
    sweep = set(config["evaluate"]["sweep_test_sets"])
    allocation = devices.allocate() if device == "auto" else devices.Allocation(None)
    manifest = []
    try:
        devices.use_declared_threads()
        cuda = allocation.device is not None and torch.cuda.is_available()
        models = family(done["family"])
        checkpoints, mapping = checkpoints_of(models, done, done_path.parent)
        for ckpt in checkpoints:
            wanted = {name: folder for name, folder in sorted(test_sets.items())
                      if ckpt["label"] == "best" or name.removeprefix("test_") in sweep}
            predictor = models.load_predictor(settings, ckpt["path"], categories, cuda, mapping)
            for name, folder in wanted.items():
                truth = ground_truth(models.task, folder)
                predictions = predictor(truth)
                if models.task == "detection":
                    predictions = [{**d, "bbox": [round(v, 2) for v in d["bbox"]], "score": round(d["score"], 5)} for d in predictions]
                target = out_dir / ckpt["label"] / f"{name}.json"
                write_json(target, predictions, indent=None)
                manifest.append({"checkpoint": ckpt["label"], "step": ckpt["step"], "test_set": name,
                                 "detections": str(target.relative_to(out_dir)), "ground_truth": str(truth)})
    finally:
        allocation.release()
    summary = {"model": model_name, "set": done["set"], "seed": done["seed"], "task": models.task, "evaluations": manifest}
    write_json(out_dir / "manifest.json", summary)
    return summary


def _ground_truth(gts: dict, path: str, engine: str) -> COCO:
    """A test set's ground truth, loaded once per engine for all of a run's checkpoints."""
    if (path, engine) not in gts:
        gts[path, engine] = load_coco(path, engine=engine)
    return gts[path, engine]


def _scored(task: str, e: dict, predictions: list, threshold: float, gts: dict, background_only: bool) -> tuple[list, list[dict], list[str]]:
    """One stored evaluation's metric rows, its per-image records (the findings' resampling
    units) and its class names in the scorer's order."""
    if task == "classification":
        outcomes = classification_outcomes(e["ground_truth"], predictions)
        rows = classification_rows(outcomes, confusion=e["checkpoint"] == "best")  # one matrix per run
        units = per_image.classification_rows(outcomes["labels"], outcomes["correct"], outcomes["image_ids"],
                                              outcomes["ann_ids"], outcomes["names"], outcomes["challenge"])
        return rows, units, outcomes["names"]
    gt, reference = (_ground_truth(gts, e["ground_truth"], engine) for engine in ("faster-coco-eval", "pycocotools"))
    names = {c["id"]: c["name"] for c in gt.loadCats(gt.getCatIds())}
    rows = metric_rows(gt, predictions, threshold, names, background_only)
    units = per_image.detection_rows(reference, predictions, threshold, background_only)
    rows += per_image.threshold_rows(units, threshold, background_only)
    return rows, units, [names[cid] for cid in sorted(names)]


def _saliency_maps(path: str | Path | None) -> dict[str, list[dict]]:
    """saliency.parquet's maps that have a share, by test set (none without the file: no maps drawn)."""
    if not path:
        return {}
    import pyarrow.parquet as pq

    maps: dict[str, list[dict]] = {}
    for m in pq.read_table(path).to_pylist():
        if m["fg_share"] is not None:
            maps.setdefault(m["testset"], []).append(m)
    return maps


def score(config: dict, manifest_path: str | Path, out: str | Path, per_image_out: str | Path,
          background_only: tuple[str, ...] = (), saliency: str | Path | None = None, run: str | Path | None = None) -> int:
    """Metrics of every stored evaluation (no inference): one long-format Parquet per run, and
    beside it what each test image contributed (per_image.parquet, for the findings).
    `background_only`: the test sets whose every variant removes the objects (their families'
    records, variants/families.py), scored by false positives alone. `saliency`: the run's
    saliency.parquet, whose maps of the best checkpoint add fg_attention and fg_area. `run`: its
    done.json, whose losses add loss/<component> and val_loss/<component> (training_losses)."""
    import pyarrow as pa

    from .io import write_parquet

    manifest_path = Path(manifest_path)
    manifest = json.loads(manifest_path.read_text())
    threshold = config["evaluate"]["score_threshold"]
    measured, units, classes = [], [], []  # (checkpoint, step, testset, metric, value)
    gts: dict[tuple[str, str], COCO] = {}
    maps = _saliency_maps(saliency)
    for e in progress(manifest["evaluations"], desc="score", unit="evaluation"):
        predictions = json.loads((manifest_path.parent / e["detections"]).read_text())
        rows_of_set, units_of_set, classes = _scored(manifest["task"], e, predictions, threshold, gts,
                                                        e["test_set"] in background_only)
        if e["checkpoint"] == "best":
            drawn = maps.get(e["test_set"], [])
            units_of_set = per_image.with_attention(units_of_set, drawn, "image" if manifest["task"] == "detection" else "unit")
            rows_of_set = rows_of_set + per_image.attention_rows(drawn)
        where = {"checkpoint": e["checkpoint"], "step": e["step"], "testset": e["test_set"]}
        units += [{**where, **unit} for unit in units_of_set]
        measured += [(e["checkpoint"], e["step"], e["test_set"], metric, value) for metric, value in rows_of_set]
    if run:
        from .training_losses import loss_rows

        measured += loss_rows(run)
    rows = [{"model": manifest["model"], "trainset": manifest["set"], "seed": manifest["seed"],
             **dict(zip(("checkpoint", "step", "testset", "metric", "value"), row))} for row in measured]
    schema = pa.schema([("model", pa.string()), ("trainset", pa.string()), ("seed", pa.int64()), ("checkpoint", pa.string()),
                        ("step", pa.int64()), ("testset", pa.string()), ("metric", pa.string()), ("value", pa.float64())])
    write_parquet(out, pa.Table.from_pylist(rows, schema=schema))
    about = {"model": manifest["model"], "trainset": manifest["set"], "seed": manifest["seed"], "task": manifest["task"]}
    write_parquet(per_image_out, per_image.table(units, classes, about))
    return len(rows)
