"""Saliency maps (bgshift.saliency): the known answer (a classifier that can only read the
background looks away from the object, one that can only read the object looks at it), every
detector family's map on its own pixels, and the foreground attention carried into the metric
rows and the findings' per-image records."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from bgshift import config, crops, evaluate, masks, saliency
from bgshift.findings import resample
from bgshift.io import RESULTS_ENV
from bgshift.train import classifier, family

SIDE = 64
COLOURS = np.array([[200, 60, 40], [40, 90, 200]])  # red, blue
CATEGORIES = [{"name": "a", "index": 0, "category_id": 1}, {"name": "b", "index": 1, "category_id": 2}]


def crop_picture(rng: np.random.Generator, cue: str) -> tuple[np.ndarray, np.ndarray, int]:
    """A grey disc or bar on a red or blue noisy ground; `cue` says which of the two is the class,
    the other is drawn at random, so it tells nothing."""
    label, other = (int(v) for v in rng.integers(2, size=2))
    ground, shape = (label, other) if cue == "background" else (other, label)
    rgb = np.clip(COLOURS[ground] + rng.normal(0, 25, (SIDE, SIDE, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((SIDE, SIDE), np.uint8)
    r = int(rng.integers(10, 15))
    cx, cy = (int(v) for v in rng.integers(r + 2, SIDE - r - 2, 2))
    if shape == 0:
        cv2.circle(mask, (cx, cy), r, 1, -1)
    else:
        cv2.rectangle(mask, (cx - r, cy - r // 2), (cx + r, cy + r // 2), 1, -1)
    rgb[mask > 0] = np.clip(150 + rng.normal(0, 25, (int(mask.sum()), 3)), 0, 255).astype(np.uint8)
    return rgb, mask, label


def crops_world(root: Path, cue: str) -> None:
    """A crops export (crops.write: ImageFolder and Parquet with each object's mask) of 240/60/60 crops."""
    rng = np.random.default_rng(0)

    def samples(split: str, count: int, first: int):
        for k in range(first, first + count):
            rgb, mask, label = crop_picture(rng, cue)
            yield ({"label": label, "image_id": k, "ann_id": k, "window": [0, 0, SIDE, SIDE], "mask": masks.encode(mask),
                    "variant": "original", "donor_id": None, "seed": 0, "set": cue, "split": split, "repeat": 0}, rgb)

    splits = {"train": samples("train", 240, 0), "val": samples("val", 60, 1000), "test": samples("test", 60, 2000)}
    crops.write(splits, {split: Counter() for split in splits}, CATEGORIES, root, 100)


@pytest.fixture(scope="module")
def attention_by_cue(tmp_path_factory):
    """Each cue's ResNet-18 (from scratch, 60 iterations: accuracy 1.0 on val), its Grad-CAM on 40 test crops."""
    root = tmp_path_factory.mktemp("saliency")
    settings = config.validate({"dataset": {"kind": "synthetic"}, "train": {"models": {"m": {
        "family": "classifier", "arch": "resnet18", "epochs": 6, "batch": 16, "lr": 0.05, "warmup_iters": 5,
        "schedule": "cosine", "checkpoint_every": 30}}}})["train"]["models"]["m"]
    out = {}
    for cue in ("background", "foreground"):
        crops_world(root / cue, cue)
        torch.manual_seed(0)
        done = classifier.train(settings, root / cue, root / f"run_{cue}", 0, False, CATEGORIES)
        assert done["best"]["accuracy"] > 0.9, (cue, done["best"])  # the cue was learnt
        explained = classifier.explainable(settings, root / f"run_{cue}" / "best.pt", CATEGORIES, False)
        rows, tiles = saliency.run(explained, "classification", {"test_x": root / cue}, 0, 40)
        out[cue] = rows, tiles
    return out


def mean_of(rows: list[dict], key: str) -> float:
    return float(np.mean([r[key] for r in rows if r["fg_share"] is not None]))


def test_a_classifier_that_reads_the_background_looks_away_from_the_object(attention_by_cue):
    """The known answer: where only the ground tells the class, the map's share on the object is no
    more than an even spread would give (the object's share of the crop); where only the object
    tells it, the share is far above both (measured: 0.07 against 0.10, and 0.36 against 0.10)."""
    background, _ = attention_by_cue["background"]
    foreground, _ = attention_by_cue["foreground"]
    assert mean_of(background, "fg_share") < 1.25 * mean_of(background, "fg_area")
    assert mean_of(foreground, "fg_share") > 2.5 * mean_of(foreground, "fg_area")
    assert mean_of(foreground, "fg_share") > mean_of(background, "fg_share") + 0.15
    drawn = [r for r in foreground if r["fg_share"] is not None]
    assert len(drawn) >= 20 and all(0 <= r["fg_share"] <= 1 for r in drawn)


def test_the_same_source_images_are_drawn_on_every_test_set_and_the_sheet_has_a_row_each(attention_by_cue):
    keys = [(unit, 0) for unit in range(50)]
    first, again = saliency.chosen(keys, 3, 5), saliency.chosen(list(reversed(keys)), 3, 5)
    assert [keys[k] for k in first] == [list(reversed(keys))[k] for k in again]  # the set's order does not matter
    assert saliency.chosen(keys, 4, 5) != first  # the seed does
    _, tiles = attention_by_cue["foreground"]
    picture = saliency.sheet({"test_a": tiles["test_x"][:3], "test_b": tiles["test_x"][3:5]}, 3, "title")
    assert picture.shape[0] > 2 * saliency.TILE and picture.shape[1] > 4 * saliency.TILE


def detection_set(root: Path, n: int = 3) -> Path:
    """A COCO test split: one disc with its mask, one box-only object, and an image without objects."""
    (root / "test").mkdir(parents=True)
    coco = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}
    for i in range(1, n + 1):
        rgb = np.full((96, 128, 3), 40, np.uint8)
        mask = np.zeros((96, 128), np.uint8)
        cv2.circle(mask, (40, 40), 16, 1, -1)
        rgb[mask > 0] = 220
        cv2.imwrite(str(root / "test" / f"{i}.png"), rgb)
        coco["images"].append({"id": i, "file_name": f"test/{i}.png", "width": 128, "height": 96, "source_image_id": 10 + i})
        if i < n:
            coco["annotations"] += [{"id": 2 * i, "image_id": i, "category_id": 1, "bbox": [24, 24, 33, 33], "area": 800, "iscrowd": 0,
                                     "segmentation": masks.encode(mask)},
                                    {"id": 2 * i + 1, "image_id": i, "category_id": 2, "bbox": [90, 60, 20, 20], "area": 400, "iscrowd": 0,
                                     "segmentation": []}]
    (root / "test.json").write_text(json.dumps(coco))
    return root.parent


@pytest.mark.parametrize("settings", [
    {"family": "frcnn", "arch": "fasterrcnn_mobilenet_v3_large_fpn", "min_size": 96, "max_size": 128},
    {"family": "retinanet", "arch": "retinanet_resnet18_fpn", "min_size": 96, "max_size": 128},
    {"family": "yolo", "model": "yolov8n.yaml"},
], ids=lambda s: s["family"])
def test_every_detector_family_draws_its_map_on_the_images_own_pixels(settings, tmp_path):
    """Random weights of the real architectures: a map over each picture's pixels, a share on the
    union of its objects (a box-only object counts its box), and none where a picture has no object."""
    settings = config.validate({"dataset": {"kind": "synthetic"}, "train": {"models": {"m": settings}}})["train"]["models"]["m"]
    models = family(settings["family"])
    checkpoint = tmp_path / "best.pt"
    if settings["family"] == "yolo":
        from ultralytics import YOLO

        YOLO("yolov8n.yaml").save(checkpoint)
    else:
        torch.save({"model": models_module(settings).build_model({**settings, "weights": "none"}, 2).state_dict()}, checkpoint)
    explained = models.explainable(settings, checkpoint, CATEGORIES, False)
    test_set = detection_set(tmp_path / "set" / "coco")
    rows, tiles = saliency.run(explained, "detection", {"test_s": test_set}, 0, 3)
    assert explained.method == "eigencam" and len(rows) == 3 and len(tiles["test_s"]) == 3
    with_objects = [r for r in rows if r["fg_area"] is not None]
    assert len(with_objects) == 2 and all(0 <= r["fg_share"] <= 1 for r in with_objects)
    disc, box = np.pi * 16 ** 2, 20 * 20
    assert with_objects[0]["fg_area"] == pytest.approx((disc + box) / (96 * 128), rel=0.05)
    assert [r["unit"] for r in rows] != [] and {r["unit"] for r in rows} <= {11, 12, 13}


def models_module(settings: dict):
    from bgshift.train import frcnn, retinanet

    return {"frcnn": frcnn, "retinanet": retinanet}[settings["family"]]


def test_score_turns_the_maps_into_metric_rows_and_the_findings_resample_them(tmp_path, monkeypatch):
    """fg_attention and fg_area are the means over a set's maps with a share; the per-image table
    carries each image's sums, so the findings' point value equals the metric row."""
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path))
    test_set = detection_set(tmp_path / "set" / "coco", n=4)
    (tmp_path / "run" / "best").mkdir(parents=True)
    (tmp_path / "run" / "best" / "test_s.json").write_text("[]")
    manifest = {"model": "m", "set": "original", "seed": 0, "task": "detection",
                "evaluations": [{"checkpoint": "best", "step": None, "test_set": "test_s", "detections": "best/test_s.json",
                                 "ground_truth": str(test_set / "coco" / "test.json")}]}
    (tmp_path / "run" / "manifest.json").write_text(json.dumps(manifest))
    maps = [{"testset": "test_s", "image": 1, "unit": 11, "ann_id": -1, "fg_share": 0.5, "fg_area": 0.1},
            {"testset": "test_s", "image": 2, "unit": 12, "ann_id": -1, "fg_share": 0.2, "fg_area": 0.1},
            {"testset": "test_s", "image": 3, "unit": 13, "ann_id": -1, "fg_share": None, "fg_area": 0.1},  # no mass
            {"testset": "test_s", "image": 4, "unit": 14, "ann_id": -1, "fg_share": None, "fg_area": None}]  # no object
    pq.write_table(pa.Table.from_pylist(maps, schema=saliency.SCHEMA), tmp_path / "saliency.parquet")
    config_ = {"evaluate": {"score_threshold": 0.5}}
    evaluate.score(config_, tmp_path / "run" / "manifest.json", tmp_path / "metrics.parquet", tmp_path / "per_image.parquet",
                   saliency=tmp_path / "saliency.parquet")
    rows = {r["metric"]: r["value"] for r in pq.read_table(tmp_path / "metrics.parquet").to_pylist()}
    assert rows["fg_attention"] == pytest.approx(0.35) and rows["fg_area"] == pytest.approx(0.1)
    table = pq.read_table(tmp_path / "per_image.parquet")
    assert table.column("maps").to_pylist() == [1, 1, 0, 0]
    evaluation = resample.Evaluation(table, np.array(sorted(table.column("unit").to_pylist())))
    assert resample.point(evaluation, "fg_attention") == pytest.approx(0.35)
    assert resample.point(evaluation, "fg_area") == pytest.approx(0.1)


def test_crops_carry_each_objects_mask_cut_with_it(tmp_path, monkeypatch):
    """The crop's mask is the object's mask through the same window and resize as its pixels."""
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path))
    mask = np.zeros((60, 80), np.uint8)
    mask[20:40, 30:50] = 1
    obj = {"segmentation": masks.encode(mask), "bbox": [30, 20, 20, 20]}
    corners = crops.window(obj["bbox"], 0.5, 80, 60)  # a 40-pixel square around the 20-pixel object
    cut = masks.decode(crops.cut_mask(obj, corners, 20, 80, 60))
    assert cut.shape == (20, 20) and cut.sum() == 100 and cut[5:15, 5:15].all()
    box_only = masks.decode(crops.cut_mask({"segmentation": None, "bbox": obj["bbox"]}, corners, 20, 80, 60))
    assert np.array_equal(box_only, cut)


@pytest.mark.parametrize("sign", [1, -1])
def test_eigencam_is_oriented_to_where_the_features_are_strong(sign, monkeypatch):
    """An SVD's sign is arbitrary: EigenCAM's map of a bright square on a dark, faintly textured
    ground comes out as the ground when the SVD returns the other sign (forced here: `sign` -1;
    pytorch-grad-cam's own EigenCAM then puts 0.00 of the map on the square). Oriented, it is the square."""
    import pytorch_grad_cam.eigen_cam
    from pytorch_grad_cam.utils import svd_on_activations

    from bgshift.train.interface import Explainable

    projection = svd_on_activations.get_2d_projection
    for module in (svd_on_activations, pytorch_grad_cam.eigen_cam):
        monkeypatch.setattr(module, "get_2d_projection", lambda activations: sign * projection(activations))

    class Features(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.maps = torch.nn.Identity()
            self.gain = torch.nn.Parameter(torch.ones(()))  # pytorch-grad-cam reads the device off a parameter

        def forward(self, batch):
            return self.maps(self.gain * torch.cat([batch, batch.flip(1)], 1))  # 6 channels, all strong on the square

    model = Features()
    method = saliency.oriented_eigencam()
    rng = np.random.default_rng(0)
    for _ in range(12):
        rgb = rng.integers(0, 30, (48, 64, 3), dtype=np.uint8)
        mask = np.zeros((48, 64), bool)
        y, x = int(rng.integers(0, 32)), int(rng.integers(0, 48))
        mask[y: y + 16, x: x + 16] = True
        rgb[mask] = rng.integers(180, 255, 3)
        explained = Explainable(model, [model.maps], lambda pixels: torch.from_numpy(pixels).permute(2, 0, 1).float().div(255)[None], "eigencam")
        with method(model=model, target_layers=[model.maps]) as cam:
            heat = saliency.saliency_map(cam, explained, saliency.Sample(0, 0, -1, rgb, mask))
        share, area = saliency.attention(heat, mask)
        assert share > 0.8 > area, (share, area)
