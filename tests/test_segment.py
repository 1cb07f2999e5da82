"""Segmentation: each method against known masks, QC rules, weights loading, coco128 GrabCut IoU."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from bgshift import config, ingest, masks, segment
from bgshift.ingest import tables
from bgshift.segment import deeplab
from bgshift.weights import WeightsMissing
from conftest import COCO128, needs


def scene(seed=0, size=(120, 160)):
    """A textured background with two solid objects whose masks are known exactly."""
    rng = np.random.default_rng(seed)
    h, w = size
    img = (rng.normal(0, 12, (h, w, 3)) + np.array([70, 120, 60])).clip(0, 255).astype(np.uint8)
    m1 = np.zeros((h, w), np.uint8)
    m1[30:80, 20:70] = 1  # a square
    m2 = np.zeros((h, w), np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    m2[(yy - 60) ** 2 + (xx - 115) ** 2 < 25**2] = 1  # a disc
    img[m1.astype(bool)] = (230, 60, 40)
    img[m2.astype(bool)] = (240, 220, 200)
    return img, [m1, m2]


def test_grabcut_recovers_objects_inside_their_boxes():
    img, truth = scene()
    for m in truth:
        got = segment.grabcut_instance(img, masks.box_of(m), iterations=5, min_fill=0.1, margin=0.5, max_side=200)
        assert got is not None and masks.iou(got, m) > 0.85


def test_grabcut_retry_keeps_the_box_centre_and_degenerate_boxes_give_none():
    img, truth = scene()
    camouflaged = img.copy()
    camouflaged[truth[0].astype(bool)] = img[~truth[0].astype(bool)][: int(truth[0].sum())]  # object = ground texture
    got = segment.grabcut_instance(camouflaged, masks.box_of(truth[0]), iterations=5, min_fill=0.9, margin=0.5, max_side=200)
    assert got is not None and got[55, 45] == 1  # the retry seeds the centre as certain foreground
    assert segment.grabcut_instance(img, [10, 10, 2, 30], iterations=5, min_fill=0.1, margin=0.5, max_side=200) is None


def test_model_foreground_is_kept_inside_boxes_and_split_by_them():
    fg = np.ones((50, 50), np.uint8)
    big, small = [0, 0, 40, 40], [20, 20, 10, 10]
    parts = segment.split_by_boxes(fg, [big, small], margin=0.0)
    assert parts[1].sum() == 100 and parts[0].sum() == 1600 - 100  # overlap goes to the smaller box
    assert not (parts[0] & parts[1]).any() and parts[0][45, 45] == 0  # nothing outside the boxes


def make_ingested(tmp_path, **synthetic):
    cfg = config.validate({"dataset": {"kind": "synthetic", "synthetic": {"num_images": 8, **synthetic}}})
    ingest.run(cfg, tmp_path / "ingest")
    return cfg


def run(tmp_path, cfg, shard=0, model=None):
    out = tmp_path / "seg"
    result = segment.run_shard(cfg, tmp_path / "ingest", shard, out / "m.parquet", out / "stats.parquet", model)
    return result, pq.read_table(out / "m.parquet").to_pylist()


def test_contact_sheet_is_drawn_from_the_stored_masks_with_failures_framed(tmp_path):
    """The sheet job reads a shard's masks: one (image, overlay) pair per image, red frame on QC failures."""
    import cv2

    base = make_ingested(tmp_path)
    accept = tmp_path / "accept.csv"
    accept.write_text("image_id\n1\n")
    _, rows = run(tmp_path, config.validate({**base, "shard_size": 8, "segment": {"method": "gt", "qc": {"accept_list": str(accept)}}}))
    sheet = tmp_path / "sheet.png"
    segment.write_contact_sheet(tmp_path / "ingest", tmp_path / "seg" / "m.parquet", sheet, images=5, thumb=48)
    picture = cv2.imread(str(sheet))[..., ::-1]
    tile_h, tile_w = 48 + 4, 2 * 48 + 4 + 4  # a pair and the 4-pixel gap that make_grid puts before it
    assert picture.shape == (2 * tile_h + 4, 4 * tile_w + 4, 3)  # 5 images: 2 rows of 4
    for k, row in enumerate(rows[:5]):
        corner = picture[(k // 4) * tile_h + 4, (k % 4) * tile_w + 4]
        assert (tuple(corner) == (255, 0, 0)) == (not row["qc_pass"]), (k, row["qc_reason"], corner)
    assert sum(r["qc_pass"] for r in rows[:5]) == 1


def test_gt_masks_qc_accept_list_and_summary(tmp_path):
    base = make_ingested(tmp_path)
    accept = tmp_path / "accept.csv"
    accept.write_text("image_id,comment\n1,good\n3,fine\n")
    cfg = config.validate({**base, "shard_size": 8, "segment": {"method": "gt", "qc": {"accept_list": str(accept)}}})
    result, rows = run(tmp_path, cfg)
    assert result == {"images": 8, "qc_failed": 6}
    assert [r["image_id"] for r in rows if r["qc_pass"]] == [1, 3]
    assert all("not in segment.qc.accept_list" in r["qc_reason"] for r in rows if not r["qc_pass"])
    anns = {a["ann_id"]: a for a in pq.read_table(tmp_path / "ingest" / "annotations.parquet").to_pylist()}
    for r in rows:
        assert r["mask_source"] == "gt"
        union = np.zeros_like(masks.decode(r["foreground"]))
        for inst in r["instances"]:
            assert inst["segmentation"] == anns[inst["ann_id"]]["segmentation"] and inst["source"] == "gt"
            union |= masks.decode(inst["segmentation"])
        assert np.array_equal(union, masks.decode(r["foreground"]))
    # too-small foreground and fill ratio
    strict = config.validate({**base, "shard_size": 8, "segment": {"method": "gt", "qc": {"min_fg_pixels": 10**6}}})
    _, rows = run(tmp_path, strict)
    assert all(not r["qc_pass"] and "below segment.qc.min_fg_pixels=1000000" in r["qc_reason"] for r in rows)
    fill = config.validate({**base, "shard_size": 8, "segment": {"method": "gt", "qc": {"max_fill_ratio": 0.1}}})
    _, rows = run(tmp_path, fill)
    assert all("outside segment.qc fill range" in r["qc_reason"] for r in rows)
    summary = segment.summarise([tmp_path / "seg" / "m.parquet"], [tmp_path / "seg" / "stats.parquet"],
                                tmp_path / "ingest" / "categories.parquet", tmp_path / "ingest" / "annotations.parquet",
                                tmp_path / "sum", tmp_path / "tables")
    assert summary["qc_passed"] == 0 and len(summary["qc_failed"]) == 8


def test_auto_uses_gt_where_masks_exist_and_grabcut_where_hidden(tmp_path):
    base = make_ingested(tmp_path)
    cfg = config.validate({**base, "shard_size": 8, "segment": {"method": "auto", "ignore_masks_of_groups": ["quarry"],
                                                                 "deeplabv3": {"weights": "train"}}})
    _, rows = run(tmp_path, cfg)  # no trained model given: DeepLabv3 unavailable, GrabCut takes over
    images = {r["image_id"]: r for r in pq.read_table(tmp_path / "ingest" / "images.parquet").to_pylist()}
    for r in rows:
        expected = "grabcut" if images[r["image_id"]]["group"] == "quarry" else "gt"
        assert r["mask_source"] == expected
        scored = [i["iou_vs_gt"] for i in r["instances"]]
        assert all(s is None for s in scored) if expected == "gt" else all(s is not None for s in scored)
    summary = segment.summarise([tmp_path / "seg" / "m.parquet"], [tmp_path / "seg" / "stats.parquet"],
                                tmp_path / "ingest" / "categories.parquet", tmp_path / "ingest" / "annotations.parquet",
                                tmp_path / "sum", tmp_path / "tables")
    assert summary["mask_source"] == {"gt": 4, "grabcut": 4}
    table = (tmp_path / "tables" / "segmentation_quality.csv").read_text().splitlines()
    assert table[0] == "method,class,instances,mean_iou,median_iou" and any(line.startswith("grabcut,all,") for line in table)
    mean_rgb = json.loads((tmp_path / "sum" / "summary.json").read_text())["background_mean_rgb"]
    assert 40 < np.mean(mean_rgb) < 220
    from bgshift import images

    picture = images.read_rgb(tmp_path / "sum" / "mean_background.png")  # the per-pixel mean background
    assert picture.shape == (segment.MEAN_IMAGE_SIZE, segment.MEAN_IMAGE_SIZE, 3)
    assert np.abs(picture.reshape(-1, 3).mean(0) - mean_rgb).max() < 25  # same background as the colour mean


# ------------------------------------------------------------------ DeepLabv3
def test_missing_torchvision_weights_error_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    settings = config.validate({"segment": {"deeplabv3": {"weights": "torchvision"}}}, partial=True)["segment"]["deeplabv3"]
    with pytest.raises(WeightsMissing, match=r"place deeplabv3_mobilenet_v3_large-fc3c493d\.pth .* at .*hub/checkpoints"):
        deeplab.load(settings, torch.device("cpu"))


def test_torchvision_weights_load_from_cache_and_from_a_checkpoint_path(tmp_path, monkeypatch):
    import torchvision.models.segmentation as tv

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    torch.manual_seed(0)
    reference = tv.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21, aux_loss=True).eval()
    cached = deeplab.torchvision_weights_file("mobilenet_v3_large")
    cached.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), cached)
    own = tmp_path / "resources" / "weights" / "deeplab.pth"
    own.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), own)
    img, _ = scene()
    for weights in ("torchvision", str(own)):
        settings = config.validate({"segment": {"deeplabv3": {"weights": weights, "input_size": 64}}}, partial=True)["segment"]["deeplabv3"]
        seg = deeplab.load(settings, torch.device("cpu"))
        prob = seg.foreground_probability([img, img[:60]])
        assert prob[0].shape == img.shape[:2] and prob[1].shape == (60, 160)
        assert seg.kind == "torchvision" and 0 <= prob[0].min() and prob[0].max() <= 1
        for name, tensor in seg.model.state_dict().items():
            assert torch.equal(tensor, reference.state_dict()[name])


def test_trained_deeplab_segments_unseen_images(tmp_path):
    """The `train` path: fit on a few synthetic scenes, segment held-out ones of the same site."""
    cfg = make_ingested(tmp_path, num_images=20, sites=["meadow"], width=160, height=120)
    cfg = config.validate({**cfg, "seed": 0, "shard_size": 4, "segment": {
        "method": "deeplabv3", "deeplabv3": {"weights": "train", "train": {"input_size": 128, "epochs": 25, "colour_jitter": 0.3}}}})
    dataset = tables.Dataset.load(tmp_path / "ingest")
    first_16 = tables.Dataset.load(tmp_path / "ingest", image_ids=range(1, 17))
    samples = segment.MaskedImages(first_16, cfg["segment"], 128)
    model = tmp_path / "model.pt"
    segment.model.fit(samples, cfg["segment"]["deeplabv3"]["train"], 0, tmp_path / "run", model, torch.device("cpu"))
    checkpoint = torch.load(model, weights_only=True)  # a weights-only checkpoint
    history = checkpoint["loss"]  # per iteration: 2 batches of 8 per epoch
    assert len(history) == 50 and np.mean(history[-5:]) < np.mean(history[:5]) / 2
    assert checkpoint["arch"] == "DeepLabV3Plus" and checkpoint["input_size"] == 128 and not (tmp_path / "run").exists()
    _, rows = run(tmp_path, cfg, shard=4, model=model)  # images 17..20, never trained on
    assert [r["image_id"] for r in rows] == [17, 18, 19, 20] and {r["mask_source"] for r in rows} == {"deeplabv3"}
    ious = [i["iou_vs_gt"] for r in rows for i in r["instances"]]
    print(f"trained DeepLabV3+ mean IoU on held-out scenes: {np.mean(ious):.3f}")
    assert np.mean(ious) > 0.6
    assert len(dataset.images) == 20


# ------------------------------------------------------------------ coco128
@needs(COCO128)
def test_grabcut_on_coco128_against_ground_truth_polygons(tmp_path, capsys):
    cfg = config.validate({"shard_size": 24, "dataset": {"kind": "coco", "images": str(COCO128 / "train2017"),
                           "annotations": str(COCO128 / "annotations" / "instances_train2017.json")},
                           "segment": {"method": "grabcut"}})
    ingest.run(cfg, tmp_path / "ingest")
    result, rows = run(tmp_path, cfg, shard=0)
    assert result["images"] == 24
    segment.summarise([tmp_path / "seg" / "m.parquet"], [tmp_path / "seg" / "stats.parquet"],
                      tmp_path / "ingest" / "categories.parquet", tmp_path / "ingest" / "annotations.parquet",
                      tmp_path / "sum", tmp_path / "tables")
    table = (tmp_path / "tables" / "segmentation_quality.md").read_text()
    overall = [line for line in table.splitlines() if "| all " in line][0]
    mean_iou = float(overall.split("|")[4])
    with capsys.disabled():
        print(f"\nGrabCut vs COCO ground truth, first 24 coco128 images: mean IoU {mean_iou:.3f}\n{table}")
    # The floor is derived, not fitted: a GrabCut that gives up and returns its starting mask, the
    # box, scores the box's IoU with the object (mask area / box area). Where GrabCut has the pixels
    # to model colours from (COCO's large objects, box >= 96x96) it must beat that. Measured
    # 2026-12-04: large 0.614 vs the box's 0.531 (56 objects); medium 0.497 vs 0.529 and small
    # 0.519 vs 0.621, where the box is the better mask (docs/findings.md).
    annotations = {a["ann_id"]: a for a in pq.read_table(tmp_path / "ingest" / "annotations.parquet").to_pylist()}

    def box_area(instance):
        return annotations[instance["ann_id"]]["bbox"][2] * annotations[instance["ann_id"]]["bbox"][3]

    scored = [i for r in rows for i in r["instances"] if i["iou_vs_gt"] is not None]
    for name, low, high in (("small", 0, 32**2), ("medium", 32**2, 96**2), ("large", 96**2, np.inf)):
        band = [i for i in scored if low <= box_area(i) < high]
        grabcut = np.mean([i["iou_vs_gt"] for i in band])
        box = np.mean([masks.decode(annotations[i["ann_id"]]["segmentation"]).sum() / box_area(i) for i in band])
        print(f"{name} objects ({len(band)}): GrabCut mean IoU {grabcut:.3f}, the box itself {box:.3f}")
    assert len(band) >= 30 and grabcut > box  # the large objects
    assert mean_iou == pytest.approx(np.mean([i["iou_vs_gt"] for i in scored]), abs=1e-4)  # the table's "all" row


def test_an_instance_without_mask_pixels_fails_qc_whatever_the_method():
    """DeepLab leaving an object empty fails QC as GrabCut's missing mask does: the variants
    would otherwise paint background over a labelled object."""
    settings = config.validate({"dataset": {"kind": "synthetic"}, "segment": {"method": "deeplabv3"}})["segment"]
    shard = segment.Shard(settings, None)
    image = {"image_id": 1, "group": "meadow", "file_name": "meadow/000001.jpg"}
    anns = [{"bbox": [10, 10, 20, 20]}, {"bbox": [60, 10, 20, 20]}]
    probability = np.zeros((50, 100), np.float32)
    probability[12:28, 12:28] = 1.0  # the model sees the first object only
    ms, sources = shard.instance_masks(None, image, anns, "deeplabv3", probability)
    assert sources == ["deeplabv3", "none"] and ms[1] is None
    _, reason = shard.qc(image, anns, ms, ms[0])
    assert "1 of 2 instances have no mask" in reason and reason.endswith("(meadow/000001.jpg)")
    _, reason = shard.qc(image, anns, [ms[0], np.zeros_like(ms[0])], ms[0])  # an all-zero mask from any method
    assert "1 of 2 instances have no mask" in reason
