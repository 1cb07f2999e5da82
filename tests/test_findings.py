"""The findings engine: AP under unit weights is the scored AP, claims resolve to cells of any
study, and the verdicts on constructed studies with known answers."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from bgshift import metrics
from bgshift.config import ConfigError, validate
from bgshift.findings import claims as claims_module
from bgshift.findings import engine, kernel, per_image, resample
from bgshift.io import write_parquet

from conftest import COCO128, REPO


def coco128_detections(seed: int) -> tuple[dict, list[dict]]:
    """coco128's real annotations (crowds included), and detections near some objects, off
    in class for some, plus false positives, with tied scores."""
    gt = json.loads((COCO128 / "annotations" / "instances_train2017.json").read_text())
    rng = np.random.default_rng(seed)
    categories = [c["id"] for c in gt["categories"]]
    detections = []
    for a in gt["annotations"]:
        if rng.random() < 0.8:
            x, y, w, h = (np.array(a["bbox"]) + rng.normal(0, 0.08, 4) * np.repeat(a["bbox"][2:], 2)).tolist()
            category = a["category_id"] if rng.random() < 0.9 else int(rng.choice(categories))
            detections.append({"image_id": a["image_id"], "category_id": category, "bbox": [x, y, max(w, 1), max(h, 1)],
                               "score": round(float(rng.random()), 2)})
    for image in gt["images"]:
        for _ in range(rng.integers(0, 6)):
            detections.append({"image_id": image["id"], "category_id": int(rng.choice(categories)),
                               "bbox": rng.uniform(0, 300, 2).tolist() + rng.uniform(5, 100, 2).tolist(), "score": round(float(rng.random()), 2)})
    return gt, detections


def evaluation_of(gt_path: Path, detections: list[dict], threshold: float = 0.5) -> resample.Evaluation:
    gt = metrics.load_coco(gt_path, engine="pycocotools")
    rows = per_image.detection_rows(gt, detections, threshold, background_only=False)
    classes = [c["name"] for c in sorted(gt.dataset["categories"], key=lambda c: c["id"])]
    table = per_image.table([{"checkpoint": "best", "step": None, "testset": "t", **r} for r in rows], classes)
    return resample.Evaluation(table, np.unique(table.column("unit").to_numpy()))


@pytest.mark.parametrize("seed", [0, 1])
def test_unit_weight_ap_is_the_scored_ap(tmp_path, seed):
    """On coco128 (80 classes, crowds): with every image once, the engine's AP, AP50, AP75, a
    class's AP and count MAE are pycocotools' to the last bit and faster-coco-eval's (the
    scorer, whose C++ sums in another order) within 1e-15; every replicate of unit weights too."""
    gt, detections = coco128_detections(seed)
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(gt))
    evaluation = evaluation_of(gt_path, detections)
    reference = metrics.coco_metrics(metrics.load_coco(gt_path, engine="pycocotools"), detections)
    names = {c["id"]: c["name"] for c in gt["categories"]}
    scored = dict(metrics.metric_rows(metrics.load_coco(gt_path), detections, 0.5, names, background_only=False))
    ones = np.ones((3, evaluation.size))
    for metric in ("AP", "AP50", "AP75"):
        assert resample.point(evaluation, metric) == reference[metric]
        assert resample.point(evaluation, metric) == pytest.approx(scored[metric], abs=1e-15)
        assert resample.replicates(evaluation, metric, ones) == pytest.approx(np.full(3, scored[metric]), abs=1e-12)
    for metric in ("AP_iou60", "AP_iou95"):  # AP at one IoU threshold, claimable like AP50
        assert resample.point(evaluation, metric) == pytest.approx(scored[metric], abs=1e-15)
        assert resample.replicates(evaluation, metric, ones) == pytest.approx(np.full(3, scored[metric]), abs=1e-12)
    assert resample.point(evaluation, "AP/person") == pytest.approx(scored["AP/person"], abs=1e-15)
    assert resample.point(evaluation, "count_mae") == pytest.approx(scored["count_mae"], abs=1e-12)
    assert resample.point(evaluation, "count_mae/dog") == pytest.approx(scored["count_mae/dog"], abs=1e-12)


def test_a_replicate_is_the_ap_of_the_resampled_test_set(tmp_path):
    """Weight 2 on an image and 0 on another is the AP of a test set holding the first twice
    and not the second (COCOeval on a rebuilt json): the weights mean what they say."""
    gt, detections = coco128_detections(2)
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(gt))
    evaluation = evaluation_of(gt_path, detections)
    ids = [im["id"] for im in gt["images"]]
    twice, dropped = ids[3], ids[5]
    weights = np.ones((1, evaluation.size))
    weights[0, np.searchsorted(np.array(sorted(ids)), [twice, dropped])] = [2, 0]
    copy = max(ids) + 1000  # the doubled image under a new id
    rebuilt = {**gt, "images": [im for im in gt["images"] if im["id"] != dropped] + [{**next(i for i in gt["images"] if i["id"] == twice), "id": copy}],
               "annotations": [a for a in gt["annotations"] if a["image_id"] != dropped]
               + [{**a, "id": a["id"] + 10**7, "image_id": copy} for a in gt["annotations"] if a["image_id"] == twice]}
    rebuilt_dets = [d for d in detections if d["image_id"] != dropped] + [{**d, "image_id": copy} for d in detections if d["image_id"] == twice]
    (tmp_path / "rebuilt.json").write_text(json.dumps(rebuilt))
    expected = metrics.coco_metrics(metrics.load_coco(tmp_path / "rebuilt.json", engine="pycocotools"), rebuilt_dets)
    for metric in ("AP", "AP50"):  # the copy sorts after the original in COCO's image order: ties may break apart
        assert resample.replicates(evaluation, metric, weights)[0] == pytest.approx(expected[metric], abs=2e-3)


# ------------------------------------------------------------------ a constructed study
def _image(unit: int, found: bool, score: float, extra_fp: bool = False) -> dict:
    """A test image with one sheep: found (a true positive at every IoU) or missed, perhaps a false positive too."""
    dets = ([("sheep", score, 1023, 0)] if found else []) + ([("sheep", 0.99, 0, 0)] if extra_fp else [])
    return {"image": unit, "unit": unit, "categories": ["sheep"], "npos": [1], "objects": [1], "detected": [int(found) + int(extra_fp)],
            "det_category": [d[0] for d in dets], "det_score": [d[1] for d in dets], "det_matched": [d[2] for d in dets],
            "det_ignored": [d[3] for d in dets]}


FOUND_ON_RED = {}  # (trainset, seed) -> sheep found on test_bg_color_red at the best checkpoint


def _write_run(folder: Path, trainset: str, seed: int, found_on_red: float, rng, steps=(10, 20, 30), whole_originals: int = 0):
    """`whole_originals`: test images only test_original holds (kept whole though segmentation
    failed them), on which every sheep is missed."""
    rows = []
    for checkpoint, step in [("best", None)] + [(f"epoch{s}", s) for s in steps]:
        for testset, share in (("test_original", 1.0), ("test_bg_color_red", found_on_red)):
            found = rng.random(40) < share
            rows += [{"checkpoint": checkpoint, "step": step, "testset": testset, **_image(u, bool(f), float(rng.random()))}
                     for u, f in enumerate(found, start=100)]
            if testset == "test_original":
                rows += [{"checkpoint": checkpoint, "step": step, "testset": testset, **_image(u, False, 0.5)}
                         for u in range(200, 200 + whole_originals)]
            if checkpoint == "best" and testset == "test_bg_color_red":
                FOUND_ON_RED[(trainset, seed)] = int(found.sum())
    path = folder / "eval" / "m" / trainset / f"seed{seed}" / "per_image.parquet"
    write_parquet(path, per_image.table(rows, ["sheep"], {"model": "m", "trainset": trainset, "seed": seed, "task": "detection"}))
    return path


STUDY = {
    "red_costs": {"metric": "AP50", "expect": "greater", "cells": {"trainset": "original"},
                  "plus": [{"testset": "test_original"}], "minus": [{"testset": "test_bg_color_red"}]},
    "colour_training_narrows": {"metric": "AP50", "expect": "greater",
                                "plus": [{"trainset": "colour", "testset": "test_bg_color_red"}],
                                "minus": [{"trainset": "original", "testset": "test_bg_color_red"}]},
    "same_on_originals": {"metric": "count_mae", "margin": 0.05, "checkpoint": "window",
                          "plus": [{"trainset": "colour", "testset": "test_original"}],
                          "minus": [{"trainset": "original", "testset": "test_original"}]},
    "better_than_a_constant": {"metric": "AP", "expect": "less", "cells": {"trainset": ["original", "colour"], "testset": "test_bg_color_red"},
                               "plus": [{}], "minus": [{"value": 0.9}]},
}


def constructed_study(tmp_path: Path, claims: dict = STUDY, whole_originals: int = 0) -> engine.Study:
    rng = np.random.default_rng(0)
    files = [_write_run(tmp_path, trainset, seed, share + 0.03 * seed, rng, whole_originals=whole_originals)
             for trainset, share in (("original", 0.3), ("colour", 0.8)) for seed in range(3)]
    config = validate({"seed": 0, "findings": {"claims": claims, "replicates": 400}, "evaluate": {"window": {"start": 15}}}, partial=True)
    return engine.Study("lab", config, ["m"], files)


def test_the_compiled_replicates_are_the_reference_arithmetic(tmp_path):
    """Under bootstrap weights (images doubled, dropped), every class and IoU threshold of
    coco128: the compiled kernel's precision sums are the numpy reference's (resample._curve,
    COCOeval's cumulative sums and envelope) within float rounding of the final sum."""
    gt, detections = coco128_detections(3)
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(gt))
    evaluation = evaluation_of(gt_path, detections)
    weights = resample.bootstrap_weights(evaluation.size, 64, 7)
    weights_t = np.ascontiguousarray(weights.T)
    compared = 0
    for name in evaluation.classes:
        category = evaluation.category(name)
        npos = weights @ category.npos
        for level in category.thresholds:
            envelope, covered = resample._curve(level, weights_t, npos)
            defined = npos > 0
            reference = (envelope * covered).sum(axis=0)[defined]
            assert resample._precision_sum(level, weights_t, npos)[defined] == pytest.approx(reference, abs=1e-10, rel=0)
            compared += int(defined.sum()) * len(level.unit)
    assert compared > 100_000


def test_recall_thresholds_are_counted_as_cocoeval_searches_them():
    """The compiled replicates count the recall thresholds at or below a recall arithmetically;
    COCOeval searches np.linspace's thresholds. Equal on every threshold, its neighbours and random recalls."""
    thresholds = resample.RECALL_THRESHOLDS
    assert np.array_equal(thresholds[:-1], np.arange(100) * 0.01) and thresholds[-1] == 1.0
    rng = np.random.default_rng(0)
    recalls = np.concatenate([rng.random(100_000), np.arange(101) / 100, np.arange(1, 50) / 49, thresholds,
                              np.nextafter(thresholds, 2), np.nextafter(thresholds, -1)[1:]])
    counted = np.array([kernel._thresholds_covered(r) for r in recalls])
    assert np.array_equal(counted, np.searchsorted(thresholds, recalls, side="right"))


def test_verdicts_on_a_constructed_study(tmp_path):
    rows = {r["claim"]: r for r in engine.run([constructed_study(tmp_path)], tmp_path / "out", "test")}
    red = rows["red_costs"]
    # AP50 on test_original is 1 (every sheep found, no false positive); on red, with k of 40
    # found and no false positive, precision is 1 up to recall k/40: the recall thresholds <= k/40, of 101
    ap50_red = [np.searchsorted(resample.RECALL_THRESHOLDS, FOUND_ON_RED[("original", s)] / 40, side="right") / 101 for s in range(3)]
    assert red["per_seed"] == pytest.approx([1 - ap for ap in ap50_red], abs=1e-12)
    assert red["verdict"] == "holds" and red["seeds"] == [0, 1, 2]
    assert red["adjusted_interval"][0] > 0.4 and red["p_improvement"] == 1.0
    assert red["image_share"] > 0.5  # 40 test images: most of the variance is theirs
    assert rows["colour_training_narrows"]["verdict"] == "holds"
    same = rows["same_on_originals"]  # identical counts on test_original at every checkpoint: no effect, no spread
    assert same["effect"] == 0 and same["verdict"] == "equivalent" and same["expect"] == "within ±0.05"
    constant = rows["better_than_a_constant"]
    assert constant["verdict"] == "holds" and constant["effect"] < 0
    assert all(r["adjusted_p"] >= r["p"] for r in rows.values())
    text = (tmp_path / "out" / "findings.md").read_text()
    assert "Made by `test`" in text and "Holm-Bonferroni" in text and re.search(r"\| lab: red costs +\| AP50", text)
    assert (tmp_path / "out" / "findings" / "forest.png").stat().st_size > 10_000
    assert all((tmp_path / "out" / "findings" / f"{name}.png").stat().st_size > 5_000 for name in STUDY)


def test_a_claim_across_test_sets_compares_the_images_both_hold(tmp_path):
    """test_original holds 10 images more than test_bg_color_red (originals kept whole where
    segmentation failed), all missed: the red cost is still measured on the 40 images both
    sets hold (AP50 1 on test_original there), exactly as without them, and says so; a claim
    within test_original alone uses all 50."""
    rows = {r["claim"]: r for r in engine.run([constructed_study(tmp_path, whole_originals=10)], tmp_path / "out", "test")}
    red = rows["red_costs"]
    ap50_red = [np.searchsorted(resample.RECALL_THRESHOLDS, FOUND_ON_RED[("original", s)] / 40, side="right") / 101 for s in range(3)]
    assert red["per_seed"] == pytest.approx([1 - ap for ap in ap50_red], abs=1e-12) and red["test_images"] == 40
    assert rows["same_on_originals"]["test_images"] == 50 and rows["colour_training_narrows"]["test_images"] == 40
    assert "On 40 test images (those every compared cell scored)" in (tmp_path / "out" / "findings.md").read_text()


def test_findings_are_byte_identical_on_a_rerun(tmp_path):
    engine.run([constructed_study(tmp_path / "a")], tmp_path / "a" / "out", "test")
    engine.run([constructed_study(tmp_path / "b")], tmp_path / "b" / "out", "test")
    for name in ("findings.md", "findings.json", "findings/forest.png", "findings/red_costs.png"):
        assert (tmp_path / "a" / "out" / name).read_bytes() == (tmp_path / "b" / "out" / name).read_bytes(), name


def test_an_inconclusive_claim_says_how_many_seeds_it_needs(tmp_path):
    claim = {"small": {"metric": "AP50", "expect": "greater", "plus": [{"trainset": "original", "testset": "test_original"}],
                       "minus": [{"trainset": "colour", "testset": "test_original"}]}}
    (row,) = engine.run([constructed_study(tmp_path, claim)], tmp_path / "out", "test")
    assert row["effect"] == 0 and row["verdict"] == "inconclusive" and row["seeds_needed"] is None


def test_claims_are_checked_against_the_plan():
    config = validate({"findings": {"claims": {"x": dict(STUDY["red_costs"])}}}, partial=True)
    parsed = claims_module.parse(config["findings"]["claims"], ["m"])
    claims_module.check(config, parsed, ["original"], ["test_original", "test_bg_color_red"], {"m": "detection"})
    with pytest.raises(ConfigError, match=r"findings.claims.x: test set 'test_bg_color_red' is not tested"):
        claims_module.check(config, parsed, ["original"], ["test_original"], {"m": "detection"})
    with pytest.raises(ConfigError, match=r"metric 'AP50' is not one of m's \(classification\)"):
        claims_module.check(config, parsed, ["original"], ["test_original", "test_bg_color_red"], {"m": "classification"})
    with pytest.raises(ConfigError, match="name the model"):
        claims_module.parse(config["findings"]["claims"], ["m", "n"])
    with pytest.raises(ConfigError, match="either expect .* or margin"):
        claims_module.parse({"x": {**STUDY["red_costs"], "margin": 0.1}}, ["m"])
    window = validate({"findings": {"claims": {"w": dict(STUDY["same_on_originals"])}}}, partial=True)
    with pytest.raises(ConfigError, match="add 'original' to evaluate.sweep_test_sets"):
        claims_module.check({**window, "evaluate": {"sweep_test_sets": []}}, claims_module.parse(window["findings"]["claims"], ["m"]),
                            ["original", "colour"], ["test_original"], {"m": "detection"})


def test_the_engine_names_no_set_model_or_test_set():
    code = "\n".join(p.read_text() for p in (REPO / "workflow" / "bgshift" / "findings").glob("*.py"))
    names = re.findall(r"[\"'](\w+)[\"']", code)
    assert not {"unl_black", "mixed_rand", "mixed_same", "colour", "original", "test_original", "yolo_n", "control"} & set(names)


def test_findings_across_configs_from_the_command_line(tmp_path, monkeypatch):
    """`bgshift findings --configs` (make study's last step): each config's claims read the runs
    under its own results folder, and one Holm family covers them all."""
    import yaml

    from bgshift import cli
    from bgshift.io import RESULTS_ENV

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(RESULTS_ENV, "results")  # the CLI sets it for its process; restored after the test
    rng = np.random.default_rng(1)
    paths = []
    for world, share in (("one", 0.3), ("two", 0.5)):
        results = tmp_path / "results" / "study" / world
        for trainset, seed in ((t, s) for t in ("original", "colour") for s in range(2)):
            _write_run(results, trainset, seed, share, rng)
        config = {"results": f"results/study/{world}", "dataset": {"kind": "synthetic"},
                  "variants": {"catalog": {"original": {}, "bg_color": {"colours": {"red": "red"}}}},
                  "sets": {"train": {"original": {"variants": ["original"]}, "colour": {"variants": ["original", "bg_color_red"]}},
                           "test": ["original", "bg_color_red"]},
                  "train": {"models": {"m": {"family": "yolo", "model": "yolov8n.yaml"}}, "seeds": [0, 1]},
                  "findings": {"replicates": 200, "claims": {f"{world}_red_costs": STUDY["red_costs"]}}}
        paths.append(tmp_path / f"{world}.yaml")
        paths[-1].write_text(yaml.safe_dump(config))
    assert cli.main(["findings", "--configs", *map(str, paths), "--out", "results/study"]) == 0
    rows = json.loads((tmp_path / "results" / "study" / "findings.json").read_text())["claims"]
    assert [(r["study"], r["claim"]) for r in rows] == [("one", "one_red_costs"), ("two", "two_red_costs")]
    assert sorted(r["holm_level"] for r in rows) == pytest.approx([0.025, 0.05])
    assert "bgshift findings --configs" in (tmp_path / "results" / "study" / "findings.md").read_text()


def test_a_claim_on_a_runs_loss_varies_with_the_seeds_alone(tmp_path):
    """loss/<component> rows of each run's metrics.parquet (at best, and at each checkpoint for a
    window claim): no test image varies them, so the effect's variance is the seeds' alone."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    study = constructed_study(tmp_path, {
        "objectness_gap": {"metric": "loss/loss_objectness", "expect": "greater", "cells": {"testset": "train"},
                           "plus": [{"trainset": "colour"}], "minus": [{"trainset": "original"}]},
        "objectness_gap_window": {"metric": "loss/loss_objectness", "expect": "greater", "checkpoint": "window",
                                  "cells": {"testset": "train"}, "plus": [{"trainset": "colour"}], "minus": [{"trainset": "original"}]}})
    gaps = {0: 0.25, 1: 0.24, 2: 0.26}
    for (_, trainset, seed), path in study.runs.items():
        base = 0.3 + 0.01 * seed + (gaps[seed] if trainset == "colour" else 0.0)
        rows = [{"model": "m", "trainset": trainset, "seed": seed, "checkpoint": label, "step": step, "testset": "train",
                 "metric": "loss/loss_objectness", "value": base + (0.1 if label == "epoch10" else 0.0)}
                for label, step in (("best", 20), ("epoch10", 10), ("epoch20", 20), ("epoch30", 30))]
        pq.write_table(pa.Table.from_pylist(rows), path.with_name("metrics.parquet"))
    rows = {r["claim"]: r for r in engine.run([study], tmp_path / "out", "test")}
    gap = rows["objectness_gap"]
    assert gap["per_seed"] == pytest.approx([0.25, 0.24, 0.26]) and gap["image_share"] == 0 and gap["test_images"] == 0
    assert gap["verdict"] == "holds"
    assert rows["objectness_gap_window"]["per_seed"] == pytest.approx([0.25, 0.24, 0.26])  # epoch10 lies outside the window
    assert "A run's own figure: no test image varies it" in (tmp_path / "out" / "findings.md").read_text()
    config = validate({"findings": {"claims": {"x": {"metric": "loss/loss_objectness", "expect": "greater", "cells": {"testset": "test_original"},
                                                     "plus": [{"trainset": "colour"}], "minus": [{"trainset": "original"}]}}}}, partial=True)
    iou = validate({"findings": {"claims": {"x": {**STUDY["red_costs"], "metric": "AP_iou70"}}}}, partial=True)
    claims_module.check(iou, claims_module.parse(iou["findings"]["claims"], ["m"]), ["original"], ["test_original", "test_bg_color_red"],
                        {"m": "detection"})  # every IoU threshold's AP is claimable
    with pytest.raises(ConfigError, match="is a run's loss: name its component .* and testset 'train'"):
        claims_module.check(config, claims_module.parse(config["findings"]["claims"], ["m"]), ["original", "colour"],
                            ["test_original"], {"m": "detection"})
