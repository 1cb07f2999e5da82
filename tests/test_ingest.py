"""Ingest of COCO, VOC and YOLO datasets generated with known defects."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from bgshift import config, images, ingest, masks
from conftest import INGEST_MEMORY, gradient_image, memory_limit, save_jpeg


def run_ingest(tmp_path, dataset: dict, **ingest_settings):
    """ingest.run under a memory limit (hostile coordinates once made pycocotools allocate gigabytes)."""
    cfg = config.validate({"dataset": dataset, "ingest": ingest_settings})
    out = tmp_path / "out"
    with memory_limit():
        summary = ingest.run(cfg, out)
    tables = {name: pq.read_table(out / f"{name}.parquet").to_pylist() for name in ("images", "annotations", "categories", "rejects")}
    return summary, tables


def reasons(tables, kind):
    return [r["reason"] for r in tables["rejects"] if r["kind"] == kind]


def assert_accounted(summary):
    for kind in ("images", "annotations"):
        s = summary[kind]
        assert s["input"] == s["ingested"] + s["rejected"], summary


# --------------------------------------------------------------------- COCO
@pytest.fixture
def coco_dataset(tmp_path):
    root = tmp_path / "imgs"
    rgb = gradient_image(100, 80)  # every file differs: identical content is rejected as a duplicate
    save_jpeg(root / "good.jpg", rgb)
    save_jpeg(root / "crowd.jpg", gradient_image(100, 80, seed=1))
    save_jpeg(root / "wrongsize.jpg", gradient_image(100, 80, seed=2))
    save_jpeg(root / "dup.jpg", gradient_image(100, 80, seed=3))
    trunc = save_jpeg(root / "truncated.jpg", gradient_image(100, 80, seed=4))
    trunc.write_bytes(trunc.read_bytes()[:300])
    save_jpeg(tmp_path / "outside.jpg", gradient_image(100, 80, seed=5))
    Image.fromarray(rgb).convert("L").save(root / "gray.png")
    Image.fromarray(rgb).convert("RGBA").save(root / "rgba.png")
    Image.fromarray(rgb).convert("CMYK").save(root / "cmyk.jpg")
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(root / "deep.png")
    # raw 100x60 with a white square at x 10..30, y 5..25, shown rotated (EXIF 6)
    raw = np.zeros((60, 100, 3), np.uint8)
    raw[5:25, 10:30] = 255
    save_jpeg(root / "rotated_raw.jpg", raw, exif_orientation=6, quality=100)
    raw[59, 99] = 1
    save_jpeg(root / "rotated_shown.jpg", raw, exif_orientation=6, quality=100)
    crowd_mask = np.zeros((80, 100), np.uint8)
    crowd_mask[40:70, 10:90] = 1
    crowd_rle = masks.encode(crowd_mask)
    uncompressed = {"size": [80, 100], "counts": [int(c) for c in _rle_runs(crowd_mask)]}
    img = lambda i, name, w=100, h=80: {"id": i, "file_name": name, "width": w, "height": h}  # noqa: E731
    data = {
        "categories": [{"id": 3, "name": "car"}, {"id": 17, "name": "cat"}, {"id": 90, "name": "tooth brush / ü"}],
        "images": [
            img(1, "good.jpg"), img(2, "crowd.jpg"), img(3, "truncated.jpg"), img(4, "missing.jpg"),
            img(5, "wrongsize.jpg", 50, 50), img(6, "../outside.jpg"), img(7, str(tmp_path / "outside.jpg")),
            img(1, "dup.jpg"), img(8, "gray.png"), img(9, "rgba.png"), img(10, "cmyk.jpg"), img(11, "deep.png"),
            img(12, "rotated_raw.jpg", 100, 60), img(13, "rotated_shown.jpg", 60, 100),
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 10, 30, 20], "segmentation": [[10, 10, 40, 10, 40, 30, 10, 30]], "iscrowd": 0, "area": 600},
            {"id": 2, "image_id": 1, "category_id": 17, "bbox": [80, 60, 40, 40], "iscrowd": 0},  # clipped to 20x20
            {"id": 3, "image_id": 1, "category_id": 17, "bbox": [5, 5, 0, 10]},  # zero width
            {"id": 4, "image_id": 1, "category_id": 17, "bbox": [5, 5, -3, 10]},  # negative width
            {"id": 5, "image_id": 1, "category_id": 17, "bbox": [200, 200, 10, 10]},  # fully outside
            {"id": 6, "image_id": 1, "category_id": 99, "bbox": [5, 5, 10, 10]},  # unknown category
            {"id": 1, "image_id": 1, "category_id": 3, "bbox": [5, 5, 10, 10]},  # duplicate id
            {"id": 7, "image_id": 777, "category_id": 3, "bbox": [5, 5, 10, 10]},  # unknown image
            {"id": 8, "image_id": 3, "category_id": 3, "bbox": [5, 5, 10, 10]},  # image was rejected
            {"id": 9, "image_id": 2, "category_id": 90, "bbox": [10, 40, 80, 30], "segmentation": crowd_rle, "iscrowd": 1},
            {"id": 10, "image_id": 2, "category_id": 90, "bbox": [10, 40, 80, 30], "segmentation": uncompressed, "iscrowd": 1},
            {"id": 11, "image_id": 2, "category_id": 3, "bbox": [1, 1, 5, 5], "segmentation": [[1, 2]]},  # bad polygon
            {"id": 12, "image_id": 12, "category_id": 3, "bbox": [10, 5, 20, 20], "segmentation": [[10, 5, 30, 5, 30, 25, 10, 25]]},
            {"id": 13, "image_id": 13, "category_id": 3, "bbox": [35, 10, 20, 20]},
        ],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return {"kind": "coco", "images": str(root), "annotations": str(path)}


def _rle_runs(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO RLE counts (column-major runs starting with zeros)."""
    flat = mask.flatten(order="F")
    runs, current, length = [], 0, 0
    for v in flat:
        if v == current:
            length += 1
        else:
            runs.append(length)
            current, length = v, 1
    runs.append(length)
    return runs


def test_the_ingest_tests_memory_limit_bites():
    """The limit every ingest here runs under refuses an allocation far above it, and lifts after.
    It bounds the process's growth: heap space the process already holds and has freed may be
    reused, so the allocation tried is 8x the allowance (the hostile polygons asked for gigabytes)."""
    with pytest.raises(MemoryError), memory_limit():
        np.ones(8 * INGEST_MEMORY, np.uint8)
    assert np.ones(INGEST_MEMORY + 2**20, np.uint8).sum() == INGEST_MEMORY + 2**20


def test_coco_defects_are_rejected_with_reasons_and_counts_add_up(tmp_path, coco_dataset):
    summary, t = run_ingest(tmp_path, coco_dataset)
    assert_accounted(summary)
    assert summary["images"] == {"input": 14, "ingested": 8, "rejected": 6, "without_labels": 0}
    image_reasons = reasons(t, "image")
    for expected in ("unreadable image", "image file missing", "annotation says 50x50 but the file is 100x80",
                     "escapes the dataset root", "duplicate image id 1"):
        assert any(expected in r for r in image_reasons), (expected, image_reasons)
    assert sum("escapes the dataset root" in r for r in image_reasons) == 2  # ../ and absolute
    ann_reasons = reasons(t, "annotation")
    for expected in ("zero or negative size", "lies outside", "unknown category id 99", "duplicate annotation id 1",
                     "unknown image id 777", "its image 3 was rejected"):
        assert any(expected in r for r in ann_reasons), (expected, ann_reasons)
    assert summary["annotations"] == {"input": 14, "ingested": 7, "rejected": 7, "unlabelled": 0, "boxes_clipped": 1, "masks_dropped": 1}
    assert ingest.summary_line(summary, "out/rejects.parquet") == ("ingest: 8 of 14 images and 7 of 14 annotations kept; rejected "
                                                                   "6 images, 7 annotations, 1 masks (reasons: out/rejects.parquet)")
    by_id = {a["ann_id"]: a for a in t["annotations"]}
    assert by_id[2]["bbox"] == [80.0, 60.0, 20.0, 20.0]
    assert by_id[11]["segmentation"] is None and by_id[11]["bbox"] == [1.0, 1.0, 5.0, 5.0]  # box kept, mask dropped
    # crowd regions, compressed and uncompressed RLE, decode to the same mask
    assert by_id[9]["iscrowd"] and masks.area(by_id[9]["segmentation"]) == 30 * 80
    assert by_id[9]["segmentation"] == by_id[10]["segmentation"]
    # non-contiguous ids keep their id and get a contiguous index; odd names survive
    assert [(c["category_id"], c["index"], c["name"]) for c in t["categories"]] == [(3, 0, "car"), (17, 1, "cat"), (90, 2, "tooth brush / ü")]


def test_odd_pixel_formats_are_ingested(tmp_path, coco_dataset):
    _, t = run_ingest(tmp_path, coco_dataset)
    modes = {r["file_name"]: r["source_mode"] for r in t["images"]}
    assert modes["gray.png"] == "L" and modes["rgba.png"] == "RGBA" and modes["cmyk.jpg"] == "CMYK" and modes["deep.png"] == "I;16"
    for row in t["images"]:
        assert images.read_rgb(row["path"]).shape == (row["height"], row["width"], 3)


def test_exif_rotated_images_keep_boxes_on_their_object(tmp_path, coco_dataset):
    _, t = run_ingest(tmp_path, coco_dataset)
    rows = {r["image_id"]: r for r in t["images"]}
    by_image = {a["image_id"]: a for a in t["annotations"]}
    for image_id in (12, 13):  # labelled on raw pixels / on the displayed image
        row = rows[image_id]
        assert (row["width"], row["height"], row["orientation"]) == (60, 100, 6)
        assert by_image[image_id]["bbox"] == [35.0, 10.0, 20.0, 20.0]
        x, y, w, h = map(int, by_image[image_id]["bbox"])
        pixels = images.read_rgb(row["path"])
        assert pixels[y + 2 : y + h - 2, x + 2 : x + w - 2].min() > 200  # the white square
    mask = masks.decode(by_image[12]["segmentation"])
    assert mask.shape == (100, 60) and masks.box_of(mask) == [35.0, 10.0, 20.0, 20.0]


@pytest.mark.parametrize("orientation, raw_size", [(6, (80, 80)), (3, (100, 60)), (2, (100, 60))])
def test_a_turned_image_whose_size_does_not_tell_the_frame_needs_annotation_frame(tmp_path, orientation, raw_size):
    """A square quarter turn, a half turn or a mirror keeps the size, so the declared size cannot say
    whether the box was drawn on the stored or the turned pixels: auto rejects naming the setting;
    stored and oriented each put the box where that frame says (on the white square for stored)."""
    w, h = raw_size
    raw = np.zeros((h, w, 3), np.uint8)
    raw[5:25, 10:30] = 255  # the object, on the stored pixels
    save_jpeg(tmp_path / "imgs" / "turned.jpg", raw, exif_orientation=orientation, quality=100)
    (tmp_path / "c.json").write_text(json.dumps({
        "categories": [{"id": 1, "name": "box"}], "images": [{"id": 1, "file_name": "turned.jpg", "width": w, "height": h}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 5, 20, 20]}]}))
    dataset = {"kind": "coco", "images": str(tmp_path / "imgs"), "annotations": str(tmp_path / "c.json")}
    summary, t = run_ingest(tmp_path / "auto", dataset)
    assert summary["images"]["rejected"] == 1 and summary["annotations"]["rejected"] == 1
    assert re.search(rf"EXIF orientation {orientation} .* set ingest.annotation_frame to stored or oriented \(turned.jpg\)",
                     reasons(t, "image")[0])
    _, stored = run_ingest(tmp_path / "stored", dataset, annotation_frame="stored")
    x, y, bw, bh = map(int, stored["annotations"][0]["bbox"])
    pixels = images.read_rgb(stored["images"][0]["path"])
    assert pixels[y + 2 : y + bh - 2, x + 2 : x + bw - 2].min() > 200  # still on the object once turned
    _, oriented = run_ingest(tmp_path / "oriented", dataset, annotation_frame="oriented")
    assert oriented["annotations"][0]["bbox"] == [10.0, 5.0, 20.0, 20.0]  # taken as drawn on the turned pixels


def test_an_explicit_annotation_frame_refuses_a_size_of_the_other_frame(tmp_path, coco_dataset):
    summary, t = run_ingest(tmp_path, coco_dataset, annotation_frame="oriented")
    assert "annotation says 100x60 but the file is 60x100 (oriented pixels, ingest.annotation_frame) (rotated_raw.jpg)" in reasons(t, "image")
    assert {r["image_id"] for r in t["images"]} >= {13} and 12 not in {r["image_id"] for r in t["images"]}


def test_reject_mode_rejects_boxes_outside_instead_of_clipping(tmp_path, coco_dataset):
    summary, t = run_ingest(tmp_path, coco_dataset, invalid_boxes="reject")
    assert summary["annotations"]["boxes_clipped"] == 0
    assert any("extends outside" in r for r in reasons(t, "annotation"))
    assert 2 not in {a["ann_id"] for a in t["annotations"]}


def test_malformed_json_names_file_line_and_column(tmp_path):
    (tmp_path / "imgs").mkdir()
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [\n  {"id": 1,, }\n]}')
    with pytest.raises(ingest.IngestError, match=r"bad\.json: malformed JSON at line 2, column 12"):
        run_ingest(tmp_path, {"kind": "coco", "images": str(tmp_path / "imgs"), "annotations": str(bad)})


# ---------------------------------------------------------------------- VOC
def voc_xml(filename, w, h, objects):
    objs = "".join(
        f"<object><name>{name}</name><truncated>{tr}</truncated><difficult>{df}</difficult>"
        f"<bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for name, b, tr, df in objects
    )
    return f"<annotation><filename>{filename}</filename><size><width>{w}</width><height>{h}</height><depth>3</depth></size>{objs}</annotation>"


@pytest.fixture
def voc_dataset(tmp_path):
    root = tmp_path / "voc"
    (root / "Annotations").mkdir(parents=True)
    (root / "SegmentationObject").mkdir()
    (root / "ImageSets" / "Main").mkdir(parents=True)
    for seed, name in enumerate(("a", "b", "c")):
        save_jpeg(root / "JPEGImages" / f"{name}.jpg", gradient_image(120, 90, seed=seed))
    (root / "Annotations" / "a.xml").write_text(voc_xml("a.jpg", 120, 90, [("dog", (11, 21, 40, 60), 1, 0), ("cat", (51, 11, 100, 80), 0, 1)]))
    (root / "Annotations" / "b.xml").write_text(voc_xml("b.jpg", 120, 90, [("dog", (1, 1, 120, 90), 0, 0), ("dog", (50, 50, 40, 60), 0, 0)]))
    (root / "Annotations" / "c.xml").write_text(voc_xml("../../c.jpg", 120, 90, [("cat", (1, 1, 10, 10), 0, 0)]))
    labels = np.zeros((90, 120), np.uint8)
    labels[20:60, 10:40] = 1
    labels[10:80, 50:100] = 2
    labels[59, 10:40] = 255  # void border
    Image.fromarray(labels, mode="L").save(root / "SegmentationObject" / "a.png")
    (root / "ImageSets" / "Main" / "train.txt").write_text("a\nc\n")
    (root / "ImageSets" / "Main" / "val.txt").write_text("b\n")
    return {"kind": "voc", "root": str(root), "image_sets": {"train": "ImageSets/Main/train.txt", "val": "ImageSets/Main/val.txt"}}


def test_voc_boxes_flags_instance_masks_and_splits(tmp_path, voc_dataset):
    summary, t = run_ingest(tmp_path, voc_dataset)
    assert_accounted(summary)
    assert summary["images"] == {"input": 3, "ingested": 2, "rejected": 1, "without_labels": 0}
    assert [c["name"] for c in t["categories"]] == ["cat", "dog"]
    a = [x for x in t["annotations"] if x["image_id"] == 1]
    assert a[0]["bbox"] == [10.0, 20.0, 30.0, 40.0] and a[0]["truncated"] and not a[0]["difficult"]
    assert a[1]["difficult"] and not a[1]["truncated"]
    assert masks.area(a[0]["segmentation"]) == 30 * 39 and masks.area(a[1]["segmentation"]) == 50 * 70
    assert {r["file_name"].split("/")[-1]: r["split"] for r in t["images"]} == {"a.jpg": "train", "b.jpg": "val"}
    assert any("zero or negative size" in r for r in reasons(t, "annotation"))
    assert any("escapes the dataset root" in r for r in reasons(t, "image"))


def test_voc_unknown_class_is_rejected_when_classes_are_given(tmp_path, voc_dataset):
    voc_dataset["classes"] = ["dog"]
    _, t = run_ingest(tmp_path, voc_dataset)
    assert any("unknown category" in r for r in reasons(t, "annotation"))
    assert {a["category_id"] for a in t["annotations"]} == {1}


def test_malformed_xml_names_file_line_and_column(tmp_path, voc_dataset):
    from pathlib import Path

    bad = Path(voc_dataset["root"]) / "Annotations" / "b.xml"
    bad.write_text("<annotation>\n<filename>b.jpg</filename>\n<size><width>3</size>\n</annotation>")
    with pytest.raises(ingest.IngestError, match=r"b\.xml: malformed XML at line 3, column"):
        run_ingest(tmp_path, voc_dataset)


# --------------------------------------------------------------------- YOLO
@pytest.fixture
def yolo_dataset(tmp_path):
    root = tmp_path / "yolo"
    for split, names in (("train", ["t1", "t2", "t3"]), ("val", ["v1"])):
        for name in names:
            save_jpeg(root / "images" / split / f"{name}.jpg", gradient_image(200, 100, seed=["t1", "t2", "t3", "v1"].index(name)))
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    (root / "labels" / "train" / "t1.txt").write_text("0 0.5 0.5 0.2 0.4\n1 0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3\n")
    (root / "labels" / "train" / "t2.txt").write_text("0 0.5 0.5\n7 0.5 0.5 0.1 0.1\n\n0 0.95 0.5 0.2 0.2\n")
    (root / "labels" / "val" / "v1.txt").write_text("1 0.5 0.5 1.0 1.0\n")
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames:\n  0: sheep\n  1: big dog\n")
    return {"kind": "yolo", "data_yaml": str(root / "data.yaml")}


def test_yolo_boxes_polygons_splits_and_bad_lines(tmp_path, yolo_dataset):
    summary, t = run_ingest(tmp_path, yolo_dataset)
    assert_accounted(summary)
    assert summary["images"] == {"input": 4, "ingested": 4, "rejected": 0, "without_labels": 1}  # t3: a background image
    assert [c["name"] for c in t["categories"]] == ["sheep", "big dog"]
    assert [c["category_id"] for c in t["categories"]] == [0, 1]
    by_image = {}
    for a in t["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    box, poly = by_image[1]
    assert box["bbox"] == pytest.approx([80.0, 30.0, 40.0, 40.0]) and box["segmentation"] is None
    assert poly["bbox"] == pytest.approx([20.0, 10.0, 40.0, 20.0]) and masks.area(poly["segmentation"]) == pytest.approx(800, rel=0.1)
    assert by_image[2][0]["bbox"] == pytest.approx([170.0, 40.0, 30.0, 20.0])  # clipped at the right edge
    assert summary["annotations"]["boxes_clipped"] == 1
    r = reasons(t, "annotation")
    assert any("malformed label line" in x for x in r) and any("unknown category id 7" in x for x in r)
    assert {row["split"] for row in t["images"]} == {"train", "val"}
    assert 3 not in by_image  # no label file: a background image, still ingested


def test_malformed_yolo_yaml_names_file_and_line(tmp_path, yolo_dataset):
    from pathlib import Path

    Path(yolo_dataset["data_yaml"]).write_text("path: .\nnames: [a, b\ntrain: x\n")
    with pytest.raises(ingest.IngestError, match=r"data\.yaml: malformed YAML at line"):
        run_ingest(tmp_path, yolo_dataset)


def test_coco_input_count_is_cached_until_the_file_changes(tmp_path, monkeypatch):
    from bgshift.ingest import formats as ingest_pkg

    monkeypatch.setattr(ingest_pkg, "COUNT_CACHE", tmp_path / "cache" / "counts.json")
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"images": [{"id": 1}, {"id": 2}]}))
    cfg = {"dataset": {"kind": "coco", "annotations": str(path)}}
    assert ingest.count_inputs(cfg) == 2
    monkeypatch.setattr(ingest_pkg, "_coco_image_count", lambda p: pytest.fail("parsed again although unchanged"))
    assert ingest.count_inputs(cfg) == 2
    monkeypatch.undo()
    monkeypatch.setattr(ingest_pkg, "COUNT_CACHE", tmp_path / "cache" / "counts.json")
    path.write_text(json.dumps({"images": [{"id": 1}, {"id": 2}, {"id": 3}]}))
    assert ingest.count_inputs(cfg) == 3


def test_yolo_names_with_gaps_keep_their_ids(tmp_path, yolo_dataset):
    data_yaml = Path(yolo_dataset["data_yaml"])
    data_yaml.write_text("path: .\ntrain: images/train\nval: images/val\nnames:\n  0: sheep\n  5: dog\n")
    (data_yaml.parent / "labels" / "val" / "v1.txt").write_text("5 0.5 0.5 0.5 0.5\n1 0.5 0.5 0.2 0.2\n")
    _, t = run_ingest(tmp_path, yolo_dataset)
    assert {c["category_id"]: c["name"] for c in t["categories"]} == {0: "sheep", 5: "dog"}
    val = [a for a in t["annotations"] if a["image_id"] == 4]
    assert [a["category_id"] for a in val] == [5]  # class 5 is the dog; class 1 does not exist
    assert any("unknown category id 1" in r for r in reasons(t, "annotation"))


def test_yolo_label_files_outside_the_root_orphaned_or_not_text_are_rejected_not_read(tmp_path, yolo_dataset):
    root = Path(yolo_dataset["data_yaml"]).parent
    secret = tmp_path / "secret.txt"
    secret.write_text("0 0.5 0.5 0.2 0.2 password=hunter2\n")
    (root / "labels" / "train" / "t3.txt").symlink_to(secret)
    (root / "labels" / "train" / "lost.txt").write_text("0 0.5 0.5 0.2 0.2\n" * 12)  # no image lost.jpg
    (root / "labels" / "val" / "v1.txt").write_bytes(b"0 0.5 0.5 \xff\xfe 0.2\n")
    summary, t = run_ingest(tmp_path, yolo_dataset)
    assert_accounted(summary)
    rows = {Path(r["file"]).name: r for r in t["rejects"] if r["kind"] == "label_file"}
    assert "outside the dataset root" in rows["t3.txt"]["reason"]
    assert "without a matching image" in rows["lost.txt"]["reason"]
    assert "not UTF-8" in rows["v1.txt"]["reason"]
    assert not any("hunter2" in str(r) for r in t["rejects"])  # nothing of the linked file is copied
    assert not [a for a in t["annotations"] if a["image_id"] in (3, 4)]
    # their annotation lines are in the totals, one reject row each: 12 of lost.txt, 1 of v1.txt
    lines = [(Path(r["file"]).name, r["record"]) for r in t["rejects"] if r["kind"] == "annotation" and r["field"] == "line"
             and "its label file" in r["reason"]]
    assert sorted(lines) == sorted([("lost.txt", f"line {n}") for n in range(1, 13)] + [("v1.txt", "line 1")])


def test_a_long_bad_yolo_line_is_quoted_only_in_part(tmp_path, yolo_dataset):
    root = Path(yolo_dataset["data_yaml"]).parent
    (root / "labels" / "val" / "v1.txt").write_text("x" * 500 + "\n")
    _, t = run_ingest(tmp_path, yolo_dataset)
    (reason,) = [r for r in reasons(t, "annotation") if "xxxx" in r]
    assert len(reason) < 200 and "..." in reason


def test_yolo_split_without_a_labels_folder_stops_ingest(tmp_path, yolo_dataset):
    import shutil

    shutil.rmtree(Path(yolo_dataset["data_yaml"]).parent / "labels" / "val")
    with pytest.raises(ingest.IngestError, match=r"split 'val': no labels folder beside its images \(expected .*labels/val"):
        run_ingest(tmp_path, yolo_dataset)


def test_the_same_file_under_two_ids_or_in_two_split_lists_is_ingested_once(tmp_path, yolo_dataset, coco_dataset):
    data = json.loads(Path(coco_dataset["annotations"]).read_text())
    data["images"] += [{"id": 50, "file_name": "good.jpg", "width": 100, "height": 80},  # same path
                       {"id": 51, "file_name": "copy.jpg", "width": 100, "height": 80}]  # same bytes
    (Path(coco_dataset["images"]) / "copy.jpg").write_bytes((Path(coco_dataset["images"]) / "good.jpg").read_bytes())
    Path(coco_dataset["annotations"]).write_text(json.dumps(data))
    summary, t = run_ingest(tmp_path / "coco", coco_dataset)
    assert_accounted(summary)
    assert not {50, 51} & {r["image_id"] for r in t["images"]}
    assert any("the same file as image id 1 (good.jpg)" in r for r in reasons(t, "image"))
    assert any("the same content as image id 1 (copy.jpg is a copy)" in r for r in reasons(t, "image"))
    root = Path(yolo_dataset["data_yaml"]).parent
    (root / "lists").mkdir()
    (root / "lists" / "train.txt").write_text("images/train/t1.jpg\nimages/train/t2.jpg\n")
    (root / "lists" / "test.txt").write_text("images/train/t2.jpg\n")  # t2 listed in two splits
    (root / "data.yaml").write_text("path: .\ntrain: lists/train.txt\ntest: lists/test.txt\nnames: [sheep, dog]\n")
    summary, t = run_ingest(tmp_path / "yolo", yolo_dataset)
    assert [(r["file_name"], r["split"]) for r in t["images"]] == [("images/train/t1.jpg", "train"), ("images/train/t2.jpg", "train")]
    assert any("the same file as image id 2" in r for r in reasons(t, "image"))


def test_a_cut_jpeg_with_its_end_marker_kept_is_rejected(tmp_path, coco_dataset):
    """libjpeg only warns ("premature end of data segment") and would decode a grey half."""
    good = Path(coco_dataset["images"]) / "good.jpg"
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2] + b"\xff\xd9")
    bomb = Path(coco_dataset["images"]) / "bomb.jpg"  # a tiny file declaring 9000x9000
    header = bytearray(data[: data.index(b"\xff\xda")])
    sof = header.index(b"\xff\xc0")
    header[sof + 5 : sof + 9] = (9000).to_bytes(2, "big") * 2
    bomb.write_bytes(bytes(header) + data[data.index(b"\xff\xda") : data.index(b"\xff\xda") + 200] + b"\xff\xd9")
    spec = json.loads(Path(coco_dataset["annotations"]).read_text())
    spec["images"].append({"id": 60, "file_name": "bomb.jpg", "width": 9000, "height": 9000})
    Path(coco_dataset["annotations"]).write_text(json.dumps(spec))
    _, t = run_ingest(tmp_path, coco_dataset)
    ids = {r["image_id"] for r in t["images"]}
    assert 1 not in ids and 60 not in ids
    corrupt = [r for r in reasons(t, "image") if "corrupt JPEG" in r]
    assert len(corrupt) == 2 and all("premature end" in r or "Corrupt" in r for r in corrupt), corrupt
    assert any("good.jpg" in r for r in corrupt)  # the reason names the image file


@pytest.mark.parametrize("counts, message", [
    ([100, 50], "sum to 150, not height x width = 8000"),
    ([7000, -1000, 2000], "non-negative integers"),
    ("~0", "hold the character '~'"),
    ("00000001", "sum to"),
])
def test_malformed_rle_drops_the_mask_keeps_the_box(tmp_path, coco_dataset, counts, message):
    spec = json.loads(Path(coco_dataset["annotations"]).read_text())
    spec["annotations"].append({"id": 99, "image_id": 1, "category_id": 3, "bbox": [10, 10, 20, 20], "iscrowd": 1,
                                "segmentation": {"size": [80, 100], "counts": counts}})
    Path(coco_dataset["annotations"]).write_text(json.dumps(spec))
    _, t = run_ingest(tmp_path, coco_dataset)
    (ann,) = [a for a in t["annotations"] if a["ann_id"] == 99]
    assert ann["segmentation"] is None and ann["bbox"] == [10.0, 10.0, 20.0, 20.0]
    assert any(message in r["reason"] for r in t["rejects"] if r["kind"] == "mask" and r["record"].endswith("99")), t["rejects"]


def test_odd_coco_records_become_reject_rows_not_tracebacks(tmp_path, coco_dataset):
    spec = json.loads(Path(coco_dataset["annotations"]).read_text())
    spec["images"] += ["not an object", {"id": "70", "file_name": "x.jpg"}, {"id": 2**70, "file_name": "y.jpg"},
                       {"id": 71, "file_name": "good.jpg", "width": "100", "height": 80}]
    spec["annotations"] += [{"image_id": 1, "category_id": 3, "bbox": [1, 1, 5, 5]},  # no id
                            {"id": 80, "image_id": 1, "category_id": None, "bbox": [1, 1, 5, 5]},
                            {"id": 81, "image_id": 1, "category_id": 3, "bbox": ["1", "1", "5", "5"]},
                            {"id": 82, "image_id": 1, "category_id": 3, "bbox": [True, 1, 5, 5]}]
    Path(coco_dataset["annotations"]).write_text(json.dumps(spec))
    summary, t = run_ingest(tmp_path, coco_dataset)
    assert_accounted(summary)
    image_rows = {r["record"]: r["reason"] for r in t["rejects"] if r["kind"] == "image"}
    assert image_rows["images[14]"] == "the record is a str, not an object"
    assert image_rows["images[15]"] == 'id "70" is not an integer between 0 and 2^63-1'
    assert "is not an integer" in image_rows["images[16]"]
    assert image_rows["images[17]"] == 'width/height "100"x80 are not positive integers'
    ann_rows = {r["record"]: r["reason"] for r in t["rejects"] if r["kind"] == "annotation"}
    assert ann_rows["annotations[14]"] == "no 'id' field"
    assert ann_rows["annotations[15]"] == "category_id null is not an integer between 0 and 2^63-1"
    assert "is not four finite numbers" in ann_rows["annotation id 81"] and "is not four finite numbers" in ann_rows["annotation id 82"]
    assert 1 in {a["ann_id"] for a in t["annotations"]}  # the real id 1 is kept, not taken by the record without an id


def test_voc_mask_bombs_truncated_masks_and_point_boxes(tmp_path, voc_dataset):
    root = Path(voc_dataset["root"])
    bomb = root / "SegmentationObject" / "b.png"  # a small file that declares 20000x20000
    Image.new("L", (20000, 20000)).save(bomb, optimize=True)
    png = (root / "SegmentationObject" / "a.png").read_bytes()
    (root / "SegmentationObject" / "a.png").write_bytes(png[: len(png) // 2])
    (root / "Annotations" / "c.xml").write_text(voc_xml("c.jpg", 120, 90, [("cat", (5, 5, 5, 5), 0, 0), ("cat", (1, 1, 10, 10), 0, 0)]))
    summary, t = run_ingest(tmp_path, voc_dataset, max_pixels=10_000_000)
    assert_accounted(summary)
    mask_rows = {Path(r["file"]).name: r["reason"] for r in t["rejects"] if r["kind"] == "mask"}
    assert "above ingest.max_pixels=10000000" in mask_rows["b.png"] and "unreadable" in mask_rows["a.png"]
    assert all(a["segmentation"] is None for a in t["annotations"] if a["image_id"] in (1, 2))  # boxes kept
    assert any("point box" in r for r in reasons(t, "annotation"))
    assert [a["bbox"] for a in t["annotations"] if a["image_id"] == 3] == [[0.0, 0.0, 10.0, 10.0]]


def test_a_yolo_split_folder_linked_to_a_sibling_is_read_but_links_leaving_it_are_not(tmp_path, yolo_dataset):
    """Policy: folders data.yaml names are followed (datasets ship images/ as a link); a file link
    inside them that leaves them is still refused."""
    import shutil

    root = Path(yolo_dataset["data_yaml"]).parent
    shutil.move(root / "images", tmp_path / "shared_images")
    (root / "images").symlink_to(tmp_path / "shared_images")
    secret = tmp_path / "elsewhere.jpg"
    save_jpeg(secret, gradient_image(200, 100, seed=42))
    (tmp_path / "shared_images" / "train" / "t9.jpg").symlink_to(secret)
    summary, t = run_ingest(tmp_path, yolo_dataset)
    assert_accounted(summary)
    assert sorted(r["file_name"] for r in t["images"]) == ["images/train/t1.jpg", "images/train/t2.jpg", "images/train/t3.jpg",
                                                           "images/val/v1.jpg"]
    assert any("t9.jpg" in r["reason"] and "escapes the dataset root" in r["reason"] for r in t["rejects"])


def test_yolo_split_folders_named_by_dot_dot_or_absolute_paths_are_both_read(tmp_path, yolo_dataset):
    """Roboflow exports name `train: ../train/images`; hand-written data.yaml files name absolute
    folders. ultralytics reads both, and so does ingest (one used to be read, the other refused)."""
    import shutil

    root = Path(yolo_dataset["data_yaml"]).parent
    shutil.move(root / "images" / "val", tmp_path / "valid" / "images")
    shutil.move(root / "labels" / "val", tmp_path / "valid" / "labels")
    Path(yolo_dataset["data_yaml"]).write_text(
        f"path: .\ntrain: ../yolo/images/train\nval: {tmp_path / 'valid' / 'images'}\nnames: [sheep, big dog]\n")
    summary, t = run_ingest(tmp_path, yolo_dataset)
    assert_accounted(summary)
    assert summary["images"] == {"input": 4, "ingested": 4, "rejected": 0, "without_labels": 1}
    assert sorted((r["split"], r["file_name"]) for r in t["images"]) == [
        ("train", "images/train/t1.jpg"), ("train", "images/train/t2.jpg"), ("train", "images/train/t3.jpg"),
        ("val", "../valid/images/v1.jpg")]
    assert [a["bbox"] for a in t["annotations"] if a["image_id"] == 4] == [[0.0, 0.0, 200.0, 100.0]]


def test_iscrowd_is_0_1_or_a_boolean_and_anything_else_is_a_reject_row(tmp_path, coco_dataset):
    """bool("0"), bool("false") and bool(7) are True: such objects used to become crowds and
    vanish from YOLO labels and from scoring."""
    spec = json.loads(Path(coco_dataset["annotations"]).read_text())
    box = {"image_id": 1, "category_id": 3, "bbox": [1, 1, 5, 5]}
    spec["annotations"] += [{"id": 90, **box, "iscrowd": "0"}, {"id": 91, **box, "iscrowd": "false"},
                            {"id": 92, **box, "iscrowd": 7}, {"id": 93, **box, "iscrowd": False},
                            {"id": 94, **box, "iscrowd": True}, {"id": 95, **box, "labelled": "no"}]
    Path(coco_dataset["annotations"]).write_text(json.dumps(spec))
    summary, t = run_ingest(tmp_path, coco_dataset)
    assert_accounted(summary)
    rows = {r["record"]: (r["field"], r["reason"]) for r in t["rejects"] if r["kind"] == "annotation"}
    assert rows["annotations[14]"] == ("iscrowd", 'iscrowd "0" is not 0, 1, false or true')
    assert rows["annotations[15]"] == ("iscrowd", 'iscrowd "false" is not 0, 1, false or true')
    assert rows["annotations[16]"] == ("iscrowd", "iscrowd 7 is not 0, 1, false or true")
    assert rows["annotations[19]"] == ("labelled", 'labelled "no" is not 0, 1, false or true')
    crowd = {a["ann_id"]: a["iscrowd"] for a in t["annotations"]}
    assert crowd[93] is False and crowd[94] is True and crowd[1] is False and not {90, 91, 92, 95} & set(crowd)


@pytest.mark.parametrize("names, message", [
    ("  0: sheep\n  1: sheep\n", r"category ids 0 \('sheep'\) and 1 \('sheep'\) have the same name: give every class its own name"),
    ("  0: sheep\n  1: Sheep\n", r"category ids 0 \('sheep'\) and 1 \('Sheep'\) have the same name when case is folded"),
])
def test_two_classes_with_one_name_stop_ingest_naming_both_ids(tmp_path, yolo_dataset, names, message):
    """AP/sheep twice, averaged in the report, crops colliding on disk: refused, naming the file."""
    data_yaml = Path(yolo_dataset["data_yaml"])
    data_yaml.write_text("path: .\ntrain: images/train\nval: images/val\nnames:\n" + names)
    with pytest.raises(ingest.IngestError, match=re.escape(str(data_yaml)) + ": " + message):
        run_ingest(tmp_path, yolo_dataset)


def test_polygon_coordinates_that_are_not_finite_or_lie_far_outside_drop_the_mask_not_the_run(tmp_path, coco_dataset, yolo_dataset):
    """pycocotools' frPyObjects segfaulted on NaN (exit 139, empty stderr) and allocated memory in
    proportion to a far coordinate; now such a mask is a reject row and the box is kept."""
    spec = json.loads(Path(coco_dataset["annotations"]).read_text())
    polygon = lambda bad: [[10, 10, bad, 20, 30, 30]]  # noqa: E731
    spec["annotations"] += [{"id": 100 + k, "image_id": 1, "category_id": 3, "bbox": [10, 10, 20, 20], "segmentation": polygon(bad)}
                            for k, bad in enumerate([float("nan"), float("inf"), -1e308, 1e8, "7", True])]
    Path(coco_dataset["annotations"]).write_text(json.dumps(spec))
    summary, t = run_ingest(tmp_path, coco_dataset)
    assert_accounted(summary)
    masks_dropped = {r["record"]: r["reason"] for r in t["rejects"] if r["kind"] == "mask"}
    for k in (0, 1):
        assert "has a coordinate that is not a finite number" in masks_dropped[f"annotation id {100 + k}"]
    assert "lies far outside the 100x80 image" in masks_dropped["annotation id 102"]
    assert "polygon point (1e+08, 20) lies far outside" in masks_dropped["annotation id 103"]
    for k in (4, 5):
        assert "is not an even number of numbers" in masks_dropped[f"annotation id {100 + k}"]
    kept = {a["ann_id"]: a for a in t["annotations"]}
    assert all(kept[100 + k]["segmentation"] is None and kept[100 + k]["bbox"] == [10, 10, 20, 20] for k in range(6))
    labels = Path(yolo_dataset["data_yaml"]).parent / "labels" / "val" / "v1.txt"
    labels.write_text("1 0.5 0.5 1.0 1.0\n0 0.1 0.1 nan 0.1 0.3 0.3 0.1 0.3\n")
    summary, t = run_ingest(tmp_path / "yolo_run", yolo_dataset)
    assert_accounted(summary)
    assert any("not a finite number" in r["reason"] for r in t["rejects"] if r["kind"] in ("mask", "annotation"))


@pytest.mark.parametrize("verify", [True, False])
def test_an_image_pillow_reads_but_opencv_cannot_is_a_reject_row_at_ingest(tmp_path, coco_dataset, verify):
    """A TGA (or PCX, ICO, SGI) named .jpg passed ingest because Pillow reads it, then stopped the
    whole run at segmentation ("OpenCV could not decode"); now it is rejected where it enters."""
    spec = json.loads(Path(coco_dataset["annotations"]).read_text())
    root = Path(coco_dataset["images"])
    for k, fmt in enumerate(["TGA", "PCX", "SGI"]):
        Image.fromarray(gradient_image(100, 80, seed=20 + k)).save(root / f"odd{k}.jpg", format=fmt)
        spec["images"].append({"id": 50 + k, "file_name": f"odd{k}.jpg", "width": 100, "height": 80})
    Path(coco_dataset["annotations"]).write_text(json.dumps(spec))
    summary, t = run_ingest(tmp_path, coco_dataset, verify_images=verify)
    assert_accounted(summary)
    rows = {r["record"]: r["reason"] for r in t["rejects"] if r["kind"] == "image"}
    for k, fmt in enumerate(["TGA", "PCX", "SGI"]):
        assert rows[str(50 + k)].startswith(f"a {fmt} image, which OpenCV does not decode"), rows
    assert not {50, 51, 52} & {im["image_id"] for im in t["images"]}


def test_reject_reasons_group_cleanly_clipping_counts_real_overhangs_and_paths_are_relative(tmp_path, coco_dataset):
    """The summary's reason classes keep their words ("the same content as image id (x is a
    copy)" lost its head); float round-off at the edge is no clipping; a 1e-300 box has no area;
    a reason names the file relative to the dataset root."""
    spec = json.loads(Path(coco_dataset["annotations"]).read_text())
    root = Path(coco_dataset["images"])
    (root / "copy.jpg").write_bytes((root / "good.jpg").read_bytes())
    spec["images"].append({"id": 60, "file_name": "copy.jpg", "width": 100, "height": 80})
    box = {"image_id": 1, "category_id": 3}
    spec["annotations"] += [{"id": 200, **box, "bbox": [60.0, 40.0, 40.00000000001, 40.0000001]},  # round-off at the corner
                            {"id": 201, **box, "bbox": [10, 10, 1e-300, 1e-300]}]
    Path(coco_dataset["annotations"]).write_text(json.dumps(spec))
    summary, t = run_ingest(tmp_path, coco_dataset)
    assert_accounted(summary)
    classes = summary["reject_reasons"]
    assert "the same content as image id" in classes and not any(c.endswith("is a copy)") for c in classes)
    assert summary["annotations"]["boxes_clipped"] == 1  # annotation 2's 20 px overhang, not 200's round-off
    assert {a["ann_id"]: a["bbox"] for a in t["annotations"]}[200] == [60.0, 40.0, 40.0, 40.0]
    assert "has no area" in {r["record"]: r["reason"] for r in t["rejects"]}["annotation id 201"]
    unreadable = next(r["reason"] for r in t["rejects"] if "unreadable image" in r["reason"] or "corrupt JPEG" in r["reason"])
    assert unreadable.endswith("(truncated.jpg)") and str(tmp_path) not in unreadable


def test_a_nul_byte_a_symlink_loop_and_deep_json_are_reject_rows_or_one_line_not_tracebacks(tmp_path, coco_dataset):
    """They raised ValueError (embedded null byte), RuntimeError (symlink loop) and RecursionError."""
    spec = json.loads(Path(coco_dataset["annotations"]).read_text())
    root = Path(coco_dataset["images"])
    (root / "loop_a.jpg").symlink_to(root / "loop_b.jpg")
    (root / "loop_b.jpg").symlink_to(root / "loop_a.jpg")
    spec["images"] += [{"id": 70, "file_name": "good\x00.jpg"}, {"id": 71, "file_name": "loop_a.jpg"}]
    Path(coco_dataset["annotations"]).write_text(json.dumps(spec))
    summary, t = run_ingest(tmp_path, coco_dataset)
    assert_accounted(summary)
    rows = {r["record"]: r["reason"] for r in t["rejects"] if r["kind"] == "image"}
    assert "contains a NUL byte" in rows["70"] and "cannot be followed" in rows["71"]
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ingest.IngestError, match=r"deep\.json: JSON nested too deeply"):
        run_ingest(tmp_path / "deep", {**coco_dataset, "annotations": str(deep)})
