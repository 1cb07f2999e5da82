"""Splits, drop schemes and the three exports, each read back by its real consumer."""
from __future__ import annotations

import json
from pathlib import Path
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from bgshift import cli, config, drops, export, images, io, masks, sets, splits
from conftest import COCO128, REPO, digest, gradient_image, needs, run_stages, save_jpeg, ultralytics_cache


def constructed_annotations():
    """Images with 1..5 labelled boxes (category = index % 2), plus an unlabelled and a crowd one."""
    anns, next_id = [], 1
    for image_id, n in enumerate([1, 2, 3, 4, 5], start=1):
        for k in range(n):
            anns.append({"ann_id": next_id, "image_id": image_id, "category_id": k % 2, "labelled": True, "iscrowd": False})
            next_id += 1
    anns.append({"ann_id": 100, "image_id": 5, "category_id": 0, "labelled": False, "iscrowd": False})
    anns.append({"ann_id": 101, "image_id": 5, "category_id": 0, "labelled": True, "iscrowd": True})
    return anns


@pytest.mark.parametrize("kind,fraction,expected", [("normal", 0, 0), ("easy", 0, 4), ("hard", 0, 6), ("extreme", 0, 10),
                                                    ("fraction", 0.4, 6), ("fraction_per_category", 0.5, 4 + 3)])
def test_drop_schemes_remove_exact_counts(kind, fraction, expected):
    anns = constructed_annotations()
    candidates = [a for a in anns if a["labelled"] and not a["iscrowd"]]
    dropped = drops.choose(kind, fraction, candidates, np.random.default_rng(0))
    assert len(dropped) == expected and not dropped & {100, 101}
    per_image = Counter(a["image_id"] for a in candidates if a["ann_id"] in dropped)
    sizes = Counter(a["image_id"] for a in candidates)
    if kind == "easy":
        assert all(per_image[i] == (1 if sizes[i] >= 2 else 0) for i in sizes)
    if kind == "hard":
        assert all(per_image[i] == (sizes[i] // 2 if sizes[i] >= 2 else 0) for i in sizes)
    if kind == "extreme":
        assert all(sizes[i] - per_image[i] == 1 for i in sizes)
    if kind == "fraction_per_category":
        per_cat = Counter(a["category_id"] for a in candidates if a["ann_id"] in dropped)
        assert per_cat == {0: 4, 1: 3}  # class 0 has 9 boxes, class 1 has 6: half of each, rounded down
    assert dropped == drops.choose(kind, fraction, candidates, np.random.default_rng(0))  # seeded


def test_drop_table_and_seed(tmp_path):
    import pyarrow as pa

    from bgshift.io import write_parquet

    anns = [{**a, "bbox": [0, 0, 1, 1], "area": 1.0, "segmentation": None, "difficult": False, "truncated": False}
            for a in constructed_annotations()]
    from bgshift.ingest.tables import ANNOTATIONS_SCHEMA

    write_parquet(tmp_path / "a.parquet", pa.Table.from_pylist(anns, schema=ANNOTATIONS_SCHEMA))
    cfg = {"seed": 1, "drops": {"normal": {"kind": "normal", "fraction": 0.5}, "easy": {"kind": "easy", "fraction": 0.5},
                                "hard": {"kind": "hard", "fraction": 0.5}}}
    shares = drops.run(cfg, tmp_path / "a.parquet", tmp_path / "d.parquet", tmp_path)
    assert shares == {"normal": 0.0, "easy": round(100 * 4 / 15, 2), "hard": 40.0}
    table = (tmp_path / "drop_statistics.csv").read_text().splitlines()
    assert table[0] == "scheme,kind,annotations,dropped,dropped_percent" and "hard,hard,15,6,40.0" in table
    first = drops.dropped_ids(tmp_path / "d.parquet")
    # the table itself, against the scheme's definition: easy drops one box of each image with two or more
    image_of = {a["ann_id"]: a["image_id"] for a in anns}
    rows = pq.read_table(tmp_path / "d.parquet").to_pylist()
    assert all(r["image_id"] == image_of[r["ann_id"]] for r in rows)
    assert {scheme: len(first.get(scheme, ())) for scheme in cfg["drops"]} == {"normal": 0, "easy": 4, "hard": 6}
    assert sorted(Counter(image_of[i] for i in first["easy"]).items()) == [(2, 1), (3, 1), (4, 1), (5, 1)]
    drops.run({**cfg, "seed": 2}, tmp_path / "a.parquet", tmp_path / "d2.parquet", tmp_path)
    assert drops.dropped_ids(tmp_path / "d2.parquet")["easy"] != first["easy"]


def test_a_categories_scheme_removes_every_annotation_of_the_named_classes_and_nothing_else(tmp_path):
    """The context-class experiment's drop: with "sea" (class 1) named, the 6 labelled class-1 boxes
    go, the 9 class-0 ones, the unlabelled and the crowd one stay as they were; an unknown class
    stops the job naming the scheme, the class and the dataset's classes."""
    from bgshift.ingest.tables import ANNOTATIONS_SCHEMA
    from bgshift.io import write_parquet

    anns = [{**a, "bbox": [0, 0, 1, 1], "area": 1.0, "segmentation": None, "difficult": False, "truncated": False}
            for a in constructed_annotations()]
    write_parquet(tmp_path / "a.parquet", pa.Table.from_pylist(anns, schema=ANNOTATIONS_SCHEMA))
    pq.write_table(pa.table({"category_id": [0, 1], "name": ["whale", "sea"], "index": [0, 1]}), tmp_path / "categories.parquet")
    cfg = {"seed": 0, "drops": {"no_sea": {"kind": "categories", "categories": ["sea"], "fraction": 0.5}}}
    assert drops.run(cfg, tmp_path / "a.parquet", tmp_path / "d.parquet", tmp_path) == {"no_sea": 40.0}
    removed = drops.dropped_ids(tmp_path / "d.parquet")["no_sea"]
    assert removed == {a["ann_id"] for a in anns if a["category_id"] == 1 and a["labelled"] and not a["iscrowd"]} and len(removed) == 6
    cfg["drops"]["no_sea"]["categories"] = ["sky"]
    with pytest.raises(ValueError, match=r"drops.no_sea.categories: \['sky'\] \(the dataset's classes: \['sea', 'whale'\]"):
        drops.run(cfg, tmp_path / "a.parquet", tmp_path / "d.parquet", tmp_path)


def test_ratio_group_and_predefined_splits():
    imgs = [{"image_id": i, "group": "a" if i <= 30 else "b", "split": None} for i in range(1, 41)]
    ratio = splits.assign(imgs, {"method": "ratio", "ratios": {"train": 0.5, "val": 0.25, "test": 0.25}}, seed=0)
    assert Counter(ratio.values()) == {"train": 20, "val": 10, "test": 10}
    assert ratio == splits.assign(imgs, {"method": "ratio", "ratios": {"train": 0.5, "val": 0.25, "test": 0.25}}, seed=0)
    group = splits.assign(imgs, {"method": "group", "test_groups": ["b"], "val_groups": [],
                                 "ratios": {"train": 0.8, "val": 0.2, "test": 0}}, seed=0)
    assert {i for i, s in group.items() if s == "test"} == set(range(31, 41))
    assert Counter(s for i, s in group.items() if i <= 30) == {"train": 24, "val": 6}
    with pytest.raises(ValueError, match=r"name groups \['mars'\] that no image has"):
        splits.assign(imgs, {"method": "group", "test_groups": ["mars"], "val_groups": [], "ratios": {"train": 1, "val": 0}}, 0)
    pre = [{**im, "split": "trainval" if im["image_id"] % 2 else "test"} for im in imgs]
    got = splits.assign(pre, {"method": "predefined", "predefined": {"trainval": "train"}, "ratios": {}}, seed=0)
    assert all(got[i] == ("train" if i % 2 else "test") for i in got)


def test_ratios_are_normalised_and_groups_can_hold_out_validation_too():
    imgs = [{"image_id": i, "group": "abc"[i % 3], "split": None} for i in range(1, 61)]
    weights = splits.assign(imgs, {"method": "ratio", "ratios": {"train": 6, "val": 2, "test": 2}}, seed=3)
    assert Counter(weights.values()) == {"train": 36, "val": 12, "test": 12}  # 6:2:2 of 60, not 6 and 2 as shares
    held = splits.assign(imgs, {"method": "group", "test_groups": ["a"], "val_groups": ["b"],
                                "ratios": {"train": 0.8, "val": 0.2, "test": 0}}, seed=0)
    assert all(held[im["image_id"]] == {"a": "test", "b": "val", "c": "train"}[im["group"]] for im in imgs)


def test_predefined_splits_keep_their_own_and_split_the_rest_by_ratio():
    imgs = [{"image_id": i, "group": None, "split": "test" if i <= 10 else None} for i in range(1, 41)]
    got = splits.assign(imgs, {"method": "predefined", "predefined": {}, "ratios": {"train": 0.5, "val": 0.5}}, seed=0)
    assert all(got[i] == "test" for i in range(1, 11))
    assert Counter(got[i] for i in range(11, 41)) == {"train": 15, "val": 15}
    with pytest.raises(ValueError, match=r"predefined splits \['holdout'\] are not train/val/test"):
        splits.assign([{**imgs[0], "split": "holdout"}], {"method": "predefined", "predefined": {}, "ratios": {"train": 1}}, seed=0)


def test_splits_table_records_every_image_its_split_and_group(tmp_path):
    import pyarrow as pa

    from bgshift.io import write_parquet

    imgs = [{"image_id": i, "group": "ab"[i % 2], "split": None} for i in range(1, 21)]
    write_parquet(tmp_path / "images.parquet", pa.Table.from_pylist(imgs))
    counts = splits.run({"seed": 0, "splits": {"method": "group", "test_groups": ["a"], "val_groups": [],
                                               "ratios": {"train": 0.8, "val": 0.2}}}, tmp_path / "images.parquet", tmp_path / "s.parquet")
    assert counts == {"train": 8, "val": 2, "test": 10}
    rows = pq.read_table(tmp_path / "s.parquet").to_pylist()
    assert [(r["image_id"], r["group"]) for r in rows] == [(im["image_id"], im["group"]) for im in imgs]
    assert splits.load(tmp_path / "s.parquet") == {r["image_id"]: r["split"] for r in rows}


DEMO = config.load(REPO / "config" / "config.yaml")


@pytest.fixture(scope="module")
def demo_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("sets")
    cfg = config.validate({
        "seed": 5, "dataset": {"kind": "synthetic", "synthetic": {"num_images": 16, "objects_per_image": [2, 4]}},
        "segment": {"method": "gt"}, "splits": {"method": "group", "test_groups": ["quarry"], "ratios": {"train": 0.75, "val": 0.25}},
        "drops": {"normal": {"kind": "normal"}, "hard": {"kind": "hard"}},
        "variants": {"scenes_dir": str(REPO / "resources" / "backgrounds"),
                     "catalog": {"original": {}, "bg_color": {"colours": {"red": "red"}}, "unl_black": {"drop": ["none", "hard"]}}},
        "sets": {"train": {"original": {"variants": ["original"]}, "hard": {"variants": ["original"], "drop": "hard"},
                           "hard_masked": {"variants": ["unl_black_hard"], "drop": "hard"},
                           "red_x2": {"variants": ["original", "bg_color_red"], "repeat": 2}},
                 "test": ["original", "bg_color_red"], "part_rows": 5},
    })
    return cfg, root, run_stages(cfg, root)


def test_exports_load_in_datasets_pycocotools_and_ultralytics(demo_sets):
    import datasets
    from pycocotools.coco import COCO
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    cfg, root, summaries = demo_sets
    for name, summary in summaries.items():
        folder = root / "sets" / name
        for split, counts in summary.items():
            parts = sorted((folder / "parquet" / split).glob("part-*.parquet"))
            assert len(parts) == max(1, -(-counts["images"] // 5))  # part_rows = 5
            ds = datasets.load_dataset("parquet", data_files=[str(p) for p in parts], split="train")
            assert isinstance(ds.features["image"], datasets.Image) and len(ds) == counts["images"]
            first = ds[0]
            assert first["image"].size == (first["width"], first["height"]) and first["set"] == name and first["split"] == split
            coco = COCO(str(folder / "coco" / f"{split}.json"))
            assert len(coco.getImgIds()) == counts["images"] and len(coco.getAnnIds()) == counts["annotations"]
            labelled = sum(o["labelled"] for row in ds for o in row["objects"])
            assert labelled == counts["annotations"]
            for ann in coco.loadAnns(coco.getAnnIds()[:5]):
                img = coco.loadImgs(ann["image_id"])[0]
                assert coco.annToMask(ann).shape == (img["height"], img["width"])
                assert (folder / "coco" / img["file_name"]).is_file()
        data = check_det_dataset(str(folder / "yolo" / "data.yaml"))
        assert data["names"] == {0: "sheep", 1: "crate", 2: "cone"}
        for split in summary:
            yolo = YOLODataset(img_path=str(folder / "yolo" / "images" / split), data=data, task="detect", augment=False)
            assert len(yolo.labels) == summary[split]["images"]
            assert sum(len(lb["cls"]) for lb in yolo.labels) == summary[split]["yolo_labels"] == summary[split]["annotations"]


def test_coco_and_yolo_labels_are_the_labelled_parquet_objects_exactly(demo_sets, tmp_path):
    """Image by image: COCO annotations (ids 1..N, as COCOeval needs) and YOLO lines (normalised
    centre and size, or polygons inside the box) hold exactly the Parquet row's labelled objects."""
    cfg, root, _ = demo_sets
    folder = root / "sets" / "hard"
    rows = {(r["image_id"], r["variant"]): r for r in pq.read_table(folder / "parquet" / "train").to_pylist()}
    coco = json.loads((folder / "coco" / "train.json").read_text())
    assert [a["id"] for a in coco["annotations"]] == list(range(1, len(coco["annotations"]) + 1))
    by_image = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    index_of = {c["category_id"]: c["index"] for c in pq.read_table(root / "ingest" / "categories.parquet").to_pylist()}
    dropped_somewhere = False
    for image in coco["images"]:
        row = rows[(image["source_image_id"], image["variant"])]
        labelled = [o for o in row["objects"] if o["labelled"]]
        dropped_somewhere |= len(labelled) < len(row["objects"])
        anns = by_image.get(image["id"], [])
        assert [(a["source_ann_id"], a["category_id"], a["bbox"]) for a in anns] == \
            [(o["ann_id"], o["category_id"], o["bbox"]) for o in labelled]
        lines = (folder / "yolo" / "labels" / "train" / Path(image["file_name"]).name).with_suffix(".txt").read_text().split("\n")[:-1]
        expected = [(index_of[o["category_id"]], (o["bbox"][0] + o["bbox"][2] / 2) / image["width"], (o["bbox"][1] + o["bbox"][3] / 2) / image["height"],
                     o["bbox"][2] / image["width"], o["bbox"][3] / image["height"]) for o in labelled if not o["iscrowd"]]
        got = [tuple(float(v) for v in line.split()) for line in lines]
        assert [g[0] for g in got] == [e[0] for e in expected]
        assert np.allclose([g[1:] for g in got], [e[1:] for e in expected], atol=1e-6) or not expected
    assert dropped_somewhere  # the hard scheme left objects unlabelled in this split
    # polygon labels: the outline of each object's mask, inside its box
    polygons = sets.definitions({**cfg, "sets": {**cfg["sets"], "yolo_polygons": True}})["hard"]
    export.export(polygons, 5, True, root / "variants" / "manifest.json", root / "splits" / "splits.parquet", root / "drops" / "drops.parquet",
                root / "ingest" / "categories.parquet", tmp_path / "hard")
    for image in coco["images"][:6]:
        labelled = [o for o in rows[(image["source_image_id"], image["variant"])]["objects"] if o["labelled"] and not o["iscrowd"]]
        lines = (tmp_path / "hard" / "yolo" / "labels" / "train" / Path(image["file_name"]).name).with_suffix(".txt").read_text().split("\n")[:-1]
        assert len(lines) == len(labelled)
        for line, obj in zip(lines, labelled):
            values = [float(v) for v in line.split()]
            xs, ys = np.array(values[1::2]) * image["width"], np.array(values[2::2]) * image["height"]
            x, y, w, h = obj["bbox"]
            assert values[0] == index_of[obj["category_id"]] and len(xs) >= 3
            assert xs.min() >= x - 1 and xs.max() <= x + w + 1 and ys.min() >= y - 1 and ys.max() <= y + h + 1
            assert xs.max() - xs.min() > 0.5 * w and ys.max() - ys.min() > 0.5 * h  # the outline spans the object


def test_set_definitions_check_variants_and_drop_schemes():
    base = {"variants": {"catalog": {"original": {}}, "jpeg_quality": 90, "feather": 0, "scenes_dir": "resources/backgrounds"},
            "drops": {"normal": {"kind": "normal"}}, "seed": 0}
    with pytest.raises(ValueError, match=r"sets.train.a.variants: \['nope'\] are not defined variants; defined: \['original'\]"):
        sets.definitions({**base, "sets": {"train": {"a": {"variants": ["nope"], "drop": "normal", "repeat": 1}}, "test": []}})
    with pytest.raises(ValueError, match=r"sets.train.a.drop: 'hard' is not a scheme under drops; defined: \['normal'\]"):
        sets.definitions({**base, "sets": {"train": {"a": {"variants": ["original"], "drop": "hard", "repeat": 1}}, "test": []}})
    with pytest.raises(ValueError, match=r"sets.test: 'nope' is not a defined variant"):
        sets.definitions({**base, "sets": {"train": {}, "test": ["nope"]}})
    with pytest.raises(ValueError, match=r"sets.pooled.mix.variants: \['nope'\] are not defined variants"):
        sets.definitions({**base, "sets": {"train": {}, "test": [], "pooled": {"mix": {"variants": ["original", "nope"]}}}})
    with pytest.raises(ValueError, match=r"sets: duplicate set names \['test_original'\]"):
        sets.definitions({**base, "sets": {"train": {}, "test": ["original"], "pooled": {"original": {"variants": ["original"]}}}})
    with pytest.raises(ValueError, match=r"sets: duplicate set names \['test_original'\]"):
        sets.definitions({**base, "sets": {"train": {"test_original": {"variants": ["original"], "drop": "normal", "repeat": 1}},
                                           "test": ["original"]}})
    test = sets.definitions({**base, "sets": {"train": {}, "test": ["original"]}})["test_original"]
    assert (tuple(test["splits"]), test["drop"], test["repeat"]) == (("test",), "normal", 1)


def test_no_source_image_leaks_across_splits(demo_sets):
    cfg, root, summaries = demo_sets
    seen: dict[str, set[int]] = {}
    for name in summaries:
        for part in (root / "sets" / name / "parquet").glob("*/*.parquet"):
            for row in pq.read_table(part, columns=["image_id", "split"]).to_pylist():
                seen.setdefault(row["split"], set()).add(row["image_id"])
    assert seen["train"] and seen["val"] and seen["test"]
    assert not seen["train"] & seen["test"] and not seen["train"] & seen["val"] and not seen["val"] & seen["test"]
    groups = {r["image_id"]: r["group"] for r in pq.read_table(root / "ingest" / "images.parquet").to_pylist()}
    assert {groups[i] for i in seen["test"]} == {"quarry"} and {groups[i] for i in seen["train"]} == {"meadow"}


def test_dropped_annotations_become_unlabelled_and_can_be_masked(demo_sets):
    cfg, root, summaries = demo_sets
    dropped = drops.dropped_ids(root / "drops" / "drops.parquet")["hard"]
    assert dropped
    ann = {a["ann_id"]: a for a in pq.read_table(root / "ingest" / "annotations.parquet").to_pylist()}
    original = {r["image_id"]: r for r in pq.read_table(root / "sets" / "original" / "parquet" / "train").to_pylist()}
    masked_rows = pq.read_table(root / "sets" / "hard_masked" / "parquet" / "train").to_pylist()
    covered = 0
    for row in masked_rows:
        ids = {o["ann_id"] for o in row["objects"]}
        assert not ids & dropped  # dropped ones are covered, so no longer objects of the image
        assert ids == {o["ann_id"] for o in original[row["image_id"]]["objects"] if o["labelled"] and o["ann_id"] not in dropped}
        pixels = images.decode_rgb(row["image"]["bytes"])
        for ann_id in {o["ann_id"] for o in original[row["image_id"]]["objects"]} & dropped:
            import cv2

            inner = cv2.erode(masks.decode(ann[ann_id]["segmentation"]), np.ones((5, 5), np.uint8)).astype(bool)
            if inner.any():
                assert pixels[inner].mean() < 20  # painted black (JPEG noise aside)
                covered += 1
    assert covered > 0


def test_dropped_annotations_are_exported_as_unlabelled_id_by_id(demo_sets):
    """The heart of the missing-annotation experiments: in a set with a drop scheme, exactly the
    annotations drops.parquet marks dropped are labelled=false in Parquet and absent from the
    COCO json and the YOLO labels, in train only (val keeps every label for model selection)."""
    from pycocotools.coco import COCO

    cfg, root, summaries = demo_sets
    dropped = drops.dropped_ids(root / "drops" / "drops.parquet")["hard"]
    labelled_at_ingest = {a["ann_id"] for a in pq.read_table(root / "ingest" / "annotations.parquet").to_pylist() if a["labelled"]}
    folder = root / "sets" / "hard"
    for split in ("train", "val"):
        rows = pq.read_table(folder / "parquet" / split).to_pylist()
        objects = {o["ann_id"]: o["labelled"] for row in rows for o in row["objects"]}
        expected = {i: i in labelled_at_ingest and (split == "val" or i not in dropped) for i in objects}
        assert objects == expected and (split == "val" or any(i in dropped for i in objects))
        coco = COCO(str(folder / "coco" / f"{split}.json"))
        assert sorted(a["source_ann_id"] for a in coco.loadAnns(coco.getAnnIds())) == sorted(i for i, kept in expected.items() if kept)
        by_image = {row["image_id"]: sum(expected[o["ann_id"]] for o in row["objects"]) for row in rows}
        file_of = {img["source_image_id"]: img["file_name"] for img in coco.loadImgs(coco.getImgIds())}
        for image_id, count in by_image.items():
            label = folder / "yolo" / "labels" / split / (Path(file_of[image_id]).stem + ".txt")
            lines = label.read_text().splitlines() if label.is_file() else []
            assert len(lines) == count, (split, image_id)
    assert json.loads((folder / "summary.json").read_text())["drop"] == "hard"


def test_size_matched_baseline_repeats_train_images_only(demo_sets):
    cfg, root, summaries = demo_sets
    base, x2 = summaries["original"], summaries["red_x2"]
    assert x2["train"]["images"] == 2 * 2 * base["train"]["images"]  # two variants, each twice
    assert x2["val"]["images"] == 2 * base["val"]["images"]  # val is not repeated


def test_exports_are_byte_identical_for_the_same_seed(demo_sets, tmp_path):
    cfg, root, _ = demo_sets
    again = tmp_path / "again"
    run_stages(cfg, again)
    assert digest(root / "sets", skip=ultralytics_cache) == digest(again / "sets", skip=ultralytics_cache)


@needs(COCO128)
def test_coco128_round_trip(tmp_path):
    import datasets
    from pycocotools.coco import COCO

    cfg = config.validate({
        "dataset": {"kind": "coco", "images": str(COCO128 / "train2017"), "annotations": str(COCO128 / "annotations" / "instances_train2017.json")},
        "segment": {"method": "gt"}, "splits": {"ratios": {"train": 0.8, "val": 0.1, "test": 0.1}},
        "variants": {"scenes_dir": str(REPO / "resources" / "backgrounds"), "catalog": {"original": {}}},
        "sets": {"train": {"original": {"variants": ["original"]}}, "test": ["original"]},
    })
    summaries = run_stages(cfg, tmp_path)
    images_total = sum(c["images"] for s in summaries.values() for c in s.values())
    anns_total = sum(c["annotations"] for s in summaries.values() for c in s.values())
    assert images_total == 128 and anns_total == 939  # every image and annotation lands in exactly one split
    crowd = 0
    for name, summary in summaries.items():
        for split in summary:
            coco = COCO(str(tmp_path / "sets" / name / "coco" / f"{split}.json"))
            crowd += sum(a["iscrowd"] for a in coco.loadAnns(coco.getAnnIds()))
            ds = datasets.load_dataset("parquet", data_dir=str(tmp_path / "sets" / name / "parquet" / split), split="train")
            assert len(ds) == summary[split]["images"] and ds[0]["image"].mode == "RGB"
            assert summary[split]["yolo_labels"] == summary[split]["annotations"] - sum(a["iscrowd"] for a in coco.loadAnns(coco.getAnnIds()))
    assert crowd == 10


ODD_NAMES = ["big dog", "a/b\\c", "ünïcødé 🐑", 'it\'s "quoted": #1', "- dash"]


def test_unusual_class_names_survive_every_export(tmp_path):
    """Spaces, slashes, backslashes, unicode, quotes and YAML-special characters: the same
    names come back from the canonical tables, COCO, YOLO data.yaml (as ultralytics reads it)
    and the Parquet provenance of mixed_* variants."""
    from pycocotools.coco import COCO
    from ultralytics.data.utils import check_det_dataset

    data = tmp_path / "data"
    for i in range(12):
        save_jpeg(data / "images" / "train" / f"{i}.jpg", gradient_image(96, 64, seed=i))
        (data / "labels" / "train").mkdir(parents=True, exist_ok=True)
        cls = i % len(ODD_NAMES)  # a rectangle as a polygon, so it has a mask
        (data / "labels" / "train" / f"{i}.txt").write_text(f"{cls} 0.2 0.2 0.6 0.2 0.6 0.7 0.2 0.7\n")
    (data / "data.yaml").write_text(yaml.safe_dump({"path": str(data), "train": "images/train",
                                                    "names": dict(enumerate(ODD_NAMES))}, allow_unicode=True))
    cfg = config.validate({
        "dataset": {"kind": "yolo", "data_yaml": str(data / "data.yaml")}, "segment": {"method": "gt"},
        "splits": {"ratios": {"train": 0.5, "val": 0.25, "test": 0.25}},
        "variants": {"scenes_dir": str(REPO / "resources" / "backgrounds"), "catalog": {"original": {}, "mixed_same": {}}},
        "sets": {"train": {"original": {"variants": ["original"]}}, "test": ["mixed_same"]},
    })
    root = tmp_path / "run"
    run_stages(cfg, root)
    assert [c["name"] for c in pq.read_table(root / "ingest" / "categories.parquet").to_pylist()] == ODD_NAMES
    for name, split in (("original", "train"), ("test_mixed_same", "test")):
        coco = COCO(str(root / "sets" / name / "coco" / f"{split}.json"))
        assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ODD_NAMES
        assert check_det_dataset(str(root / "sets" / name / "yolo" / "data.yaml"))["names"] == dict(enumerate(ODD_NAMES))
    donor_classes = set(pq.read_table(root / "sets" / "test_mixed_same" / "parquet" / "test").column("donor_class").to_pylist())
    assert donor_classes and donor_classes <= set(ODD_NAMES)


def test_a_set_whose_split_holds_no_image_stops_its_export_naming_both(demo_sets, tmp_path, capsys, monkeypatch):
    """An empty val split used to export a 0-row Parquet part and a data.yaml naming an empty
    folder, with exit code 0; now the export stops, naming the set, the split and the counts."""
    cfg, root, _ = demo_sets
    table = pq.read_table(root / "splits" / "splits.parquet")
    moved = pa.array(["train" if s == "val" else s for s in table.column("split").to_pylist()])
    emptied = tmp_path / "splits.parquet"
    pq.write_table(table.set_column(table.schema.get_field_index("split"), "split", moved), emptied)
    definition = sets.definitions(cfg)["original"]
    args = (5, False, root / "variants" / "manifest.json", emptied, root / "drops" / "drops.parquet", root / "ingest" / "categories.parquet")
    with pytest.raises(export.EmptySplit, match=r"set original needs the val split \(training and model selection\), which holds "
                                                 r"no image \(.*splits.parquet: \{'train': \d+, 'val': 0, 'test': \d+\}\)"):
        export.export(definition, *args, tmp_path / "original")
    assert not (tmp_path / "original").exists()  # nothing half-written is left for a consumer
    export.export(sets.definitions(cfg)["test_original"], *args, tmp_path / "test_original")  # a test set needs no val
    assert (tmp_path / "test_original" / "coco" / "test.json").exists()
    splits_cli = ["splits", "--config-json", json.dumps({"seed": 0, "splits": {**cfg["splits"], "ratios": {"train": 1.0, "val": 0.0}}}),
                  "--images", str(root / "ingest" / "images.parquet"), "--out", str(tmp_path / "s.parquet")]
    monkeypatch.setenv(io.RESULTS_ENV, str(tmp_path))  # outputs stay inside the results folder
    cli.main(splits_cli)
    assert "warning: the val split holds no image" in capsys.readouterr().err


def test_the_drop_sheet_draws_kept_boxes_green_and_erased_ones_red(tmp_path, monkeypatch):
    """Each scheme's row shows its first images that lose a box; the bottom-right corner of every
    box drawn there is green where the scheme keeps it and red where it erases it."""
    from bgshift import ingest
    from bgshift.report import pictures
    from bgshift.montage import TITLE_HEIGHT

    monkeypatch.setenv(io.RESULTS_ENV, str(tmp_path))
    cfg = config.validate({"seed": 0, "dataset": {"kind": "synthetic", "synthetic": {"num_images": 6, "width": 160, "height": 120}},
                           "drops": {"extreme": {"kind": "extreme"}}})
    ingest.run(cfg, tmp_path / "ingest")
    drops.run(cfg, tmp_path / "ingest" / "annotations.parquet", tmp_path / "drops.parquet", tmp_path / "tables")
    assert pictures.drop_overlays(tmp_path / "ingest", tmp_path / "drops.parquet", tmp_path / "sheet.png", 2) == ["extreme"]
    sheet = images.read_rgb(tmp_path / "sheet.png")
    decisions = pq.read_table(tmp_path / "drops.parquet").to_pylist()
    first = min(d["image_id"] for d in decisions if d["dropped"])
    boxes = {a["ann_id"]: a["bbox"] for a in pq.read_table(tmp_path / "ingest" / "annotations.parquet").to_pylist()}
    scale = pictures.TILE / 160
    checked = 0
    for d in (d for d in decisions if d["image_id"] == first):
        x, y, w, h = boxes[d["ann_id"]]
        row, column = TITLE_HEIGHT + 4 + int((y + h) * scale) - 1, 4 + int((x + w) * scale) - 1
        expected = pictures.ERASED if d["dropped"] else pictures.KEPT
        assert np.abs(sheet[row, column].astype(int) - expected).max() < 60, (d, sheet[row, column])
        checked += 1
    assert checked >= 2
