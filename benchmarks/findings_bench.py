"""`make bench BENCH=findings`: the findings engine at the scale of the 162-run COCO study grid
(config/examples/study_grid_coco.yaml): test sets of 5,000 images and 80 classes, about 30
detections an image, claims over 50 cells, 3 seeds, 2,000 test-image resamples. The goal is
5 minutes on 2 cores; the per-image records are generated (building them through COCO
matching is `score`'s job, timed by `make bench BENCH=evaluate`)."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from bgshift.config import validate
from bgshift.findings import engine, per_image
from bgshift.io import write_parquet

IMAGES, CLASSES, DETECTIONS, OBJECTS = 5000, 80, 30, 7
GOAL_SECONDS = 300


def _lists(values: np.ndarray, counts: np.ndarray) -> pa.ListArray:
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))


def evaluation_rows(rng, testset: str, recall: float) -> pa.Table:
    """One test set's per-image records: OBJECTS objects an image on average, of which `recall`
    are found (matched at IoU .50, fewer at higher thresholds), plus false positives."""
    names = np.array([f"class{k:02d}" for k in range(CLASSES)])
    objects = rng.poisson(OBJECTS, IMAGES) + 1
    object_class = rng.integers(0, CLASSES, objects.sum())
    found = rng.random(objects.sum()) < recall
    false_positives = np.maximum(rng.poisson(DETECTIONS, IMAGES) - objects, 0)
    image_of_object = np.repeat(np.arange(IMAGES), objects)  # an image's detections: its found objects, its false positives
    det_image = np.concatenate([image_of_object[found], np.repeat(np.arange(IMAGES), false_positives)])
    det_class = np.concatenate([object_class[found], rng.integers(0, CLASSES, false_positives.sum())])
    quality = rng.integers(0, 11, found.sum())  # IoU steps reached: matched at thresholds 0..quality-1
    matched = np.concatenate([(1 << quality) - 1, np.zeros(false_positives.sum(), np.int64)]).astype(np.int16)
    score = np.concatenate([rng.beta(5, 2, found.sum()), rng.beta(2, 5, false_positives.sum())]).round(5)
    order = np.lexsort((-score, det_class, det_image))  # per image, by class then score, as score writes them
    counts_per_image = np.bincount(det_image, minlength=IMAGES)
    # per image x class counts: one entry per class present
    pair = image_of_object * CLASSES + object_class
    pairs, npos = np.unique(pair, return_counts=True)
    classes_per_image = np.bincount(pairs // CLASSES, minlength=IMAGES)
    n = IMAGES
    columns = {
        "checkpoint": pa.array(["best"] * n), "step": pa.array([None] * n, pa.int64()), "testset": pa.array([testset] * n),
        "image": pa.array(np.arange(n)), "unit": pa.array(np.arange(n)),
        "categories": _lists(names[pairs % CLASSES], classes_per_image), "npos": _lists(npos.astype(np.int32), classes_per_image),
        "objects": _lists(npos.astype(np.int32), classes_per_image), "detected": _lists(npos.astype(np.int32), classes_per_image),
        "samples": _lists(np.zeros(0, np.int32), np.zeros(n, int)), "correct": _lists(np.zeros(0, np.int32), np.zeros(n, int)),
        "foregrounds": _lists(np.zeros(0, np.int32), np.zeros(n, int)), "passed": _lists(np.zeros(0, np.int32), np.zeros(n, int)),
        "det_category": _lists(names[det_class[order]], counts_per_image), "det_score": _lists(score[order], counts_per_image),
        "det_matched": _lists(matched[order], counts_per_image), "det_ignored": _lists(np.zeros(len(order), np.int16), counts_per_image)}
    return pa.table(columns).cast(per_image.SCHEMA)


def study_grid(root: Path, trainsets: int = 5, testsets: int = 10, seeds: int = 3) -> engine.Study:
    """Runs of one model on `trainsets` training sets x `seeds`, each on `testsets` test sets; one
    claim per (training set, test set) pair: AP50 on the original test set minus on the other."""
    rng = np.random.default_rng(0)
    tests = ["test_original"] + [f"test_v{k}" for k in range(testsets - 1)]
    files = []
    for t in range(trainsets):
        for seed in range(seeds):
            table = pa.concat_tables([evaluation_rows(rng, test, 0.7 - 0.02 * k + 0.01 * t) for k, test in enumerate(tests)])
            path = root / "eval" / "m" / f"train{t}" / f"seed{seed}" / "per_image.parquet"
            run = {"model": "m", "trainset": f"train{t}", "seed": seed, "task": "detection"}
            write_parquet(path, table.replace_schema_metadata(per_image.metadata([f"class{k:02d}" for k in range(CLASSES)], run)))
            files.append(path)
    claims = {f"t{t}_{test}": {"metric": "AP" if k % 3 == 0 else "AP50", "expect": "greater", "cells": {"trainset": f"train{t}"},
                               "plus": [{"testset": "test_original"}], "minus": [{"testset": test}]}
              for t in range(trainsets) for k, test in enumerate(tests[1:])}
    config = validate({"seed": 0, "findings": {"claims": claims}}, partial=True)
    return engine.Study("grid", config, ["m"], files)


def bench_findings() -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        started = time.perf_counter()
        study = study_grid(root)
        made = time.perf_counter() - started
        started = time.perf_counter()
        rows = engine.run([study], root / "out", "make bench BENCH=findings")
        seconds = time.perf_counter() - started
    cells = len({(c.trainset, c.testset) for claim in study.claims for c in claim.cells})
    print(f"findings: {len(rows)} claims over {cells} cells x 3 seeds, {IMAGES:,} test images, {CLASSES} classes, "
          f"~{DETECTIONS} detections an image, 2,000 resamples (records generated in {made:.0f} s)")
    print(f"  engine {seconds:.0f} s = {seconds / GOAL_SECONDS:.2f}x the 5-minute goal")
