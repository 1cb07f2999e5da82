"""`make study` at reduced size: direction (a) reproduced by the real pipeline, and the farms
world that (b) rests on built as (b) needs it.

The lab and farms worlds of config/study/, shrunk (fewer scenes, one seed, only the training
sets the directions compare) so that CI can afford them; the full study with three seeds and
intervals is `make study` (docs/findings.md).
"""
from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from conftest import REPO, copy_workflow, snakemake


def reduced(world: str, sets: dict, variants: dict, claims: tuple = (), **changes) -> dict:
    """The world with fewer scenes, sets and seeds, and only the `claims` its sets can speak to."""
    cfg = yaml.safe_load((REPO / "config" / "study" / f"{world}.yaml").read_text())
    cfg["findings"]["claims"] = {name: cfg["findings"]["claims"][name] for name in claims}
    cfg["dataset"]["synthetic"]["num_images"] = 96
    cfg["variants"]["catalog"] = variants
    cfg["sets"] = {"train": sets, "test": ["original"]}
    cfg["train"]["seeds"] = [0]
    cfg["evaluate"] = {**cfg["evaluate"], "sweep_test_sets": [], **changes.pop("evaluate", {})}
    return {**cfg, **changes}


def best(workdir, world: str, metric: str) -> pd.Series:
    metrics = pd.read_parquet(workdir / "results" / "study" / world / "tables" / "metrics.parquet")
    rows = metrics[(metrics.checkpoint == "best") & (metrics.metric == metric) & (metrics.testset == "test_original")]
    return rows.set_index("trainset").value


@pytest.mark.slow
def test_reduced_study_reproduces_missing_annotations_and_builds_the_masking_world(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    lab = reduced("lab", {"original": {"variants": ["original"]}, "extreme": {"variants": ["original"], "drop": "extreme"}},
                  {"original": {}}, claims=("a_normal_above_extreme",), drops={"normal": {"kind": "normal"}, "extreme": {"kind": "extreme"}})
    farms = reduced("farms", {"control": {"variants": ["original"]}, "unl_black": {"variants": ["unl_black"]}},
                    {"original": {}, "unl_black": {}}, train={"models": {}})  # the data (b) rests on; no training
    for name, cfg in (("lab", lab), ("farms", farms)):
        (workdir / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
        snakemake(workdir, "--configfile", f"{name}.yaml", timeout=1500)
    ap50 = best(workdir, "lab", "AP50")
    print(f"AP50 normal {ap50['original']:.3f} extreme {ap50['extreme']:.3f}")
    assert ap50["original"] >= 0.3  # the originals-trained model learnt
    # (a) missing annotations cost AP50 (measured 0.753 vs 0.642; CPU training is deterministic, the
    # margin leaves room for other CPUs' arithmetic)
    assert ap50["original"] - ap50["extreme"] > 0.05
    # the world's own claim, measured by the findings rule: one seed gives no verdict, and says so
    findings = json.loads((workdir / "results" / "study" / "lab" / "findings.json").read_text())
    (claim,) = findings["claims"]
    assert claim["claim"] == "a_normal_above_extreme" and claim["effect"] == pytest.approx(ap50["original"] - ap50["extreme"])
    assert claim["verdict"] == "inconclusive" and "≥ 2 seeds" in (workdir / "results" / "study" / "lab" / "findings.md").read_text()
    # (b) is not trained here: at this size masking did not lower the count error (measured 4.79
    # control vs 5.04 black; the full study is inconclusive, docs/findings.md). What the finding
    # rests on is checked: the test farm counts every object, herd included, and the masked training
    # set has no unlabelled object left to learn from.
    farms = workdir / "results" / "study" / "farms"
    test_rows = pd.read_parquet(farms / "sets" / "test_original" / "parquet" / "test")
    test_objects = [o for objects in test_rows.objects for o in objects]
    assert test_objects and all(o["labelled"] for o in test_objects)
    factors = pd.read_parquet(farms / "ingest" / "world" / "factors.parquet").set_index("image_id")
    assert factors.loc[test_rows.image_id, "herd"].sum() > len(test_rows)  # a labelled herd stands in the test scenes
    masked = pd.read_parquet(farms / "sets" / "unl_black" / "parquet" / "train")
    control = pd.read_parquet(farms / "sets" / "control" / "parquet" / "train")
    assert any(not o["labelled"] for objects in control.objects for o in objects)
    assert not any(not o["labelled"] for objects in masked.objects for o in objects)
