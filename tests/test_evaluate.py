"""Metrics on hand-made detections with known answers, and exact table aggregation."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from bgshift import evaluate, report
from bgshift.io import write_json


def ground_truth(tmp_path):
    """Two images, three objects of two classes (and a crowd region that counts for nothing)."""
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 200, "height": 100}, {"id": 2, "file_name": "b.jpg", "width": 200, "height": 100}],
        "categories": [{"id": 3, "name": "sheep"}, {"id": 7, "name": "cone"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 10, 40, 40], "area": 1600, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 7, "bbox": [100, 20, 30, 60], "area": 1800, "iscrowd": 0},
            {"id": 3, "image_id": 2, "category_id": 3, "bbox": [50, 30, 50, 50], "area": 2500, "iscrowd": 0},
        ],
    }
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(data))
    return path, evaluate.load_coco(path)


def perfect(gt):
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9} for a in gt.dataset["annotations"]]


def test_perfect_detections_score_one_and_shifted_ones_zero(tmp_path):
    _, gt = ground_truth(tmp_path)
    m = evaluate.coco_metrics(gt, perfect(gt))
    assert m["AP"] == pytest.approx(1.0) and m["AP50"] == pytest.approx(1.0) and m["AP75"] == pytest.approx(1.0)
    shifted = [{**d, "bbox": [d["bbox"][0] + d["bbox"][2] * 0.7, d["bbox"][1], d["bbox"][2], d["bbox"][3]]} for d in perfect(gt)]
    m = evaluate.coco_metrics(gt, shifted)  # IoU = 0.3/1.7 < 0.5 everywhere
    assert m["AP"] == pytest.approx(0.0) and m["AP50"] == pytest.approx(0.0)
    assert evaluate.coco_metrics(gt, [])["AP"] == pytest.approx(0.0)


def test_per_class_ap_sees_one_class_missed(tmp_path):
    _, gt = ground_truth(tmp_path)
    only_sheep = [d for d in perfect(gt) if d["category_id"] == 3]
    assert evaluate.per_class_ap(gt, only_sheep) == {3: pytest.approx(1.0), 7: pytest.approx(0.0)}
    assert evaluate.coco_metrics(gt, only_sheep)["AP"] == pytest.approx(0.5)


def test_count_mae_and_false_positives_on_constructed_cases(tmp_path):
    _, gt = ground_truth(tmp_path)
    dets = perfect(gt) + [{"image_id": 2, "category_id": 3, "bbox": [0, 0, 5, 5], "score": 0.8},
                          {"image_id": 2, "category_id": 3, "bbox": [0, 0, 5, 5], "score": 0.3},  # below the threshold
                          {"image_id": 1, "category_id": 7, "bbox": [0, 0, 5, 5], "score": 0.6}]
    # image 1: 2 objects, 3 detections >= .5 -> 1; image 2: 1 object, 2 detections -> 1
    assert evaluate.count_mae(gt, dets, 0.5) == pytest.approx(1.0)
    assert evaluate.count_mae(gt, dets, 0.5, category_id=3) == pytest.approx(0.5)  # sheep: |1-1|, |2-1|
    assert evaluate.count_mae(gt, dets, 0.95) == pytest.approx((2 + 1) / 2)  # nothing counted
    assert evaluate.false_positives_per_image(gt, dets, 0.5) == pytest.approx(5 / 2)


def test_metric_rows_of_background_only_sets_measure_false_positives(tmp_path):
    _, gt = ground_truth(tmp_path)
    assert evaluate.metric_rows(gt, perfect(gt), 0.5, {3: "sheep", 7: "cone"}, background_only=True) == [("fp_per_image", 1.5)]
    names = dict(evaluate.metric_rows(gt, perfect(gt), 0.5, {3: "sheep", 7: "cone"}, background_only=False))
    assert names["AP/sheep"] == pytest.approx(1.0) and names["count_mae"] == 0 and "AR100" in names


def test_score_recomputes_metrics_from_stored_detections(tmp_path):
    gt_path, gt = ground_truth(tmp_path)
    write_json(tmp_path / "run" / "best" / "test_original.json", perfect(gt))
    write_json(tmp_path / "run" / "best" / "test_only_bg_t.json", perfect(gt)[:1])
    manifest = {"model": "m", "set": "s", "seed": 3, "evaluations": [
        {"checkpoint": "best", "step": 10, "test_set": "test_original", "detections": "best/test_original.json", "ground_truth": str(gt_path)},
        {"checkpoint": "best", "step": 10, "test_set": "test_only_bg_t", "detections": "best/test_only_bg_t.json", "ground_truth": str(gt_path)}]}
    write_json(tmp_path / "run" / "manifest.json", manifest)
    config = {"evaluate": {"score_threshold": 0.5}}
    assert evaluate.score(config, tmp_path / "run" / "manifest.json", tmp_path / "m.parquet") > 10
    frame = pd.read_parquet(tmp_path / "m.parquet")
    ap = frame[(frame.metric == "AP") & (frame.testset == "test_original")].value.item()
    assert ap == pytest.approx(1.0) and set(frame.seed) == {3}
    assert frame[frame.testset == "test_only_bg_t"].metric.tolist() == ["fp_per_image"]


def long_frame():
    rows = []
    for seed, (a, b, same, rand) in enumerate([(0.1, 0.5, 0.4, 0.3), (0.2, 0.7, 0.5, 0.2), (0.3, 0.6, 0.6, 0.1)]):
        rows += [("m", "orig", seed, "best", 9, "test_original", "AP", a), ("m", "mask", seed, "best", 9, "test_original", "AP", b),
                 ("m", "orig", seed, "best", 9, "test_mixed_same", "AP", same), ("m", "orig", seed, "best", 9, "test_mixed_rand", "AP", rand)]
        rows += [("m", "orig", seed, f"iter_{s}", s, "test_original", "AP", a + s / 100) for s in (3, 6, 9)]
    return pd.DataFrame(rows, columns=report.COLUMNS)


def test_tables_aggregate_mean_and_std_over_seeds_exactly():
    frame = long_frame()
    best = frame[(frame.checkpoint == "best") & (frame.testset == "test_original")]
    table = report.paper_table(best[["model", "trainset", "seed", "testset", "value"]])
    cells = {row["training set"]: row["test_original"] for _, row in table.iterrows()}
    assert cells == {"orig": "0.200 ± 0.100", "mask": "0.600 ± 0.100"}  # sample std over 3 seeds
    windowed = report.window_values(frame, "AP", 6, 9)
    assert windowed[windowed.seed == 0].value.item() == pytest.approx(0.1 + 0.075)  # mean of steps 6 and 9
    gap = report.background_gap(frame)
    assert gap.value.round(6).tolist() == [0.1, 0.3, 0.5]
    assert report.mean_std(pd.Series([0.25])) == "0.250"


def test_table_files_in_three_formats(tmp_path):
    frame = long_frame()
    frame.to_parquet(tmp_path / "m.parquet")
    written = report.tables([tmp_path / "m.parquet"], tmp_path / "tables", {"table_metrics": ["AP"], "window": {"start": 6, "stop": 9}})
    assert written == ["AP", "AP_window", "bg_gap"]
    assert "| m       | orig           | 0.200 ± 0.100" in (tmp_path / "tables" / "AP.md").read_text()
    assert r"0.200 $\pm$ 0.100" in (tmp_path / "tables" / "AP.tex").read_text() and r"test\_original" in (tmp_path / "tables" / "AP.tex").read_text()
    assert "<table" in (tmp_path / "tables" / "tables.html").read_text()
    assert pd.read_csv(tmp_path / "tables" / "metrics.csv").shape[0] == len(frame)
