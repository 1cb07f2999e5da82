"""Findings: effect, interval and verdict checked on constructed studies with known answers."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from bgshift import findings, report
from bgshift.io import write_parquet


def test_interval_is_students_t_over_seeds():
    mean, low, high = findings.interval(np.array([0.1, 0.2, 0.3]))
    half = 4.302652729911275 * 0.1 / np.sqrt(3)  # t(0.975, 2 dof) x sample std / sqrt(n)
    assert (mean, low, high) == pytest.approx((0.2, 0.2 - half, 0.2 + half))
    assert findings.verdict(0.01, 0.3) == "holds" and findings.verdict(-0.3, -0.01) == "reversed"
    assert findings.verdict(-0.1, 0.2) == "inconclusive" and findings.verdict(float("nan"), float("nan")) == "inconclusive"


def _rows(model, trainset, seed, testset, metric, value, checkpoint="best", step=30):
    return (model, trainset, seed, checkpoint, step, testset, metric, value)


def _write(folder, rows):
    frame = pd.DataFrame(rows, columns=report.COLUMNS)
    write_parquet(folder / "tables" / "metrics.parquet", pa.Table.from_pandas(frame, preserve_index=False))


def test_seven_findings_on_constructed_studies(tmp_path):
    seeds = [0, 1, 2]
    lab = []
    for seed in seeds:
        noise = 0.01 * seed
        for trainset, ap50 in (("original", 0.8), ("easy", 0.7), ("hard", 0.6), ("extreme", 0.3)):
            lab.append(_rows("y", trainset, seed, "test_original", "AP50", ap50 + noise))
        for trainset, original, colour, same, rand in (("original", 0.8, 0.2, 0.7, 0.4), ("colour", 0.8, 0.7, 0.7, 0.4),
                                                        ("mixed_rand", 0.8, 0.2, 0.6, 0.8 - noise * 5)):
            if trainset != "original":
                lab.append(_rows("y", trainset, seed, "test_original", "AP50", original))
            lab += [_rows("y", trainset, seed, f"test_bg_color_{c}", "AP50", colour + noise) for c in ("red", "blue")]
            lab += [_rows("y", trainset, seed, "test_mixed_same", "AP50", same), _rows("y", trainset, seed, "test_mixed_rand", "AP50", rand)]
    farms = []
    for seed in seeds:
        for trainset, mae in (("control", 1.0), ("unl_black", 0.5), ("unl_color", 1.0 + 0.1 * (seed - 1)), ("unl_patch", 1.5)):
            farms.append(_rows("y", trainset, seed, "test_original", "count_mae", mae + 0.02 * seed))
            farms += [_rows("y", trainset, seed, "test_original", "count_mae", mae, f"epoch{e}", e) for e in (20, 25, 30)]
    brl = []  # BRL above focal by 0.05 on hard (every seed), by -0.02..+0.04 on extreme
    for seed in seeds:
        brl += [_rows("r_focal", "hard", seed, "test_original", "AP50", 0.6 + 0.01 * seed),
                _rows("r_brl", "hard", seed, "test_original", "AP50", 0.65 + 0.01 * seed),
                _rows("r_focal", "extreme", seed, "test_original", "AP50", 0.4),
                _rows("r_brl", "extreme", seed, "test_original", "AP50", 0.38 + 0.03 * seed)]
    classify = []  # a classifier leaning on backgrounds: 0.9 on originals, 0.6 on random backgrounds
    for seed in seeds:
        for test, acc in (("original", 0.9), ("mixed_same", 0.85), ("mixed_rand", 0.6), ("only_bg_t", 0.6), ("only_bg_b", 0.3 + 0.05 * seed),
                          ("no_fg", 0.5)):
            classify.append(_rows("c", "original", seed, f"test_{test}", "accuracy", acc))
        classify.append(_rows("c", "original", seed, "test_challenge", "challenge_accuracy", 0.4))
        for trainset, original, rand in (("only_fg", 0.8, 0.8), ("blurred", 0.9 + 0.01 * seed, 0.7), ("reduced", 0.85 + 0.05 * seed, 0.6)):
            classify += [_rows("c", trainset, seed, "test_original", "accuracy", original),
                         _rows("c", trainset, seed, "test_mixed_rand", "accuracy", rand)]
    _write(tmp_path / "lab", lab)
    _write(tmp_path / "farms", farms)
    _write(tmp_path / "brl", brl)
    _write(tmp_path / "classify", classify)
    write_parquet(tmp_path / "classify" / "ingest" / "categories.parquet", pa.table({"index": [0, 1, 2]}))  # three classes: chance 1/3
    rows = findings.run(tmp_path / "lab", tmp_path / "farms", tmp_path / "brl", tmp_path / "classify", tmp_path / "out", "y", (21, 30),
                        ["red", "blue"], ("r_brl", "r_focal"), "c", "make study")
    got = {(r.finding, r.claim): (round(r.effect, 6), r.verdict, r.seeds) for r in rows}
    assert got[("a", "AP50 normal > extreme")] == (0.5, "holds", 3)
    assert got[("a", "AP50 normal > easy")][:2] == (0.1, "holds")
    assert got[("b", "count MAE control > black (best checkpoint)")] == (0.5, "holds", 3)
    assert got[("b", "count MAE control > random colour (best checkpoint)")][1] == "inconclusive"
    assert got[("b", "count MAE control > real patch (best checkpoint)")] == (-0.5, "reversed", 3)
    assert got[("b", "count MAE control > black (mean over epochs 21-30)")][:2] == (0.5, "holds")  # epochs 25 and 30
    assert got[("c", "AP50 loss on colour backgrounds > 0 (trained on originals)")][:2] == (0.6, "holds")
    assert got[("c", "the loss narrows when colour backgrounds are trained on")][:2] == (0.51, "holds")  # 0.6 - (0.1 - noise)
    assert got[("d", "BG-gap > 0 (trained on originals)")][:2] == (0.3, "holds")
    assert got[("d", "BG-gap smaller when trained on mixed_rand")][0] == pytest.approx(0.5 - 0.05)
    assert got[("e", "AP50 BRL > focal (trained on hard)")] == (0.05, "holds", 3)
    assert got[("e", "AP50 BRL > focal (trained on extreme)")][:2] == (0.01, "inconclusive")
    assert got[("f", "BG-gap > 0 (accuracy, trained on originals)")][:2] == (0.25, "holds")
    assert got[("f", "accuracy on only_bg_t > chance (0.333)")][:2] == (round(0.6 - 1 / 3, 6), "holds")
    assert got[("f", "accuracy on only_bg_b > chance (0.333)")][1] == "inconclusive"  # 0.30, 0.35, 0.40 around 1/3
    assert got[("f", "accuracy on original > backgrounds-challenge accuracy")][:2] == (0.5, "holds")
    assert got[("g", "accuracy on test_original: trained on foreground only > on originals")][:2] == (-0.1, "reversed")
    assert got[("g", "accuracy on test_original: trained on reduced region > on originals")][1] == "inconclusive"  # -0.05, 0, +0.05
    assert got[("g", "accuracy on test_mixed_rand: trained on foreground only > on originals")][:2] == (0.2, "holds")
    text = (tmp_path / "out" / "findings.md").read_text()
    assert "Made by `make study`" in text and "| (a) Missing annotations | AP50 normal > extreme | +0.500 |" in text
    assert json.loads((tmp_path / "out" / "findings.json").read_text())[0]["finding"] == "a"
    assert all((tmp_path / "out" / "findings" / f"{key}.png").stat().st_size > 5_000 for key in "abcdefg")


def test_a_missing_condition_is_named(tmp_path):
    _write(tmp_path / "lab", [_rows("y", "original", 0, "test_original", "AP50", 0.5)])
    with pytest.raises(KeyError, match="no AP50 of training set 'easy' on 'test_original'"):
        findings.missing_annotations(findings.Study(tmp_path / "lab", "y"))
