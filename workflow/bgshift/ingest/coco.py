"""COCO instances JSON: boxes, polygon and RLE masks, crowd regions, any category ids."""
from __future__ import annotations

import json
from pathlib import Path

from .collector import Collector, IngestError


def load_json(path: Path) -> dict:
    """Parse a JSON file; a syntax error names the file, line and column."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise IngestError(f"{path}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


def _field(record: dict, name: str, path: Path, kind: str):
    if name not in record:
        raise IngestError(f"{path}: {kind} record {record.get('id', '?')} has no {name!r} field")
    return record[name]


def read(collector: Collector, annotations: Path) -> None:
    annotations = Path(annotations)
    data = load_json(annotations)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise IngestError(f"{annotations}: not a COCO instances file (no 'images' list at the top level)")
    for cat in data.get("categories", []):
        collector.add_category(int(_field(cat, "id", annotations, "category")), _field(cat, "name", annotations, "category"), cat.get("supercategory", ""))
    for im in data["images"]:
        image_id = _field(im, "id", annotations, "image")
        declared = (im["width"], im["height"]) if "width" in im and "height" in im else None
        collector.add_image(int(image_id), str(_field(im, "file_name", annotations, "image")), str(annotations), declared)
    for ann in data.get("annotations", []):
        collector.add_annotation(
            image_id=int(_field(ann, "image_id", annotations, "annotation")),
            category_id=int(_field(ann, "category_id", annotations, "annotation")),
            bbox=ann.get("bbox"),
            source_file=str(annotations),
            record=f"annotation id {ann.get('id')}",
            ann_id=int(ann["id"]) if "id" in ann else None,
            segmentation=ann.get("segmentation"),
            iscrowd=bool(ann.get("iscrowd", 0)),
            labelled=bool(ann.get("labelled", True)),
        )
