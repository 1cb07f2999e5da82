"""Evaluate-only models: a checkpoint of an earlier run evaluated again gives that run's own
detections and metrics; torchvision's COCO weights, read from a torch hub cache the test fills
(the real architecture, random weights), are loaded through the weight enum with their own head
and their classes mapped onto the dataset's by name and class_map; planning makes no training job."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
import torchvision.models.detection as tvd
import yaml

from bgshift import config, evaluate, pretrained, train
from bgshift.train import classifier
from bgshift.weights import WeightsMissing
from conftest import copy_workflow, planned_jobs, run_stages

FRCNN = {"family": "frcnn", "arch": "fasterrcnn_mobilenet_v3_large_fpn", "iterations": 8, "batch": 4, "lr": 0.01,
         "warmup_iters": 2, "min_size": 160, "max_size": 224, "checkpoint_every": 4,
         "model_kwargs": {"rpn_post_nms_top_n_train": 200, "rpn_pre_nms_top_n_train": 200, "box_batch_size_per_image": 64,
                          "rpn_pre_nms_top_n_test": 200, "rpn_post_nms_top_n_test": 200}}
COCO = tvd.FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A sheep-and-ball world exported with a test set, and one Faster R-CNN trained on it."""
    root = tmp_path_factory.mktemp("pretrained")
    cfg = config.validate({
        "seed": 0, "dataset": {"kind": "synthetic", "synthetic": {"num_images": 20, "width": 224, "height": 160,
                                                                  "classes": ["sheep", "ball"], "objects_per_image": [2, 3]}},
        "segment": {"method": "gt"}, "splits": {"ratios": {"train": 0.5, "val": 0.25, "test": 0.25}},
        "variants": {"catalog": {"original": {}}},
        "sets": {"train": {"original": {"variants": ["original"]}}, "test": ["original"]},
        "train": {"models": {"frcnn": FRCNN}}})
    run_stages(cfg, root)
    run_dir = root / "train" / "frcnn" / "original" / "seed0"
    train.run(cfg, "frcnn", root / "sets" / "original", 0, root / "ingest" / "categories.parquet", run_dir, run_dir / "done.json", "cpu")
    return cfg, root, run_dir


def evaluated(cfg: dict, root: Path, model: str, done: Path, out: Path) -> tuple[list, list[dict]]:
    """detect + score of one run on test_original: its best checkpoint's detections and its metric rows."""
    evaluate.detect(cfg, model, done, {"test_original": root / "sets" / "test_original"}, root / "ingest" / "categories.parquet", out, "cpu")
    evaluate.score(cfg, out / "manifest.json", out / "metrics.parquet", out / "per_image.parquet")
    rows = pq.read_table(out / "metrics.parquet").to_pylist()
    return json.loads((out / "best" / "test_original.json").read_text()), [r for r in rows if r["checkpoint"] == "best"]


def test_a_checkpoint_of_an_earlier_run_evaluated_as_it_is_gives_that_runs_detections_and_metrics(world, tmp_path):
    cfg, root, run_dir = world
    adopted = {**cfg, "train": {**cfg["train"], "models": {**cfg["train"]["models"],
                                                          "frcnn_again": {**FRCNN, "evaluate_only": True, "weights": str(run_dir / "best.pt")}}}}
    adopted = config.validate(adopted)
    done = tmp_path / "adopt" / "done.json"
    record = evaluate.adopt(adopted, "frcnn_again", root / "ingest" / "categories.parquet", done)
    assert record["label_map"] is None and record["set"] == pretrained.PRETRAINED  # the dataset's own classes
    own, own_rows = evaluated(cfg, root, "frcnn", run_dir / "done.json", tmp_path / "own")
    again, again_rows = evaluated(adopted, root, "frcnn_again", done, tmp_path / "again")
    assert own and again == own
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("model", "trainset", "step")} for r in rows]  # noqa: E731
    assert strip(again_rows) == strip(own_rows) and {r["trainset"] for r in again_rows} == {"pretrained"}


def _hub_with_random_coco_frcnn(hub: Path) -> Path:
    """The file torchvision's COCO_V1 enum loads, at the name it expects: the real architecture, random
    weights (three classes' scores raised, so boxes of mapped and unmapped classes both come out)."""
    torch.manual_seed(0)
    model = tvd.fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None, num_classes=len(COCO.meta["categories"]))
    with torch.no_grad():  # sheep (20), sports ball (37) and person (1) ahead of the other random classes
        model.roi_heads.box_predictor.cls_score.bias[[1, 20, 37]] += 2.0
    path = hub / "checkpoints" / Path(COCO.url).name
    path.parent.mkdir(parents=True)
    torch.save(model.state_dict(), path)
    return path


def test_torchvision_coco_weights_are_evaluated_with_their_head_and_coco_classes_mapped_by_name(world, tmp_path, monkeypatch):
    cfg, root, _ = world
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    settings = {**FRCNN, "evaluate_only": True, "weights": "torchvision",
                "model_kwargs": {**FRCNN["model_kwargs"], "box_score_thresh": 0.0, "box_detections_per_img": 300}}
    coco_cfg = config.validate({**cfg, "train": {**cfg["train"], "models": {"coco": settings}}})
    categories = root / "ingest" / "categories.parquet"
    with pytest.raises(WeightsMissing, match=f"place {Path(COCO.url).name} .* at {tmp_path}/torch/hub/checkpoints"):
        evaluate.adopt(coco_cfg, "coco", categories, tmp_path / "done.json")
    _hub_with_random_coco_frcnn(tmp_path / "torch" / "hub")
    with pytest.raises(config.ConfigError, match=r"dataset classes \['ball'\] map to no class of the model"):
        evaluate.adopt(coco_cfg, "coco", categories, tmp_path / "done.json")
    coco_cfg["train"]["models"]["coco"]["class_map"] = {"sports ball": "ball"}
    record = evaluate.adopt(coco_cfg, "coco", categories, tmp_path / "done.json")
    ids = {c["name"]: c["category_id"] for c in pq.read_table(categories).to_pylist()}
    assert record["label_map"] == {"20": ids["sheep"], "37": ids["ball"]} and record["model_classes"] == 80  # COCO's 80 named classes
    detections, rows = evaluated(coco_cfg, root, "coco", tmp_path / "done.json", tmp_path / "eval")
    # torchvision's own loader, through the enum, reading the file written above: the same boxes, labels 20 and 37 kept
    reference = tvd.fasterrcnn_mobilenet_v3_large_fpn(weights=COCO, min_size=160, max_size=224, **settings["model_kwargs"]).eval()
    test_coco = json.loads((root / "sets" / "test_original" / "coco" / "test.json").read_text())
    first = test_coco["images"][0]
    from bgshift.images import read_rgb

    pixels = torch.from_numpy(read_rgb(root / "sets" / "test_original" / "coco" / first["file_name"])).permute(2, 0, 1).float() / 255
    with torch.no_grad():
        out = reference([pixels])[0]
    kept = [(round(s, 5), {20: ids["sheep"], 37: ids["ball"]}[lab]) for s, lab in zip(out["scores"].tolist(), out["labels"].tolist())
            if lab in (20, 37) and s >= 0.001]
    ours = [(d["score"], d["category_id"]) for d in detections if d["image_id"] == first["id"]]
    assert kept and sorted(ours) == sorted(kept) and 1 in out["labels"].tolist()  # a person: there, and dropped
    assert {d["category_id"] for d in detections} <= {ids["sheep"], ids["ball"]}
    assert {r["metric"] for r in rows} >= {"AP", "AP50", "count_mae"}


def test_class_maps_refuse_names_that_are_on_neither_side():
    categories = [{"category_id": 7, "name": "sheep"}, {"category_id": 9, "name": "ball"}]
    model = {1: "sheep", 2: "sports ball", 3: "person"}
    assert pretrained.label_map(model, categories, {"sports ball": "ball", "person": None}, "m") == {1: 7, 2: 9}
    with pytest.raises(config.ConfigError, match=r"m.class_map: \['zebra'\] are not classes of the model"):
        pretrained.label_map(model, categories, {"zebra": "ball"}, "m")
    with pytest.raises(config.ConfigError, match=r"m.class_map: \['balls'\] are not dataset classes"):
        pretrained.label_map(model, categories, {"sports ball": "balls"}, "m")


def test_an_imagenet_classifier_maps_many_classes_onto_one_and_an_unmapped_top_class_is_wrong():
    """Xiao et al.'s scoring of ImageNet models on ImageNet-9: the model's top class among all of
    its classes, mapped (several onto one); a top class mapped to nothing counts as wrong (-1)."""

    class Split:
        def __len__(self):
            return 3

        def tensor(self, index, flip=False):
            return torch.tensor([float(index)])

    class Fixed(torch.nn.Module):  # sample i's top model class: 0, 1, then 3 (unmapped)
        def forward(self, x):
            logits = torch.full((len(x), 4), -5.0)
            logits[torch.arange(len(x)), torch.tensor([0, 1, 3])[x[:, 0].long()]] = 5.0
            return logits

    records = classifier.predict(Fixed(), Split(), torch.device("cpu"), label_map={0: 1, 1: 1, 2: 0}, classes=2)
    assert [r["label"] for r in records] == [1, 1, -1]
    assert records[0]["probabilities"][1] == pytest.approx(1.0, abs=1e-3)  # its mapped classes' sum


def test_planning_gives_an_evaluate_only_model_an_adopt_job_and_no_training(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "adopt.yaml").write_text(yaml.safe_dump({
        "dataset": {"kind": "synthetic", "synthetic": {"num_images": 12}}, "segment": {"method": "gt"},
        "variants": {"catalog": {"original": {}, "bg_gray": {}}},
        "sets": {"train": {"original": {"variants": ["original"]}}, "test": ["original", "bg_gray"]},
        "train": {"models": {"coco": {"family": "frcnn", "evaluate_only": True, "weights": "torchvision"},
                             "mine": {"family": "frcnn", "iterations": 4}}, "seeds": [0, 1]},
        "findings": {"claims": {"gray_costs_coco": {
            "metric": "AP50", "expect": "greater", "plus": [{"model": "coco", "trainset": "pretrained", "testset": "test_original"}],
            "minus": [{"model": "coco", "trainset": "pretrained", "testset": "test_bg_gray"}]}}}}))
    planned = planned_jobs(workdir, "--configfile", "adopt.yaml")
    assert planned["adopt"] == 1 and planned["train"] == 2  # the trained model's two seeds only
    assert planned["detect"] == planned["score"] == 3


def test_a_model_of_its_own_training_sets_plans_only_those_and_its_claims_must_name_them(tmp_path):
    """The BRL paper's COCO comparison trains only on the 50%-missing split: a model's own `sets`."""
    workdir = copy_workflow(tmp_path / "wf")
    study = {"dataset": {"kind": "synthetic", "synthetic": {"num_images": 12}}, "segment": {"method": "gt"},
             "drops": {"normal": {"kind": "normal"}, "hard": {"kind": "hard"}}, "variants": {"catalog": {"original": {}}},
             "sets": {"train": {"normal": {"variants": ["original"]}, "hard": {"variants": ["original"], "drop": "hard"}},
                      "test": ["original"]},
             "train": {"models": {"all": {"family": "frcnn", "iterations": 4},
                                  "hard_only": {"family": "frcnn", "iterations": 4, "sets": ["hard"]}}, "seeds": [0, 1]}}
    (workdir / "own.yaml").write_text(yaml.safe_dump(study))
    assert planned_jobs(workdir, "--configfile", "own.yaml")["train"] == 2 * 2 + 1 * 2
    study["findings"] = {"claims": {"x": {"metric": "AP50", "expect": "greater", "cells": {"testset": "test_original"},
                                          "plus": [{"model": "hard_only", "trainset": "normal"}], "minus": [{"model": "all", "trainset": "normal"}]}}}
    (workdir / "own.yaml").write_text(yaml.safe_dump(study))
    from conftest import snakemake

    proc = snakemake(workdir, "-n", "--configfile", "own.yaml", check=False)
    assert proc.returncode != 0 and "hard_only has no run on 'normal' (its training sets: ['hard'])" in proc.stdout + proc.stderr
