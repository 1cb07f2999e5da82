"""Per-image evaluation records: what the findings engine resamples.

A metric of a whole test set (AP, count MAE, accuracy) is recomputed for thousands of
bootstrap resamples of the test images, so `score` keeps, beside the metric rows, what each
test image contributed: per class its objects and counted detections, and every detection's
COCO matching (pycocotools' own `evaluateImg`: matched / ignored at each IoU threshold),
or per class its classifier samples and how many were right. One row per scored image,
with its *unit*: the source image it was made from, so the same test image carries the same
resampling weight in every test variant, run and seed (a paired resample).
"""
from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pyarrow as pa

from ..metrics import foreground_passes, results_of

IOU_THRESHOLDS = 10  # COCO's .50:.05:.95, as bits 0..9 of `det_matched` / `det_ignored`

_COUNTS = [("categories", pa.list_(pa.string())), ("npos", pa.list_(pa.int32())), ("objects", pa.list_(pa.int32())),
           ("detected", pa.list_(pa.int32())), ("samples", pa.list_(pa.int32())), ("correct", pa.list_(pa.int32())),
           ("foregrounds", pa.list_(pa.int32())), ("passed", pa.list_(pa.int32()))]
_DETECTIONS = [("det_category", pa.list_(pa.string())), ("det_score", pa.list_(pa.float64())),
               ("det_matched", pa.list_(pa.int16())), ("det_ignored", pa.list_(pa.int16()))]
# saliency maps drawn on the image (bgshift.saliency): how many, and the sums of their shares of mass on
# the objects and of the objects' share of the picture (fg_attention and fg_area are their ratios to `maps`)
_ATTENTION = [("maps", pa.int32()), ("attention", pa.float64()), ("attention_area", pa.float64())]
SCHEMA = pa.schema([("checkpoint", pa.string()), ("step", pa.int64()), ("testset", pa.string()), ("image", pa.int64()),
                    ("unit", pa.int64())] + _COUNTS + _DETECTIONS + _ATTENTION)


def _bits(flags: np.ndarray) -> list[int]:
    """T x D booleans -> one int per detection, bit t set where flag t is."""
    return [int(v) for v in (flags.astype(np.int64) << np.arange(flags.shape[0])[:, None]).sum(0)]


def _matching(gt, detections: list[dict]) -> dict[int, list[dict]]:
    """pycocotools' evaluateImg at area 'all' and 100 detections per image (`gt`: pycocotools'
    COCO): per image, its per-class records (dtScores, dtMatches, dtIgnore, gtIgnore), in COCO's order."""
    from pycocotools.cocoeval import COCOeval

    evaluator = COCOeval(gt, results_of(gt, detections), "bbox")
    evaluator.params.areaRng, evaluator.params.areaRngLbl = evaluator.params.areaRng[:1], ["all"]
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
    out: dict[int, list[dict]] = {}
    for record in evaluator.evalImgs:
        if record is not None:
            out.setdefault(record["image_id"], []).append(record)
    return out


def detection_rows(gt, detections: list[dict], threshold: float, background_only: bool) -> list[dict]:
    """One row per test image: per class npos (the objects AP counts: COCO's not ignored),
    objects (counted: crowds excluded) and detections at or above `threshold`; and every
    detection's matching. `gt`: the test set's ground truth as pycocotools' COCO (the reference
    scorer, whose per-image records faster-coco-eval does not expose)."""
    names = {c["id"]: c["name"] for c in gt.dataset["categories"]}
    matching = {} if background_only else _matching(gt, detections)
    rows = []
    per_image: dict[int, dict[int, list[int]]] = {}
    for image_id, records in matching.items():
        for r in records:
            per_image.setdefault(image_id, {}).setdefault(r["category_id"], [0, 0, 0])[0] = int((r["gtIgnore"] == 0).sum())
    for a in gt.dataset["annotations"]:
        per_image.setdefault(a["image_id"], {}).setdefault(a["category_id"], [0, 0, 0])[1] += not a.get("iscrowd", 0)
    for d in detections:
        if d["score"] >= threshold and d["category_id"] in names:
            per_image.setdefault(d["image_id"], {}).setdefault(d["category_id"], [0, 0, 0])[2] += 1
    for image in sorted(gt.dataset["images"], key=lambda im: im["id"]):
        counts = sorted(per_image.get(image["id"], {}).items())
        records = sorted(matching.get(image["id"], []), key=lambda r: r["category_id"])
        dets = [(names[r["category_id"]], s, m, i) for r in records
                for s, m, i in zip(r["dtScores"], _bits(r["dtMatches"] > 0), _bits(r["dtIgnore"] > 0))]
        rows.append({"image": image["id"], "unit": image.get("source_image_id", image["id"]),
                     "categories": [names[c] for c, _ in counts], "npos": [v[0] for _, v in counts],
                     "objects": [v[1] for _, v in counts], "detected": [v[2] for _, v in counts],
                     "det_category": [d[0] for d in dets], "det_score": [d[1] for d in dets],
                     "det_matched": [d[2] for d in dets], "det_ignored": [d[3] for d in dets]})
    return rows


def threshold_rows(rows: list[dict], threshold: float, background_only: bool) -> list[tuple[str, float]]:
    """What AP hides, at the score threshold, from one test set's per-image records: recall50, the
    share of the objects AP counts that a detection at or above the threshold matches at IoU .5
    (COCO's matching; each object matched at most once), and predictions_per_image, the boxes
    at or above it per image (on a background-only set, every one is a false positive)."""
    volume = ("predictions_per_image", sum(sum(r["detected"]) for r in rows) / len(rows) if rows else float("nan"))
    if background_only:
        return [volume]
    objects = sum(sum(r["npos"]) for r in rows)
    found = sum(1 for r in rows for score, matched, ignored in zip(r["det_score"], r["det_matched"], r["det_ignored"])
                if score >= threshold and matched & 1 and not ignored & 1)
    return [("recall50", found / objects if objects else float("nan")), volume]


def classification_rows(labels: np.ndarray, correct: np.ndarray, image_ids: list[int], ann_ids: list[int],
                        names: list[str], challenge: bool) -> list[dict]:
    """One row per source image: per class its samples and correct predictions; on the
    backgrounds challenge, per class its foregrounds and those right on every background."""
    per_unit: dict[int, dict[int, list[int]]] = {}
    for label, ok, image_id in zip(labels.tolist(), correct.tolist(), image_ids):
        counts = per_unit.setdefault(image_id, {}).setdefault(label, [0, 0, 0, 0])
        counts[0] += 1
        counts[1] += ok
    if challenge:
        foregrounds = list(zip(image_ids, ann_ids))
        label_of = dict(zip(foregrounds, labels.tolist()))
        for (image_id, ann_id), ok in foreground_passes(correct, foregrounds).items():
            counts = per_unit[image_id][label_of[image_id, ann_id]]
            counts[2] += 1
            counts[3] += ok
    rows = []
    for unit, counts in sorted(per_unit.items()):
        ordered = sorted(counts.items())
        rows.append({"image": unit, "unit": unit, "categories": [names[k] for k, _ in ordered],
                     **{key: [v[i] for _, v in ordered] for i, key in enumerate(("samples", "correct", "foregrounds", "passed"))}})
    return rows


def with_attention(rows: list[dict], maps: list[dict], key: str) -> list[dict]:
    """The per-image rows with their saliency maps' sums (`maps`: saliency.parquet's rows of one
    test set that have a share; `key`: which of their columns names the row, image or unit)."""
    sums: dict[int, list[float]] = {}
    for m in maps:
        total = sums.setdefault(m[key], [0, 0.0, 0.0])
        total[0] += 1
        total[1] += m["fg_share"]
        total[2] += m["fg_area"]
    return [{**row, **dict(zip(("maps", "attention", "attention_area"), sums.get(row["image"], [0, 0.0, 0.0])))} for row in rows]


def attention_rows(maps: list[dict]) -> list[tuple[str, float]]:
    """fg_attention and fg_area of one test set: the means over its maps that have a share."""
    if not maps:
        return []
    return [("fg_attention", float(np.mean([m["fg_share"] for m in maps]))), ("fg_area", float(np.mean([m["fg_area"] for m in maps])))]


def table(rows: list[dict], classes: list[str], run: dict | None = None) -> pa.Table:
    """Rows (with checkpoint, step and testset) as the per-image table; absent lists are empty.
    Its metadata: the classes in the scorer's order (COCO's category ids: its AP averages them in
    that order) and the run (model, trainset, seed, task) it belongs to."""
    empty = {**{name: [] for name, _ in _COUNTS + _DETECTIONS}, "maps": 0, "attention": 0.0, "attention_area": 0.0}
    return pa.Table.from_pylist([{**empty, **row} for row in rows], schema=SCHEMA.with_metadata(metadata(classes, run)))


def metadata(classes: list[str], run: dict | None = None) -> dict[str, str]:
    return {"bgshift.classes": json.dumps(classes), **{f"bgshift.{key}": str(value) for key, value in (run or {}).items()}}


def classes_of(table: pa.Table) -> list[str]:
    return json.loads((table.schema.metadata or {}).get(b"bgshift.classes", b"[]"))
