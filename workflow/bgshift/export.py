"""Export: one set as sharded Parquet, COCO and YOLO.

Parquet follows the Hugging Face `datasets` layout; COCO is json + the variant JPEG bytes
as files (not re-encoded); YOLO is data.yaml, images hard-linked to the COCO ones, and
labels. Unlabelled instances (dropped or never labelled) are left out of COCO and YOLO
labels but stay in Parquet with labelled=false.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from . import drops as drops_mod
from . import masks
from .config import ConfigError
from . import splits as splits_mod
from .io import PartWriter, atomic_dir, read_categories, write_json
from .progress import progress
from .sets import SetSpec, spec_of
from .variants import manifest
from .variants.schema import FEATURES

EXPORT_FEATURES = datasets.Features({
    **FEATURES,
    "set": datasets.Value("string"),
    "split": datasets.Value("string"),
    "drop_scheme": datasets.Value("string"),
    "repeat": datasets.Value("int32"),  # copy index in size-matched baselines
})
EXPORT_SCHEMA = EXPORT_FEATURES.arrow_schema


def yolo_line(obj: dict, width: int, height: int, polygons: bool) -> str:
    """One YOLO label line: 'class cx cy w h' or 'class x1 y1 x2 y2 ...' (normalised)."""
    if polygons and obj["segmentation"]:
        contours, _ = cv2.findContours(masks.decode(obj["segmentation"]), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        if contours:
            pts = max(contours, key=cv2.contourArea).reshape(-1, 2)
            if len(pts) >= 3:
                coords = " ".join(f"{x / width:.6f} {y / height:.6f}" for x, y in pts)
                return f"{obj['category']} {coords}"
    x, y, w, h = obj["bbox"]
    return f"{obj['category']} {(x + w / 2) / width:.6f} {(y + h / 2) / height:.6f} {w / width:.6f} {h / height:.6f}"


class Exporter:
    """Writes one set: all its splits, in the three formats, into a fresh folder."""

    def __init__(self, root: Path, spec: SetSpec, categories: list[dict], part_rows: int, yolo_polygons: bool):
        self.root, self.spec, self.categories = root, spec, categories
        self.part_rows, self.polygons = part_rows, yolo_polygons

    def write_split(self, split: str, rows) -> dict:
        parts = PartWriter(self.root / "parquet" / split, EXPORT_SCHEMA, self.part_rows)
        coco_images = self.root / "coco" / split
        yolo_images, yolo_labels = self.root / "yolo" / "images" / split, self.root / "yolo" / "labels" / split
        for folder in (coco_images, yolo_images, yolo_labels):
            folder.mkdir(parents=True, exist_ok=True)
        coco = {"images": [], "annotations": [], "categories": [
            {"id": c["category_id"], "name": c["name"], "supercategory": c["supercategory"]} for c in self.categories]}
        labels = 0
        for image_id, row in enumerate(progress(rows, desc=f"export {self.spec.name} {split}", unit="image"), start=1):
            file_name = f"{row['variant']}_{row['image_id']}" + (f"_r{row['repeat']}" if self.spec.repeat > 1 else "") + ".jpg"
            (coco_images / file_name).write_bytes(row["image"]["bytes"])
            _link(coco_images / file_name, yolo_images / file_name)
            coco["images"].append({"id": image_id, "file_name": f"{split}/{file_name}", "width": row["width"],
                                   "height": row["height"], "source_image_id": row["image_id"], "variant": row["variant"]})
            lines = []
            for obj in row["objects"]:
                if not obj["labelled"]:
                    continue
                coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": image_id,
                                            "category_id": obj["category_id"], "bbox": obj["bbox"], "area": obj["area"],
                                            "iscrowd": int(obj["iscrowd"]), "segmentation": obj["segmentation"] or [],  # [] box only
                                            "source_ann_id": obj["ann_id"]})  # traceable to ingest and drops.parquet
                if not obj["iscrowd"]:
                    lines.append(yolo_line(obj, row["width"], row["height"], self.polygons))
            (yolo_labels / file_name).with_suffix(".txt").write_text("".join(line + "\n" for line in lines))
            labels += len(lines)
            parts.add({**row, "image": {"bytes": row["image"]["bytes"], "path": file_name}})
        parts.close()
        write_json(self.root / "coco" / f"{split}.json", coco, indent=None)
        return {"images": len(coco["images"]), "annotations": len(coco["annotations"]), "yolo_labels": labels}

    def write_data_yaml(self, splits: tuple[str, ...]) -> None:
        data = {"names": {c["index"]: c["name"] for c in self.categories}}
        for split in splits:
            data[split] = f"images/{split}"
        # ultralytics needs train and val keys; a test set points them at its test images
        data.setdefault("train", f"images/{splits[0]}")
        data.setdefault("val", f"images/{splits[0]}")
        header = f"# {self.spec.name}: variants {list(self.spec.variants)}, drop scheme {self.spec.drop}\n"
        (self.root / "yolo" / "data.yaml").write_text(header + yaml.safe_dump(data, sort_keys=True, allow_unicode=True))


def _link(src: Path, dst: Path) -> None:
    """YOLO's copy of an image: a hard link to the COCO file (a copy across filesystems)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def set_rows(spec: SetSpec, split: str, variant_files: dict[str, list[Path]], split_of: dict[int, str], dropped: set[int]):
    """The rows of one split of a set, streamed variant by variant, shard by shard."""
    drop = spec.drop if split == "train" else "normal"
    copies = spec.repeat if split == "train" else 1
    for variant in spec.variants:
        for path in variant_files[variant]:
            table = pq.read_table(path)
            keep = [split_of.get(i) == split for i in table.column("image_id").to_pylist()]
            for row in table.filter(pa.array(keep, pa.bool_())).to_pylist():
                if drop != "normal":
                    row["objects"] = [{**o, "labelled": o["labelled"] and o["ann_id"] not in dropped} for o in row["objects"]]
                for k in range(copies):
                    yield {**row, "set": spec.name, "split": split, "drop_scheme": drop, "repeat": k}


class EmptySplit(ConfigError):
    """A set needs a split that holds no image: its Parquet part, COCO json and data.yaml could
    not be loaded (datasets: "BatchSize must be greater than 0"; ultralytics: no images)."""


def _stop_on_empty(spec: SetSpec, empty: list[str], why: str) -> None:
    if empty:
        raise EmptySplit(f"set {spec.name} needs the {' and '.join(empty)} split{'s' if len(empty) > 1 else ''} "
                         f"({'training and model selection' if 'train' in spec.splits else 'testing'}), which "
                         f"hold{'s' if len(empty) == 1 else ''} no image ({why}): give {'them' if len(empty) > 1 else 'it'} images "
                         f"(splits.ratios, splits.test_groups / val_groups, or the dataset's own splits), or leave the set out")


def export(definition: dict, part_rows: int, yolo_polygons: bool, variant_manifest: str | Path, splits_path: str | Path,
           drops_path: str | Path, categories_path: str | Path, out_dir: str | Path) -> dict:
    """Write results/sets/<set> atomically (built in a temporary folder, then renamed).

    `definition` is one entry of `definitions(config)`; the variant stage's manifest names its shard files."""
    spec = spec_of(definition)
    out_dir = Path(out_dir)
    variant_files = manifest.variant_files(variant_manifest, spec.variants)
    split_of = splits_mod.load(splits_path)
    counts = {split: sum(s == split for s in split_of.values()) for split in splits_mod.SPLITS}
    _stop_on_empty(spec, [split for split in spec.splits if counts[split] == 0], f"{splits_path}: {counts}")
    dropped = drops_mod.dropped_ids(drops_path).get(spec.drop, set())
    categories, _ = read_categories(categories_path)
    with atomic_dir(out_dir) as tmp:
        exporter = Exporter(tmp, spec, categories, part_rows, yolo_polygons)
        summary = {split: exporter.write_split(split, set_rows(spec, split, variant_files, split_of, dropped)) for split in spec.splits}
        _stop_on_empty(spec, [split for split, written in summary.items() if not written["images"]],
                       f"its variants {list(spec.variants)} have no image there: images that failed segmentation QC "
                       f"have no variants, see segment/summary.json")
        exporter.write_data_yaml(spec.splits)
        write_json(tmp / "summary.json", {"set": spec.name, "variants": list(spec.variants), "drop": spec.drop,
                                          "repeat": spec.repeat, "made_of": definition["made_of"], "splits": summary})
    return summary
