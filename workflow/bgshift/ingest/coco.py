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
    except RecursionError:
        raise IngestError(f"{path}: JSON nested too deeply to read (thousands of levels; COCO has four)") from None


def _field(record: dict, name: str, path: Path, kind: str):
    if name not in record:
        raise IngestError(f"{path}: {kind} record {record.get('id', '?')} has no {name!r} field")
    return record[name]


MAX_ID = 2**63 - 1  # ids are stored as int64


def _id_problem(record, name: str) -> str | None:
    """Why record[name] is not a usable id (an integer in 0..2^63-1), or None."""
    if not isinstance(record, dict):
        return f"the record is a {type(record).__name__}, not an object"
    if name not in record:
        return f"no {name!r} field"
    value = record[name]
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_ID:
        return f"{name} {json.dumps(value)[:40]} is not an integer between 0 and 2^63-1"
    return None


def _flag_problem(ann: dict) -> tuple[str, str] | None:
    """A yes/no field (iscrowd, and bgshift's labelled) that is not 0, 1, false or true: bool() of
    "0", "false" or 7 is True, which made such objects crowds that vanish from scoring."""
    for name in ("iscrowd", "labelled"):
        value = ann.get(name, 0)
        if not (isinstance(value, bool) or (isinstance(value, int) and value in (0, 1))):
            return name, f"{name} {json.dumps(value)[:40]} is not 0, 1, false or true"
    return None


def _declared_size(im: dict) -> tuple[int, int] | str | None:
    """(width, height) as written, None when absent, or why they are unusable."""
    if "width" not in im or "height" not in im:
        return None
    w, h = im["width"], im["height"]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (w, h)):
        return f"width/height {json.dumps(w)[:20]}x{json.dumps(h)[:20]} are not positive integers"
    return w, h


def read(collector: Collector, annotations: Path) -> None:
    annotations = Path(annotations)
    data = load_json(annotations)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise IngestError(f"{annotations}: not a COCO instances file (no 'images' list at the top level)")
    for cat in data.get("categories", []):
        problem = _id_problem(cat, "id")
        if problem:
            raise IngestError(f"{annotations}: category record {str(cat)[:60]}: {problem}")
        collector.add_category(cat["id"], _field(cat, "name", annotations, "category"), cat.get("supercategory", ""), str(annotations))
    source = str(annotations)
    for position, im in enumerate(data["images"]):
        declared = _declared_size(im) if isinstance(im, dict) else None
        problem = _id_problem(im, "id") or (declared if isinstance(declared, str) else None)
        if problem is None and not isinstance(im.get("file_name"), str):
            problem = "no 'file_name' string"
        if problem:
            collector.counts["images_input"] += 1
            collector.reject("image", source, f"images[{position}]", "id", problem)
            continue
        collector.add_image(im["id"], im["file_name"], source, declared)
    for position, ann in enumerate(data.get("annotations", [])):
        id_problem = next(filter(None, (_id_problem(ann, key) for key in ("id", "image_id", "category_id"))), None)
        field_name, reason = ("id", id_problem) if id_problem else (_flag_problem(ann) or (None, None))
        if reason:
            collector.counts["annotations_input"] += 1
            collector.reject("annotation", source, f"annotations[{position}]", field_name, reason)
            continue
        collector.add_annotation(
            image_id=ann["image_id"],
            category_id=ann["category_id"],
            bbox=ann.get("bbox"),
            source_file=source,
            record=f"annotation id {ann['id']}",
            ann_id=ann["id"],
            segmentation=ann.get("segmentation"),
            iscrowd=bool(ann.get("iscrowd", 0)),  # 0 / 1 / false / true: _flag_problem checked it
            labelled=bool(ann.get("labelled", True)),
        )
