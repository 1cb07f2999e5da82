"""The ingest tables: their Arrow schemas (what ingest writes), and how later stages read them: the images, their annotations grouped by image
and the categories (`Dataset.load`, all or a shard's images), every image id, and which ids a
shard holds. Segmentation and the variant engine read the ingest output through this module."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

RLE_TYPE = pa.struct([("size", pa.list_(pa.int32())), ("counts", pa.string())])

IMAGES_SCHEMA = pa.schema(
    [
        ("image_id", pa.int64()),
        ("file_name", pa.string()),  # as written in the dataset, relative to its root
        ("path", pa.string()),  # resolved source file
        ("width", pa.int32()),  # after EXIF orientation
        ("height", pa.int32()),
        ("orientation", pa.int8()),
        ("source_mode", pa.string()),  # pixel mode before conversion to 8-bit RGB
        ("group", pa.string()),  # site or other grouping, for group splits
        ("split", pa.string()),  # predefined split of the dataset, if any
        ("source_file", pa.string()),  # annotation file the record came from
    ]
)

ANNOTATIONS_SCHEMA = pa.schema(
    [
        ("ann_id", pa.int64()),
        ("image_id", pa.int64()),
        ("category_id", pa.int32()),
        ("bbox", pa.list_(pa.float64(), 4)),  # x, y, w, h in the oriented image
        ("area", pa.float64()),
        ("iscrowd", pa.bool_()),
        ("segmentation", RLE_TYPE),  # null when the dataset has no mask
        ("labelled", pa.bool_()),
        ("difficult", pa.bool_()),
        ("truncated", pa.bool_()),
    ]
)

CATEGORIES_SCHEMA = pa.schema(
    [
        ("category_id", pa.int32()),
        ("index", pa.int32()),  # contiguous 0..K-1 in category_id order (YOLO class index)
        ("name", pa.string()),
        ("supercategory", pa.string()),
    ]
)

REJECTS_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),  # image | annotation | mask
        ("file", pa.string()),  # file holding the record
        ("record", pa.string()),  # id, line or object index within that file
        ("field", pa.string()),
        ("reason", pa.string()),
    ]
)


@dataclass
class Dataset:
    """The canonical tables, grouped for per-image work."""

    images: list[dict]
    annotations: dict[int, list[dict]]
    categories: dict[int, dict]

    @classmethod
    def load(cls, ingest_dir: str | Path, image_ids: Iterable[int] | None = None) -> "Dataset":
        """The whole dataset, or only `image_ids` and their annotations: what a shard job
        reads (turning all of COCO's 828k annotations into Python took seconds per job)."""
        ingest_dir = Path(ingest_dir)
        images = pq.read_table(ingest_dir / "images.parquet")
        annotations = pq.read_table(ingest_dir / "annotations.parquet")
        if image_ids is not None:
            wanted = pa.array(sorted(set(image_ids)), pa.int64())
            images = images.filter(pc.is_in(images["image_id"], value_set=wanted))
            annotations = annotations.filter(pc.is_in(annotations["image_id"], value_set=wanted))
        by_image: dict[int, list[dict]] = defaultdict(list)
        for ann in annotations.to_pylist():
            by_image[ann["image_id"]].append(ann)
        cats = {c["category_id"]: c for c in pq.read_table(ingest_dir / "categories.parquet").to_pylist()}
        return cls(sorted(images.to_pylist(), key=lambda r: r["image_id"]), dict(by_image), cats)


def image_ids(ingest_dir: str | Path) -> list[int]:
    """Every ingested image id, in order (one column read)."""
    return sorted(pq.read_table(Path(ingest_dir) / "images.parquet", columns=["image_id"])["image_id"].to_pylist())


def shard_image_ids(every_image: list[int], index: int, size: int) -> list[int]:
    """Shard k holds images k*size .. (k+1)*size-1 in image-id order (possibly none)."""
    return every_image[index * size : (index + 1) * size]
