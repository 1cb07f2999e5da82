"""Ingest of the real datasets in ../shared/datasets, with the exact counts of their files."""
from __future__ import annotations

import pyarrow.parquet as pq

from bgshift import config, ingest, masks
from conftest import COCO128, RACCOON, memory_limit, needs


@needs(COCO128)
def test_coco128_is_ingested_completely(tmp_path):
    cfg = config.validate({"dataset": {"kind": "coco", "images": str(COCO128 / "train2017"),
                                       "annotations": str(COCO128 / "annotations" / "instances_train2017.json")}})
    with memory_limit():
        summary = ingest.run(cfg, tmp_path)
    assert summary["images"] == {"input": 128, "ingested": 128, "rejected": 0, "without_labels": 0}
    assert summary["annotations"]["input"] == summary["annotations"]["ingested"] == 939
    assert summary["categories"] == 80
    anns = pq.read_table(tmp_path / "annotations.parquet").to_pylist()
    crowd = [a for a in anns if a["iscrowd"]]
    assert len(crowd) == 10 and all(a["segmentation"] for a in anns)
    assert len({a["category_id"] for a in anns}) == 71
    # polygon masks fill their boxes plausibly
    for a in anns[:50]:
        assert 0 < masks.area(a["segmentation"]) <= a["bbox"][2] * a["bbox"][3] + 1
    assert pq.read_table(tmp_path / "rejects.parquet").num_rows == 0


@needs(RACCOON)
def test_raccoon_voc_is_ingested_completely(tmp_path):
    cfg = config.validate({"dataset": {"kind": "voc", "root": str(RACCOON), "annotations_dir": "annotations", "images_dir": "images"}})
    with memory_limit():
        summary = ingest.run(cfg, tmp_path)
    rejects = pq.read_table(tmp_path / "rejects.parquet").to_pylist()
    assert summary["images"]["input"] == 200
    assert summary["annotations"]["input"] == 217
    assert summary["images"]["ingested"] + summary["images"]["rejected"] == 200
    assert summary["annotations"]["ingested"] + summary["annotations"]["rejected"] == 217
    assert all(r["reason"] for r in rejects)  # every rejected record explained
    # the raccoon set holds 4 byte-identical copies of other images (raccoon-74, -83, -98, -116):
    # kept, they could land in train and test at once, so they are rejected as duplicates
    duplicates = [r for r in rejects if r["kind"] == "image"]
    assert len(duplicates) == 4 and all("the same content as image id" in r["reason"] for r in duplicates)
    assert summary["images"]["ingested"] == 196 and summary["annotations"]["ingested"] == 213
    assert summary["categories"] == 1
