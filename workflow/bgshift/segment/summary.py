"""The segmentation summary: QC failures, the dataset's mean background (colour and image) and
the mask quality per method and class against ground truth."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from .. import images as imgs
from ..io import write_bytes, write_json, write_table
from .schema import MEAN_IMAGE_SIZE


def summarise(shards: list[str | Path], stats: list[str | Path], categories: str | Path, annotations: str | Path,
              out_dir: str | Path, tables_dir: str | Path) -> dict:
    """Combine shards: background mean colour and image, QC report, per-class mask IoU table."""
    out_dir, tables_dir = Path(out_dir), Path(tables_dir)
    rows = [r for path in shards for r in pq.read_table(path).to_pylist()]
    total = np.zeros(3)
    count = 0
    size = MEAN_IMAGE_SIZE
    pixel_sum, pixel_weight = np.zeros((size, size, 3)), np.zeros((size, size))
    for path in stats:
        st = pq.read_table(path).to_pylist()[0]
        count += st["count"]
        total += np.array(st["sum_rgb"])
        pixel_sum += np.array(st["pixel_sum"]).reshape(size, size, 3)
        pixel_weight += np.array(st["pixel_weight"]).reshape(size, size)
    mean_rgb = (total / count).tolist() if count else [0.0, 0.0, 0.0]
    mean_image = np.where(pixel_weight[..., None] > 0, pixel_sum / np.maximum(pixel_weight[..., None], 1e-9), mean_rgb)
    write_bytes(out_dir / "mean_background.png", imgs.encode_png(np.clip(np.round(mean_image), 0, 255).astype(np.uint8)))
    if rows and "decoded" not in rows[0]:
        raise ValueError(f"{shards[0]}: segmented by an older bgshift (no 'decoded' column): rerun it "
                         "(snakemake --forcerun segment)")
    failed = [{"image_id": r["image_id"], "reason": r["qc_reason"], "decoded": r["decoded"]} for r in rows if not r["qc_pass"]]
    methods: dict[str, int] = defaultdict(int)
    for r in rows:
        methods[r["mask_source"]] += 1
    summary = {"images": len(rows), "qc_passed": len(rows) - len(failed), "qc_failed": failed,
               "mask_source": dict(sorted(methods.items())), "background_mean_rgb": mean_rgb}
    write_json(out_dir / "summary.json", summary)
    names = {c["category_id"]: c["name"] for c in pq.read_table(categories).to_pylist()}
    cat_of = {a["ann_id"]: a["category_id"] for a in pq.read_table(annotations, columns=["ann_id", "category_id"]).to_pylist()}
    scores: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        for inst in r["instances"]:
            if inst["iou_vs_gt"] is not None:
                scores[(r["mask_source"], names[cat_of[inst["ann_id"]]])].append(inst["iou_vs_gt"])
    write_quality_table(scores, tables_dir)
    return summary


def write_quality_table(scores: dict[tuple[str, str], list[float]], tables_dir: Path) -> None:
    """Mean/median mask IoU against ground truth, per method and class, plus each method over all classes."""
    records = [{"method": m, "class": c, "iou": v} for (m, c), values in scores.items() for v in values]
    frame = pd.DataFrame(records, columns=["method", "class", "iou"])
    per_class = frame.groupby(["method", "class"])["iou"].agg(instances="count", mean_iou="mean", median_iou="median")
    overall = frame.assign(**{"class": "all"}).groupby(["method", "class"])["iou"].agg(
        instances="count", mean_iou="mean", median_iou="median")
    table = pd.concat([per_class, overall]).reset_index().round(4)
    write_table(table, tables_dir / "segmentation_quality")
