"""The row layout of variant shards and set exports (DESIGN.md's Parquet contract).

Declared as Hugging Face `datasets` Features so the Arrow schema carries the metadata
that makes `load_dataset("parquet", ...)` decode `image` as an Image feature.
"""
from __future__ import annotations

import datasets

RLE = {"size": datasets.List(datasets.Value("int32")), "counts": datasets.Value("string")}
OBJECT = {
    "ann_id": datasets.Value("int64"),
    "bbox": datasets.List(datasets.Value("float64"), length=4),  # x, y, w, h in pixels
    "category": datasets.Value("int32"),  # contiguous class index (YOLO class)
    "category_id": datasets.Value("int32"),  # the dataset's own category id
    "area": datasets.Value("float64"),
    "iscrowd": datasets.Value("bool"),
    "segmentation": RLE,  # COCO compressed RLE
    "labelled": datasets.Value("bool"),  # false: a known instance without a label
}
FEATURES = datasets.Features({
    "image": datasets.Image(),
    "image_id": datasets.Value("int64"),  # source image
    "variant": datasets.Value("string"),
    "family": datasets.Value("string"),
    "width": datasets.Value("int32"),
    "height": datasets.Value("int32"),
    "background_only": datasets.Value("bool"),  # objects removed (only_bg_*, no_fg)
    "objects": datasets.List(OBJECT),
    "donor_id": datasets.Value("int64"),  # mixed_*: the image whose background was used
    "donor_class": datasets.Value("string"),
    "background": datasets.Value("string"),  # scene name, colour, ... where named
    "mask_source": datasets.Value("string"),  # gt | deeplabv3 | grabcut | none
    "mask_qc": datasets.Value("bool"),  # false: its masks failed segment QC (only in original, only_bg_b, only_bg_t)
    "seed": datasets.Value("int64"),
})
ROW_SCHEMA = FEATURES.arrow_schema
