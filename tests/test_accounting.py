"""Nothing is lost: generated datasets with random defects are fully accounted for at ingest,
and results/summary.json's per-stage counts add up (and catch a lost row)."""
from __future__ import annotations

import json
import re
import tempfile
import zlib
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bgshift import accounting, config, export, ingest
from conftest import REPO, gradient_image, memory_limit, run_stages, save_jpeg

W, H = 40, 30
IMAGE_DEFECTS = ["ok", "ok", "ok", "missing", "truncated", "cut_jpeg", "escapes_root", "wrong_size"]
BOX_DEFECTS = ["ok", "ok", "ok", "partly_outside", "outside", "zero_size", "unknown_class"]
GOOD_BOX = (5, 4, 12, 10)
BOXES = {"ok": GOOD_BOX, "partly_outside": (30, 20, 20, 20), "outside": (100, 100, 5, 5), "zero_size": (5, 5, 0, 8),
         "unknown_class": GOOD_BOX}

COCO_BOX_DEFECTS = BOX_DEFECTS + ["string_values", "null_category"]  # what only a JSON file can hold
images_strategy = st.lists(
    st.tuples(st.sampled_from(IMAGE_DEFECTS), st.lists(st.sampled_from(BOX_DEFECTS), max_size=4)), min_size=1, max_size=6)
coco_strategy = st.lists(
    st.tuples(st.sampled_from(IMAGE_DEFECTS), st.lists(st.sampled_from(COCO_BOX_DEFECTS), max_size=4)), min_size=1, max_size=6)


def write_image(root: Path, name: str, defect: str) -> str:
    """The image file for one record; returns the file name the annotations give for it."""
    if defect == "missing":
        return name
    pixels = gradient_image(W, H, seed=zlib.crc32(name.encode()))  # distinct files: equal content is a duplicate
    if defect == "escapes_root":
        save_jpeg(root.parent / name, pixels)
        return f"../{name}"
    path = save_jpeg(root / name, pixels)
    if defect == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    if defect == "cut_jpeg":  # cut in the scan, end marker kept: libjpeg only warns
        data = path.read_bytes()
        path.write_bytes(data[: (data.index(b"\xff\xda") + len(data)) // 2] + b"\xff\xd9")
    return name


def expected_counts(records) -> dict:
    """What ingest must keep: images without a defect, and their boxes that are usable (clipped or not)."""
    good = [boxes for defect, boxes in records if defect == "ok"]
    return {"images": len(good), "annotations": sum(b in ("ok", "partly_outside") for boxes in good for b in boxes),
            "images_input": len(records), "annotations_input": sum(len(boxes) for _, boxes in records)}


def check_invariant(dataset: dict, records, extra_annotations: int = 0) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ingested"
        with memory_limit():
            summary = ingest.run(config.validate({"dataset": dataset}), out)
        rejects = pq.read_table(out / "rejects.parquet").to_pylist()
        images = pq.read_table(out / "images.parquet").to_pylist()
    expected = expected_counts(records)
    im, an = summary["images"], summary["annotations"]
    assert im["input"] == im["ingested"] + im["rejected"] == expected["images_input"]
    assert an["input"] == an["ingested"] + an["rejected"] == expected["annotations_input"] + extra_annotations
    assert (im["ingested"], an["ingested"]) == (expected["images"], expected["annotations"]) == (len(images), an["ingested"])
    assert sum(r["kind"] == "image" for r in rejects) == im["rejected"]
    assert sum(r["kind"] == "annotation" for r in rejects) == an["rejected"]
    assert all(r["reason"] and r["file"] and r["field"] for r in rejects)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=coco_strategy, orphans=st.integers(0, 2), duplicate_image=st.booleans())
def test_coco_with_random_defects_is_fully_accounted_for(records, orphans, duplicate_image):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "images"
        root.mkdir()
        images, annotations = [], []
        for i, (defect, boxes) in enumerate(records, start=1):
            name = write_image(root, f"im{i}.jpg", defect)
            size = (W + 7, H) if defect == "wrong_size" else (W, H)
            images.append({"id": i, "file_name": name, "width": size[0], "height": size[1]})
            for box in boxes:
                bbox = [str(v) for v in GOOD_BOX] if box == "string_values" else list(BOXES.get(box, GOOD_BOX))
                category = None if box == "null_category" else 99 if box == "unknown_class" else 1
                annotations.append({"id": len(annotations) + 1, "image_id": i, "bbox": bbox, "category_id": category, "iscrowd": 0})
        for k in range(orphans):  # annotations of an image that does not exist
            annotations.append({"id": len(annotations) + 1, "image_id": 1000 + k, "bbox": list(GOOD_BOX), "category_id": 1})
        if duplicate_image:  # a second record with an existing id: rejected, its file is not read
            images.append({"id": 1, "file_name": "im1.jpg", "width": W, "height": H})
            records = records + [("duplicate", [])]
        (Path(tmp) / "coco.json").write_text(json.dumps(
            {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "sheep"}]}))
        check_invariant({"kind": "coco", "images": str(root), "annotations": str(Path(tmp) / "coco.json")}, records, orphans)


def voc_object(box: str) -> str:
    x, y, w, h = BOXES[box]
    name = "unicorn" if box == "unknown_class" else "sheep"
    return f"<object><name>{name}</name><bndbox><xmin>{x + 1}</xmin><ymin>{y + 1}</ymin><xmax>{x + w}</xmax><ymax>{y + h}</ymax></bndbox></object>"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=images_strategy)
def test_voc_with_random_defects_is_fully_accounted_for(records):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "voc"
        (root / "Annotations").mkdir(parents=True)
        (root / "JPEGImages").mkdir()
        for i, (defect, boxes) in enumerate(records, start=1):
            name = write_image(root / "JPEGImages", f"im{i}.jpg", defect)
            if defect == "escapes_root":  # outside the dataset root, not only outside JPEGImages
                save_jpeg(root.parent / f"im{i}.jpg", gradient_image(W, H))
                name = f"../../im{i}.jpg"
            width = W + 7 if defect == "wrong_size" else W
            (root / "Annotations" / f"im{i}.xml").write_text(
                f"<annotation><filename>{name}</filename><size><width>{width}</width><height>{H}</height></size>"
                + "".join(voc_object(b) for b in boxes) + "</annotation>")
        check_invariant({"kind": "voc", "root": str(root), "classes": ["sheep"]}, records)


YOLO_IMAGE_DEFECTS = ["ok", "ok", "ok", "truncated", "cut_jpeg"]
YOLO_LINE_DEFECTS = BOX_DEFECTS + ["malformed"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(st.tuples(st.sampled_from(YOLO_IMAGE_DEFECTS), st.lists(st.sampled_from(YOLO_LINE_DEFECTS), max_size=4)),
                        min_size=1, max_size=6))
def test_yolo_with_random_defects_is_fully_accounted_for(records):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "yolo"
        (root / "labels" / "train").mkdir(parents=True)
        for i, (defect, lines) in enumerate(records, start=1):
            write_image(root / "images" / "train", f"im{i:02d}.jpg", defect)
            text = ""
            for line in lines:
                if line == "malformed":
                    text += "0 0.5 0.5\n"
                    continue
                x, y, w, h = BOXES[line]
                text += f"{7 if line == 'unknown_class' else 0} {(x + w / 2) / W} {(y + h / 2) / H} {w / W} {h / H}\n"
            (root / "labels" / "train" / f"im{i:02d}.txt").write_text(text)
        (root / "data.yaml").write_text("path: .\ntrain: images/train\nnames:\n  0: sheep\n")
        check_invariant({"kind": "yolo", "data_yaml": str(root / "data.yaml")}, records)


# ----------------------------------------------------------- the whole run's summary
@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    """Data stages on the synthetic world with QC failures (images left out by an accept list)."""
    root = tmp_path_factory.mktemp("accounting")
    accept = root / "accept.csv"
    accept.write_text("image_id\n" + "\n".join(str(i) for i in range(1, 13)) + "\n")
    cfg = config.validate({
        "seed": 3, "dataset": {"kind": "synthetic", "synthetic": {"num_images": 16, "objects_per_image": [1, 3]}},
        "segment": {"method": "gt", "qc": {"accept_list": str(accept)}},
        "splits": {"ratios": {"train": 0.5, "val": 0.25, "test": 0.25}},
        "drops": {"normal": {"kind": "normal"}, "hard": {"kind": "hard"}},
        "variants": {"scenes_dir": str(REPO / "resources" / "backgrounds"), "catalog": {"original": {}, "only_bg_t": {}, "bg_gray": {}}},
        "sets": {"train": {"original": {"variants": ["original"]}, "x2": {"variants": ["original", "only_bg_t"], "repeat": 2, "drop": "hard"}},
                 "test": ["original"], "pooled": {"augmented": {"variants": ["original", "only_bg_t"]}}},
    })
    sets = run_stages(cfg, root)
    return root, ["original", "only_bg_t", "bg_gray"], list(sets)


MASK_FREE = ["original", "only_bg_t"]  # made of every image that decodes; bg_gray of the QC-passed ones


def test_a_pooled_test_set_holds_each_test_image_once_per_variant_and_is_counted(stages, tmp_path):
    """The background-augmentation report's Augmented test data: test_augmented pools the original
    and Only-BG-T versions of every QC-passed test image, each a COCO image of its own that names
    its source image (the findings resample by source image)."""
    root, variants, sets = stages
    summary = accounting.run(root, variants, sets, tmp_path / "summary.json", MASK_FREE)
    single = summary["sets"]["test_original"]["test"]["images"]
    assert single > 0 and summary["sets"]["test_augmented"]["test"]["images"] == 2 * single
    coco = json.loads((root / "sets" / "test_augmented" / "coco" / "test.json").read_text())
    assert len({im["id"] for im in coco["images"]}) == len(coco["images"]) == 2 * single
    by_source = {}
    for im in coco["images"]:
        by_source.setdefault(im["source_image_id"], set()).add(im["variant"])
    assert len(by_source) == single and all(v == {"original", "only_bg_t"} for v in by_source.values())


def test_summary_counts_every_image_through_every_stage(stages, tmp_path):
    root, variants, sets = stages
    summary = accounting.run(root, variants, sets, tmp_path / "summary.json", MASK_FREE)
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert summary["segment"] == {"images": 16, "qc_passed": 12, "qc_failed": 4, "undecodable": 0,
                                  "mask_source": {"gt": 16}}
    assert summary["variants"] == {"original": 16, "only_bg_t": 16, "bg_gray": 12}  # originals stay whole
    assert sum(summary["splits"].values()) == 16
    x2_train = summary["sets"]["x2"]["train"]["images"]
    assert x2_train > 0 and x2_train % 4 == 0  # two variants x two repeats
    assert all(c["ok"] for c in summary["checks"]) and len(summary["checks"]) > 15


def test_summary_refuses_counts_that_do_not_add_up(stages, tmp_path):
    root, variants, sets = stages
    shard = root / "variants" / "shards" / "00000" / "only_bg_t.parquet"
    table = pq.read_table(shard)
    original = shard.read_bytes()
    try:
        pq.write_table(table.slice(0, table.num_rows - 1), shard)  # a lost row
        with pytest.raises(accounting.AccountingError, match=r"variants: only_bg_t rows = images that decode: 15 != 16"):
            accounting.build(root, variants, sets, MASK_FREE)
    finally:
        shard.write_bytes(original)


def test_summary_carries_the_learning_check_and_says_when_models_did_not_learn(tmp_path, capsys):
    (tmp_path / "accounting.json").write_text(json.dumps({"checks": [], "ingest": {}}))
    learning = {"all_learnt": False, "message": "WARNING: these models did not learn (m: AP50 on test_original below 0.25)"}
    (tmp_path / "learning.json").write_text(json.dumps(learning))
    summary = accounting.summarise(tmp_path / "accounting.json", tmp_path / "learning.json", tmp_path / "summary.json")
    assert json.loads((tmp_path / "summary.json").read_text()) == summary == {"checks": [], "ingest": {}, "learning": learning}
    assert "these models did not learn" in capsys.readouterr().out
    assert accounting.summarise(tmp_path / "accounting.json", None, tmp_path / "s2.json")["learning"] is None


def test_an_unverified_cut_jpeg_is_rejected_by_name_at_segmentation(tmp_path):
    """With ingest.verify_images off a cut JPEG passes ingest; segmentation, the first stage that
    decodes every image, rejects it by name (libjpeg only warns and would hand on a grey half), and
    the accounting counts it with the QC failures."""
    root = tmp_path / "world"
    images, annotations = [], []
    for i, defect in enumerate(["ok", "ok", "ok", "ok", "cut_jpeg", "ok"], start=1):
        images.append({"id": i, "file_name": write_image(root, f"im{i}.jpg", defect), "width": W, "height": H})
        annotations.append({"id": i, "image_id": i, "bbox": list(GOOD_BOX), "category_id": 1, "iscrowd": 0})
    (tmp_path / "coco.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                    "categories": [{"id": 1, "name": "sheep"}]}))
    cfg = config.validate({
        "seed": 1, "dataset": {"kind": "coco", "images": str(root), "annotations": str(tmp_path / "coco.json")},
        "ingest": {"verify_images": False}, "segment": {"method": "grabcut", "qc": {"min_fg_pixels": 1, "min_fill_ratio": 0.0}},
        "splits": {"ratios": {"train": 0.5, "val": 0.25, "test": 0.25}},
        "variants": {"catalog": {"original": {}}}, "sets": {"train": {}, "test": []}})
    run_stages(cfg, tmp_path / "run")
    summary = accounting.build(tmp_path / "run", ["original"], [], ["original"])
    assert summary["ingest"]["images"]["ingested"] == 6  # not verified: ingest let it through
    assert summary["segment"]["qc_failed"] == summary["segment"]["undecodable"] == 1
    assert summary["variants"]["original"] == summary["segment"]["qc_passed"] == 5  # not even in original
    failed = json.loads((tmp_path / "run" / "segment" / "summary.json").read_text())["qc_failed"]
    assert failed[0]["image_id"] == 5 and re.fullmatch(r"corrupt JPEG: .*\(im5\.jpg\)", failed[0]["reason"]), failed


@pytest.mark.parametrize("changes, stop, message", [
    ({"splits": {"ratios": {"train": 1.0, "val": 0.0, "test": 0.0}}},
     r"set original needs the val split .* which holds no image", None),
    ({"segment": {"method": "gt", "qc": {"min_fg_pixels": 10**9}}, "variants": {"catalog": {"original": {}, "bg_gray": {}}},
      "sets": {"train": {"original": {"variants": ["bg_gray"]}}, "test": []}}, r"set original needs the train and val splits"
     r".*its variants \['bg_gray'\] have no image there: images that failed segmentation QC",
     r"segment: QC-passed images is not empty: every image failed segmentation QC"),
])
def test_a_stage_or_set_that_keeps_nothing_fails_the_run_with_the_reason(tmp_path, changes, stop, message):
    """The export of a set with an empty split stops first (naming set and split); the accounting
    still says which stage kept nothing."""
    cfg = config.validate({"seed": 0, "dataset": {"kind": "synthetic", "synthetic": {"num_images": 6}},
                           "segment": {"method": "gt"}, "variants": {"catalog": {"original": {}}},
                           "sets": {"train": {"original": {"variants": ["original"]}}, "test": []}, **changes})
    with pytest.raises(export.EmptySplit, match=stop):
        run_stages(cfg, tmp_path)
    if message:
        with pytest.raises(accounting.AccountingError, match=message):
            accounting.build(tmp_path, ["original", "bg_gray"], [], ["original"])
