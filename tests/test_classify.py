"""The classification track: crops from the variants, their two exports read back by
torchvision, ultralytics and `datasets`, the accuracy metrics and the backgrounds challenge on
constructed cases, and a classifier that learns."""
from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from bgshift import config, crops, masks, metrics
from bgshift.images import decode_rgb
from bgshift.train import classifier
from conftest import REPO, assert_reloads_from_own_checkpoint, built_once_weights_are_placed, run_stages

CLASSIFIER = {"family": "classifier", "arch": "resnet18", "epochs": 12, "batch": 16, "lr": 0.05, "warmup_iters": 5,
              "schedule": "cosine", "checkpoint_every": 15}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """96 scenes, three classes on three sites (correlated at 0.9), one or two objects each,
    the variants the crops of Xiao et al.'s test sets and the challenge need, exported."""
    root = tmp_path_factory.mktemp("classify")
    cfg = config.validate({
        "seed": 0, "dataset": {"kind": "synthetic", "synthetic": {
            "num_images": 96, "width": 160, "height": 120, "sites": ["meadow", "quarry", "beach"],
            "classes": ["sheep", "crate", "cone"], "objects_per_image": [1, 2], "background_objects": [0, 0],
            "confounder_strength": 0.9}},
        "segment": {"method": "gt"}, "splits": {"ratios": {"train": 0.6, "val": 0.15, "test": 0.25}},
        "variants": {"scenes_dir": str(REPO / "resources" / "backgrounds"),
                     "catalog": {"original": {}, "only_bg_t": {}, "only_fg": {}}},
        "sets": {"train": {"original": {"variants": ["original"]}}, "test": ["original", "only_bg_t", "only_fg"]},
        "classify": {"margin": 0.5, "side": 48, "challenge": {"backgrounds": 3}},
        "train": {"models": {"resnet": CLASSIFIER}},
    })
    run_stages(cfg, root)
    for name in ("original", "test_original", "test_only_bg_t", "test_only_fg"):
        crops.export(cfg["classify"], 50, root / "sets" / name, root / "ingest" / "annotations.parquet",
                     root / "ingest" / "categories.parquet", root / "crops" / name)
    crops.export_challenge(cfg["classify"], 50, cfg["seed"], root / "sets" / "test_original", root / "sets" / "test_only_bg_t",
                           root / "ingest" / "categories.parquet", root / "crops" / crops.CHALLENGE_SET)
    return cfg, root


def labelled_objects(set_dir: Path, split: str) -> int:
    table = pq.read_table(set_dir / "parquet" / split, columns=["objects"])
    return sum(1 for objs in table.column("objects").to_pylist() for o in objs if o["labelled"] and not o["iscrowd"])


def test_window_is_a_square_of_context_moved_inside_the_image():
    assert crops.window([40, 30, 20, 10], 0.5, 160, 120) == (30, 15, 70, 55)  # side 20 x 2, centred on (50, 35)
    assert crops.window([0, 0, 20, 10], 0.5, 160, 120) == (0, 0, 40, 40)  # moved inside at the corner
    assert crops.window([40, 30, 20, 10], 0, 160, 120) == (40, 25, 60, 45)  # margin 0: the box's longer side
    assert crops.window([2, 1, 30, 18], 1.0, 34, 20) == (0, 0, 34, 20)  # image smaller than the window: all of it


def test_crops_exported_as_imagefolder_and_parquet_are_read_back_by_torchvision_ultralytics_and_datasets(world):
    from torchvision.datasets import ImageFolder
    from ultralytics.data.utils import check_cls_dataset

    cfg, root = world
    names = ["sheep", "crate", "cone"]
    folder = root / "crops" / "original"
    summary = json.loads((folder / "summary.json").read_text())
    for split in ("train", "val"):
        assert summary["splits"][split]["samples"] == labelled_objects(root / "sets" / "original", split) > 0
    images = ImageFolder(folder / "imagefolder" / "train", allow_empty=True)
    assert sorted(images.classes) == sorted(names) and len(images) == summary["splits"]["train"]["samples"]
    table = datasets.load_dataset("parquet", data_files={"train": str(folder / "parquet" / "train" / "*.parquet")})["train"]
    assert table.features["label"].names == names and len(table) == len(images)
    files = pq.read_table(folder / "parquet" / "train", columns=["image"]).column("image").to_pylist()
    class_of_file = {f["path"]: names[label] for f, label in zip(files, table["label"])}
    for path, target in images.samples:  # the same file, the same class, in both exports
        assert class_of_file[Path(path).name] == images.classes[target]
    first = table[0]
    assert first["image"].size == (48, 48) and first["variant"] == "original" and first["split"] == "train"
    info = check_cls_dataset(str(folder / "imagefolder"))
    assert info["nc"] == 3 and sorted(info["names"].values()) == sorted(names)


def test_whole_image_samples_take_images_of_one_object_and_count_the_others(world, tmp_path):
    cfg, root = world
    settings = {**cfg["classify"], "window": "image"}
    summary = crops.export(settings, 50, root / "sets" / "test_original", root / "ingest" / "annotations.parquet",
                           root / "ingest" / "categories.parquet", tmp_path / "whole")["test"]
    objects = [[o for o in objs if o["labelled"]] for objs in
               pq.read_table(root / "sets" / "test_original" / "parquet" / "test", columns=["objects"]).column("objects").to_pylist()]
    single = [objs[0] for objs in objects if len(objs) == 1]
    assert summary["samples"] == len(single) > 0
    assert summary["images_left_out"] == {"several labelled objects": sum(len(objs) > 1 for objs in objects)}
    rows = pq.read_table(tmp_path / "whole" / "parquet" / "test").to_pylist()
    assert [r["ann_id"] for r in rows] == [o["ann_id"] for o in single] and all(r["window"] == [0, 0, 160, 120] for r in rows)


def test_background_only_crops_are_cut_where_the_removed_object_was(world):
    """Only-BG-T rows list no objects; their crops come from the source boxes, with the class of
    the object that was there, and show no object pixels (Xiao et al.'s Only-BG-T)."""
    cfg, root = world
    original = pq.read_table(root / "crops" / "test_original" / "parquet" / "test").to_pylist()
    background = pq.read_table(root / "crops" / "test_only_bg_t" / "parquet" / "test").to_pylist()
    assert [(r["image_id"], r["ann_id"], r["label"], r["window"]) for r in background] == \
           [(r["image_id"], r["ann_id"], r["label"], r["window"]) for r in original]
    differ = [np.abs(decode_rgb(a["image"]["bytes"]).astype(int) - decode_rgb(b["image"]["bytes"]).astype(int)).mean()
              for a, b in zip(original, background)]
    assert min(differ) > 3  # the object is gone from every background crop


def test_challenge_puts_each_foreground_on_k_other_backgrounds_with_its_own_pixels(world):
    cfg, root = world
    rows = pq.read_table(root / "crops" / crops.CHALLENGE_SET / "parquet" / "test").to_pylist()
    originals = pq.read_table(root / "crops" / "test_original" / "parquet" / "test").to_pylist()
    per_object = {}
    for r in rows:
        per_object.setdefault((r["image_id"], r["ann_id"]), []).append(r)
    assert sorted(per_object) == sorted((r["image_id"], r["ann_id"]) for r in originals)
    for (image_id, _), tries in per_object.items():
        donors = [t["donor_id"] for t in tries]
        assert len(donors) == 3 == len(set(donors)) and image_id not in donors
    # the foreground pixels of a challenge crop are the original's (compare inside the mask, JPEG noise allowed)
    sets_rows = {r["image_id"]: r for r in pq.read_table(root / "sets" / "test_original" / "parquet" / "test").to_pylist()}
    r = rows[0]
    source = sets_rows[r["image_id"]]
    obj = next(o for o in source["objects"] if o["ann_id"] == r["ann_id"])
    x0, y0, x1, y1 = r["window"]
    inside = crops.cut(masks.decode(obj["segmentation"]).astype(np.uint8) * 255, (x0, y0, x1, y1), 48) == 255
    original_crop = next(o for o in originals if (o["image_id"], o["ann_id"]) == (r["image_id"], r["ann_id"]))
    a, b = decode_rgb(r["image"]["bytes"]).astype(int), decode_rgb(original_crop["image"]["bytes"]).astype(int)
    assert np.abs(a - b)[inside].mean() < 8 < np.abs(a - b)[~inside].mean()


def test_challenge_accuracy_counts_a_foreground_only_if_right_on_every_background():
    correct = np.array([True, True, True, True, False, True, False, False, False])
    keys = ["a", "a", "a", "b", "b", "b", "c", "c", "c"]
    assert metrics.challenge_accuracy(correct, keys) == pytest.approx(1 / 3)  # a passes; b fails once; c always
    assert metrics.challenge_accuracy(np.ones(4, bool), [1, 1, 2, 2]) == 1.0


def test_classification_rows_on_constructed_predictions(world):
    cfg, root = world
    truth = root / "crops" / "test_original" / "parquet" / "test"
    labels = pq.read_table(truth, columns=["label"]).column("label").to_pylist()
    wrong = {0, 1}  # the first two samples predicted as the next class
    predictions = [{"index": i, "label": (y + 1) % 3 if i in wrong else y} for i, y in enumerate(labels)]
    rows = dict(metrics.classification_rows(metrics.classification_outcomes(truth, predictions[::-1])))  # order of records does not matter
    assert rows["accuracy"] == pytest.approx(1 - 2 / len(labels))
    names = ["sheep", "crate", "cone"]
    for k, name in enumerate(names):
        of_class = [i for i, y in enumerate(labels) if y == k]
        if of_class:
            assert rows[f"accuracy/{name}"] == pytest.approx(sum(i not in wrong for i in of_class) / len(of_class))
    assert sum(v for m, v in rows.items() if m.startswith("confusion/")) == len(labels)
    off_diagonal = sum(v for m, v in rows.items() if m.startswith("confusion/") and m.split("/")[1] != m.split("/")[2])
    assert off_diagonal == 2 and "challenge_accuracy" not in rows
    assert not [m for m, _ in metrics.classification_rows(metrics.classification_outcomes(truth, predictions), confusion=False) if m.startswith("confusion/")]
    challenge = root / "crops" / crops.CHALLENGE_SET / "parquet" / "test"
    truth_labels = pq.read_table(challenge, columns=["label"]).column("label").to_pylist()
    first_wrong = [{"index": i, "label": (y + 1) % 3 if i == 0 else y} for i, y in enumerate(truth_labels)]
    challenged = dict(metrics.classification_rows(metrics.classification_outcomes(challenge, first_wrong)))
    foregrounds = len(truth_labels) // 3  # three backgrounds each
    assert challenged["challenge_accuracy"] == pytest.approx((foregrounds - 1) / foregrounds)  # one try wrong fails its foreground


def test_a_demo_sized_classifier_learns_far_above_chance(world, tmp_path):
    """ResNet-18 from scratch on the crops of ~100 objects: accuracy on test_original far above
    chance (1/3); an untrained or label-shuffled classifier scores about 0.33."""
    cfg, root = world
    torch.manual_seed(0)
    categories = sorted(pq.read_table(root / "ingest" / "categories.parquet").to_pylist(), key=lambda c: c["index"])
    done = classifier.train(cfg["train"]["models"]["resnet"], root / "crops" / "original", tmp_path, 0, False, categories)
    assert done["family"] == "classifier" and done["best"]["accuracy"] > 0.5
    predictor = classifier.load_predictor(cfg["train"]["models"]["resnet"], tmp_path / "best.pt", categories, cuda=False)
    truth = root / "crops" / "test_original" / "parquet" / "test"
    accuracy = dict(metrics.classification_rows(metrics.classification_outcomes(truth, predictor(truth))))["accuracy"]
    assert accuracy > 0.7, accuracy


def test_classifier_weights_from_cache_checkpoint_and_missing(tmp_path, monkeypatch):
    import torchvision.models as tvm

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    settings = config.validate({"train": {"models": {"m": {"family": "classifier", "arch": "mobilenet_v3_small", "weights": "torchvision"}}}},
                               partial=True)["train"]["models"]["m"]
    torch.manual_seed(0)
    imagenet = tvm.mobilenet_v3_small(weights=None)
    model = built_once_weights_are_placed(classifier.build_model, settings, tmp_path / "hub", "mobilenet_v3_small-047dcff4.pth", imagenet)
    assert model.classifier[-1].out_features == 3
    assert torch.equal(model.features[0][0].weight, imagenet.features[0][0].weight)
    assert_reloads_from_own_checkpoint(classifier.build_model, settings, model, tmp_path)
    resnet = {**settings, "arch": "resnet18", "weights": "none"}
    assert classifier.build_model(resnet, num_classes=5).fc.out_features == 5
    with pytest.raises(config.ConfigError, match="min_size"):  # the detectors' resize is no classifier setting
        config.validate({"train": {"models": {"m": {"family": "classifier", "min_size": 64}}}}, partial=True)
