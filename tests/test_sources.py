"""Multi-source datasets, on small stand-ins: VOC2007 + VOC2012 devkit roots (trainval of both for
training, VOC2007 test for testing) and COCO train2017 + val2017 jsons (val2017 as the test split),
read as one dataset without merging files; ids that repeat across sources stay apart; a file under
two sources is the duplicate it is; every total closes."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bgshift import config, ingest, splits
from bgshift.ingest.sources import ID_STRIDE
from conftest import gradient_image, memory_limit, save_jpeg
from test_ingest import voc_xml


def devkit(root: Path, year: int, names: list[str], test: list[str]) -> dict:
    """A VOC<year> folder: an image and an XML per name (every file's pixels its own), ImageSets lists."""
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    for index, name in enumerate(names):
        save_jpeg(root / "JPEGImages" / f"{name}.jpg", gradient_image(120, 90, seed=year * 100 + index))
        (root / "Annotations" / f"{name}.xml").write_text(voc_xml(f"{name}.jpg", 120, 90, [("dog", (11, 21, 40, 60), 0, 0)]))
    (root / "ImageSets" / "Main" / "trainval.txt").write_text("".join(f"{n}\n" for n in names if n not in test))
    sets = {"trainval": "ImageSets/Main/trainval.txt"}
    if test:
        (root / "ImageSets" / "Main" / "test.txt").write_text("".join(f"{n}\n" for n in test))
        sets["test"] = "ImageSets/Main/test.txt"
    return {"kind": "voc", "root": str(root), "image_sets": sets, "classes": ["dog"]}


def ingested(tmp_path: Path, dataset: dict, **settings) -> tuple[dict, dict, dict]:
    cfg = config.validate({"seed": 0, "dataset": dataset, **settings})
    with memory_limit():
        summary = ingest.run(cfg, tmp_path / "ingest")
    tables = {name: pq.read_table(tmp_path / "ingest" / f"{name}.parquet").to_pylist() for name in ("images", "annotations", "rejects")}
    return cfg, summary, tables


def test_voc2007_and_voc2012_are_one_dataset_with_voc2007_test_as_the_test_split(tmp_path):
    names = ["000001", "000002", "000003", "000004"]  # the same names in both years, other pictures
    dataset = {"kind": "sources", "sources": {"voc2007": devkit(tmp_path / "VOC2007", 2007, names, test=["000003", "000004"]),
                                              "voc2012": devkit(tmp_path / "VOC2012", 2012, names, test=[])}}
    cfg, summary, tables = ingested(tmp_path, dataset, splits={"method": "predefined", "predefined": {"trainval": "train"}})
    assert summary["images"] == {"input": 8, "ingested": 8, "rejected": 0, "without_labels": 0}
    assert summary["annotations"]["ingested"] == 8 and not tables["rejects"]
    ids = sorted(im["image_id"] for im in tables["images"])
    assert ids == [1, 2, 3, 4, ID_STRIDE + 1, ID_STRIDE + 2, ID_STRIDE + 3, ID_STRIDE + 4]  # VOC's own ids repeat: moved apart
    assert {a["image_id"] for a in tables["annotations"]} == set(ids)
    assert summary["sources"]["voc2012"] == {"kind": "voc", "id_offset": ID_STRIDE, "split": None, "images_input": 4, "images_ingested": 4}
    split_of = splits.assign(tables["images"], cfg["splits"], 0)
    assert [split_of[i] for i in ids] == ["train", "train", "test", "test"] + ["train"] * 4


def coco_json(path: Path, images_dir: Path, names: list[str], seed: int, first_ann: int = 1) -> Path:
    images, annotations = [], []
    for index, name in enumerate(names, start=1):
        if not (images_dir / name).exists():
            save_jpeg(images_dir / name, gradient_image(100, 80, seed=seed + index))
        images.append({"id": index, "file_name": name, "width": 100, "height": 80})
        annotations.append({"id": first_ann + index, "image_id": index, "category_id": 18, "bbox": [10, 10, 30, 20], "iscrowd": 0})
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 18, "name": "dog"}]}))
    return path


def test_coco_train_and_val_jsons_are_one_dataset_with_val_as_the_test_split(tmp_path):
    train = coco_json(tmp_path / "train.json", tmp_path / "train2017", ["a.jpg", "b.jpg", "c.jpg", "d.jpg"], seed=0)
    val = coco_json(tmp_path / "val.json", tmp_path / "val2017", ["e.jpg", "f.jpg"], seed=10)  # ids 1, 2 again
    dataset = {"kind": "sources", "sources": {
        "train2017": {"kind": "coco", "images": str(tmp_path / "train2017"), "annotations": str(train)},
        "val2017": {"kind": "coco", "images": str(tmp_path / "val2017"), "annotations": str(val), "split": "test"}}}
    cfg, summary, tables = ingested(tmp_path, dataset, splits={"method": "predefined", "ratios": {"train": 0.5, "val": 0.5, "test": 0}})
    assert summary["images"]["ingested"] == 6 and summary["annotations"]["ingested"] == 6 and summary["categories"] == 1
    assert sorted(a["ann_id"] for a in tables["annotations"]) == [2, 3, 4, 5, ID_STRIDE + 2, ID_STRIDE + 3]
    split_of = splits.assign(tables["images"], cfg["splits"], 0)
    assert {split_of[ID_STRIDE + 1], split_of[ID_STRIDE + 2]} == {"test"}
    assert sorted(split_of[i] for i in (1, 2, 3, 4)) == ["train", "train", "val", "val"]  # train2017 by ratio
    assert ingest.count_inputs(cfg) == 6 and len(ingest.input_files(cfg)) == 2
    listing = ingest.image_listing(cfg)
    save_jpeg(tmp_path / "val2017" / "g.jpg", gradient_image(100, 80, seed=99))  # an image added to the second source reruns ingest
    assert ingest.image_listing(cfg) != listing


def test_the_same_file_under_two_sources_is_a_duplicate_and_conflicting_classes_stop_ingest(tmp_path):
    train = coco_json(tmp_path / "train.json", tmp_path / "images", ["a.jpg", "b.jpg"], seed=0)
    again = coco_json(tmp_path / "again.json", tmp_path / "images", ["b.jpg"], seed=0)
    dataset = {"kind": "sources", "sources": {"one": {"kind": "coco", "images": str(tmp_path / "images"), "annotations": str(train)},
                                              "two": {"kind": "coco", "images": str(tmp_path / "images"), "annotations": str(again)}}}
    _, summary, tables = ingested(tmp_path, dataset)
    assert summary["images"] == {"input": 3, "ingested": 2, "rejected": 1, "without_labels": 0}
    assert [r["reason"] for r in tables["rejects"] if r["kind"] == "image"] == ["the same file as image id 2 (b.jpg)"]
    spec = json.loads(again.read_text())
    spec["categories"] = [{"id": 18, "name": "cat"}]
    again.write_text(json.dumps(spec))
    with pytest.raises(ingest.IngestError, match=r"source two: .* category id 18 is 'cat' here and 'dog' in an earlier source"):
        ingested(tmp_path / "conflict", dataset)
