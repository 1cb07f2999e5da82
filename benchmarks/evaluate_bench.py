"""Scoring: faster-coco-eval against pycocotools on the same detections."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from common import best_of


def synthetic_detections(n_images: int, n_detections: int, n_classes: int, seed: int = 0) -> tuple[dict, list[dict]]:
    """A COCO ground truth (as a dataset dict) and detections: a jittered, scored copy of most
    objects plus scattered false positives, up to n_detections."""
    import numpy as np

    rng = np.random.default_rng(seed)
    images = [{"id": i, "width": 640, "height": 480, "file_name": f"{i}.jpg"} for i in range(1, n_images + 1)]
    annotations, detections = [], []
    for image in images:
        for _ in range(rng.integers(1, 12)):
            w, h = rng.uniform(8, 200, 2)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            cls = int(rng.integers(1, n_classes + 1))
            annotations.append({"id": len(annotations) + 1, "image_id": image["id"], "category_id": cls,
                                "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
            if rng.random() < 0.8:
                jitter = rng.normal(0, 0.08, 4) * [w, h, w, h]
                detections.append({"image_id": image["id"], "category_id": cls, "score": float(rng.uniform(0.2, 1.0)),
                                   "bbox": [float(x + jitter[0]), float(y + jitter[1]), float(w + jitter[2]), float(h + jitter[3])]})
    while len(detections) < n_detections:
        w, h = rng.uniform(8, 200, 2)
        detections.append({"image_id": int(rng.integers(1, n_images + 1)), "category_id": int(rng.integers(1, n_classes + 1)),
                           "score": float(rng.uniform(0.0, 0.7)),
                           "bbox": [float(rng.uniform(0, 640 - w)), float(rng.uniform(0, 480 - h)), float(w), float(h)]})
    dataset = {"images": images, "annotations": annotations,
               "categories": [{"id": c, "name": f"class{c}"} for c in range(1, n_classes + 1)]}
    return dataset, detections


def bench_evaluate() -> None:
    """`score`'s work on one evaluation (load the ground truth, COCO summary, per-class AP, count
    MAE overall and per class) with faster-coco-eval, against the same with pycocotools."""
    from bgshift import metrics

    dataset, dets = synthetic_detections(5000, 100_000, 20)
    names = {c["id"]: c["name"] for c in dataset["categories"]}
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        gt_path = Path(tmp) / "gt.json"
        gt_path.write_text(json.dumps(dataset))

        def score_with(engine):
            def run():
                rows[engine] = metrics.metric_rows(metrics.load_coco(gt_path, engine), dets, 0.5, names, background_only=False)
            return run

        t_reference, t_engine = best_of(score_with("pycocotools"), score_with("faster-coco-eval"), rounds=2)
    worst = max(abs(a - b) for (_, a), (_, b) in zip(rows["pycocotools"], rows["faster-coco-eval"]))
    print(f"evaluate: {len(dataset['images'])} images, {len(dataset['annotations'])} objects, {len(dets)} detections, 20 classes")
    print(f"  score with pycocotools (reference):   {t_reference:6.1f} s")
    print(f"  score with faster-coco-eval (engine): {t_engine:6.1f} s")
    print(f"  speed-up: {t_reference / t_engine:.2f}x (goal >= 6x, loading included); largest difference in "
          f"{len(rows['pycocotools'])} figures: {worst:.1e}")
