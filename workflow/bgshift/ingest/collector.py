"""The one place where raw records become canonical rows or rejects.

Format readers (COCO, VOC, YOLO, synthetic) only parse; every check that decides
whether a record is usable lives here, so all formats apply the same rules and
every input record ends up counted as ingested or rejected with a reason.
"""
from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from .. import images as imgs
from .. import masks
from ..io import write_json, write_parquet

CLIP_TOLERANCE = 0.5  # pixels a box may pass the image edge before its clipping is counted (or, under reject, refused)
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


class IngestError(ValueError):
    """A dataset file that cannot be parsed at all (the message names file and position)."""


@dataclass
class ImageEntry:
    """What annotations of an accepted image need to be brought into its frame."""

    image_id: int
    info: imgs.ImageInfo
    declared_w: int
    declared_h: int
    needs_orienting: bool  # annotations were drawn on the raw (unrotated) pixels


@dataclass
class Collector:
    root: Path  # dataset root as configured (relative paths stay relative, for reproducible tables)
    invalid_boxes: str = "clip"
    max_pixels: int = 100_000_000
    verify_images: bool = True
    annotation_frame: str = "auto"  # stored | oriented | auto: which pixels boxes were drawn on
    images: list[dict] = field(default_factory=list)
    annotations: list[dict] = field(default_factory=list)
    categories: dict[int, dict] = field(default_factory=dict)
    rejects: list[dict] = field(default_factory=list)
    accepted: dict[int, ImageEntry] = field(default_factory=dict)
    rejected_image_ids: dict[int, str] = field(default_factory=dict)
    seen_ann_ids: set[int] = field(default_factory=set)
    counts: Counter = field(default_factory=Counter)
    # the same file under two ids (or in two split lists) would leak across train/val/test
    image_of_path: dict[Path, int] = field(default_factory=dict)
    image_of_content: dict[str, int] = field(default_factory=dict)
    # folders the dataset itself names (a YOLO split folder that is a link to a sibling folder):
    # files may resolve inside them too, never elsewhere
    linked_roots: list[Path] = field(default_factory=list)

    @classmethod
    def from_settings(cls, root: Path, ingest: dict) -> "Collector":
        return cls(
            root=Path(root),
            invalid_boxes=ingest["invalid_boxes"],
            max_pixels=ingest["max_pixels"],
            verify_images=ingest["verify_images"],
            annotation_frame=ingest.get("annotation_frame", "auto"),
        )

    # -- categories -------------------------------------------------------
    def add_category(self, category_id: int, name: str, supercategory: str = "", source: str = "") -> None:
        """A class; its id and its name (case folded: class names become file and folder names,
        and AP/<name> rows) must be new."""
        where = f"{source}: " if source else ""
        if category_id in self.categories:
            raise IngestError(f"{where}duplicate category id {category_id} ({name!r})")
        twin = next((c for c in self.categories.values() if c["name"].casefold() == str(name).casefold()), None)
        if twin is not None:
            raise IngestError(f"{where}category ids {twin['category_id']} ({twin['name']!r}) and {category_id} ({name!r}) "
                              f"have the same name{' when case is folded' if twin['name'] != str(name) else ''}: "
                              f"give every class its own name")
        self.categories[category_id] = {"category_id": category_id, "name": str(name), "supercategory": supercategory or ""}

    # -- rejects ----------------------------------------------------------
    def reject(self, kind: str, file: str, record, field_name: str, reason: str) -> None:
        self.rejects.append({"kind": kind, "file": str(file), "record": str(record), "field": field_name, "reason": reason})
        if kind in ("image", "annotation"):
            self.counts[f"{kind}s_rejected"] += 1

    # -- images -----------------------------------------------------------
    def relative(self, path: Path) -> str:
        """A path as reasons quote it: relative to the dataset root, as the QC reasons are."""
        return str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path)

    def inside(self, path: Path) -> bool:
        """Whether `path`, links followed, stays inside the dataset root or a folder the dataset names."""
        resolved = path.resolve()
        return any(resolved.is_relative_to(root) for root in [self.root.resolve(), *self.linked_roots])

    def resolve(self, file_name: str) -> Path | None:
        """root/file_name if it stays inside the dataset (after following links), else None."""
        if not file_name or Path(file_name).is_absolute():
            return None
        path = self.root / file_name
        return path if self.inside(path) else None

    def _path_of(self, file_name: str) -> tuple[Path | None, str | None]:
        """The image's path inside the dataset, or None and why not (outside the root, a NUL
        byte, a symlink loop: these raised instead of becoming reject rows)."""
        if "\0" in file_name:
            return None, f"file name {file_name!r} contains a NUL byte"
        try:
            path = self.resolve(file_name)
        except (RuntimeError, OSError) as exc:  # pathlib: "Symlink loop from ..."
            return None, f"file name {file_name!r} cannot be followed: {type(exc).__name__}: {str(exc)[:120]}"
        return (path, None) if path is not None else (None, f"file name {file_name!r} escapes the dataset root {self.root}")

    def add_image(
        self,
        image_id: int,
        file_name: str,
        source_file: str,
        declared_size: tuple[int, int] | None = None,
        group: str | None = None,
        split: str | None = None,
    ) -> ImageEntry | None:
        """Check one image record; returns its entry, or None when it was rejected."""
        self.counts["images_input"] += 1
        reason, field_name, info, digest = None, "file_name", None, None
        if image_id in self.accepted or image_id in self.rejected_image_ids:
            reason, field_name = f"duplicate image id {image_id}", "id"
        else:
            path, reason = self._path_of(file_name)
            if path is not None and path.resolve() in self.image_of_path:
                reason, field_name = f"the same file as image id {self.image_of_path[path.resolve()]} ({file_name})", "file_name"
            elif path is not None:
                try:
                    info = imgs.probe(path, self.max_pixels, verify=self.verify_images)
                except imgs.ImageProblem as exc:
                    reason = f"{exc} ({self.relative(path)})"
                digest = self._content_digest(path) if info is not None and self.verify_images else None
                if digest in self.image_of_content:
                    reason, field_name = (f"the same content as image id {self.image_of_content[digest]} "
                                          f"({file_name} is a copy)", "file_name")
        needs_orienting = False
        if info is not None and reason is None:
            try:
                needs_orienting = imgs.labelled_on_stored_pixels(info, declared_size, self.annotation_frame)
            except imgs.ImageProblem as exc:
                reason, field_name = f"{exc} ({self.relative(path)})", "width/height"
        if reason is not None:
            if image_id not in self.accepted:
                self.rejected_image_ids.setdefault(image_id, reason)
            self.reject("image", source_file, image_id, field_name, reason)
            return None
        declared_w, declared_h = declared_size or (
            (info.raw_width, info.raw_height) if needs_orienting else (info.width, info.height)
        )
        entry = ImageEntry(image_id, info, declared_w, declared_h, needs_orienting)
        self.accepted[image_id] = entry
        self.image_of_path[path.resolve()] = image_id
        if digest is not None:
            self.image_of_content[digest] = image_id
        self.images.append(
            {
                "image_id": image_id,
                "file_name": file_name,
                "path": path.as_posix(),
                "width": info.width,
                "height": info.height,
                "orientation": info.orientation,
                "source_mode": info.mode,
                "group": group,
                "split": split,
                "source_file": str(source_file),
            }
        )
        return entry

    @staticmethod
    def _content_digest(path: Path) -> str:
        """sha256 of the file (verify_images has just read it, so it is in the page cache)."""
        return hashlib.sha256(path.read_bytes()).hexdigest()

    # -- annotations -------------------------------------------------------
    def add_annotation(
        self,
        image_id: int,
        category_id: int,
        bbox,
        source_file: str,
        record,
        ann_id: int | None = None,
        segmentation=None,
        iscrowd: bool = False,
        labelled: bool = True,
        difficult: bool = False,
        truncated: bool = False,
    ) -> None:
        """Validate one annotation (box in the annotation file's frame, x, y, w, h)."""
        self.counts["annotations_input"] += 1
        if ann_id is None:
            ann_id = len(self.seen_ann_ids) + 1
            while ann_id in self.seen_ann_ids:
                ann_id += 1
        problem = self._annotation_problem(image_id, category_id, ann_id)
        if problem:
            self.reject("annotation", source_file, record, *problem)
            return
        entry = self.accepted[image_id]
        numbers = isinstance(bbox, (list, tuple, np.ndarray)) and all(
            isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in bbox)
        box = [float(v) for v in bbox] if numbers else []  # strings and booleans are not coordinates
        if len(box) != 4 or not all(math.isfinite(v) for v in box):
            self.reject("annotation", source_file, record, "bbox", f"bbox {bbox!r} is not four finite numbers")
            return
        if box[2] <= 0 or box[3] <= 0:
            self.reject("annotation", source_file, record, "bbox", f"bbox {bbox!r} has zero or negative size")
            return
        if entry.needs_orienting:
            box = self._orient_box(box, entry)
        box, reason = self._fit_box(box, entry.info.width, entry.info.height)
        if reason:
            self.reject("annotation", source_file, record, "bbox", reason)
            return
        rle = None
        if segmentation is not None and not (isinstance(segmentation, list) and not segmentation):
            try:
                rle = self._mask_in_frame(segmentation, entry)
            except (ValueError, TypeError, KeyError) as exc:
                self.reject("mask", source_file, record, "segmentation", f"mask dropped, box kept: {exc}")
        self.seen_ann_ids.add(ann_id)
        self.annotations.append(
            {
                "ann_id": int(ann_id),
                "image_id": int(image_id),
                "category_id": int(category_id),
                "bbox": box,
                "area": float(masks.area(rle)) if rle else box[2] * box[3],
                "iscrowd": bool(iscrowd),
                "segmentation": rle,
                "labelled": bool(labelled),
                "difficult": bool(difficult),
                "truncated": bool(truncated),
            }
        )

    def _annotation_problem(self, image_id, category_id, ann_id) -> tuple[str, str] | None:
        if ann_id in self.seen_ann_ids:
            return "id", f"duplicate annotation id {ann_id}"
        if image_id in self.rejected_image_ids and image_id not in self.accepted:
            return "image_id", f"its image {image_id} was rejected: {self.rejected_image_ids[image_id]}"
        if image_id not in self.accepted:
            return "image_id", f"unknown image id {image_id}"
        if category_id not in self.categories:
            return "category_id", f"unknown category id {category_id}"
        return None

    @staticmethod
    def _orient_box(box: list[float], entry: ImageEntry) -> list[float]:
        x, y, w, h = box
        xs, ys = imgs.orient_points(
            np.array([x, x + w]), np.array([y, y + h]), entry.info.orientation, entry.declared_w, entry.declared_h
        )
        x0, x1 = sorted(map(float, xs))
        y0, y1 = sorted(map(float, ys))
        return [x0, y0, x1 - x0, y1 - y0]

    def _fit_box(self, box: list[float], width: int, height: int) -> tuple[list[float], str | None]:
        x0, y0, w, h = box
        x1, y1 = x0 + w, y0 + h
        if x1 <= x0 or y1 <= y0:  # 1e-300 wide: positive, yet nothing once added to x
            return box, f"bbox {box} has no area (its width or height is below float precision)"
        cx0, cy0, cx1, cy1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height))
        if cx1 <= cx0 or cy1 <= cy0:
            return box, f"bbox {box} lies outside the {width}x{height} image"
        beyond = max(-x0, -y0, x1 - width, y1 - height)
        if beyond >= CLIP_TOLERANCE:  # less is float round-off of a box drawn to the edge: clipped, not counted
            if self.invalid_boxes == "reject":
                return box, f"bbox {box} extends outside the {width}x{height} image (ingest.invalid_boxes=reject)"
            self.counts["boxes_clipped"] += 1
        return [cx0, cy0, cx1 - cx0, cy1 - cy0], None

    @staticmethod
    def _mask_in_frame(segmentation, entry: ImageEntry) -> dict:
        if isinstance(segmentation, np.ndarray):
            rle = masks.encode(segmentation)
        else:
            rle = masks.from_coco_segmentation(segmentation, entry.declared_h, entry.declared_w)
        if entry.needs_orienting:
            rle = masks.encode(imgs.orient_mask(masks.decode(rle), entry.info.orientation))
        if rle["size"] != [entry.info.height, entry.info.width]:
            raise ValueError(f"mask size {rle['size']} differs from image size {[entry.info.height, entry.info.width]}")
        return rle

    # -- output ------------------------------------------------------------
    def summary(self) -> dict:
        c = self.counts
        return {
            "images": {
                "input": c["images_input"],
                "ingested": len(self.images),
                "rejected": c["images_rejected"],
                "without_labels": c["images_without_labels"],  # YOLO images with no label file: background images
            },
            "annotations": {
                "input": c["annotations_input"],
                "ingested": len(self.annotations),
                "rejected": c["annotations_rejected"],
                "unlabelled": sum(not a["labelled"] for a in self.annotations),
                "boxes_clipped": c["boxes_clipped"],
                "masks_dropped": sum(r["kind"] == "mask" for r in self.rejects),
            },
            "categories": len(self.categories),
            "reject_reasons": dict(sorted(Counter(_reason_class(r["reason"]) for r in self.rejects).items())),
        }

    def write(self, out_dir: Path) -> dict:
        """Write the four canonical tables and the summary; returns the summary."""
        out_dir = Path(out_dir)
        categories = [dict(c, index=i) for i, c in enumerate(sorted(self.categories.values(), key=lambda c: c["category_id"]))]
        tables = {
            "images": (sorted(self.images, key=lambda r: r["image_id"]), IMAGES_SCHEMA),
            "annotations": (sorted(self.annotations, key=lambda r: (r["image_id"], r["ann_id"])), ANNOTATIONS_SCHEMA),
            "categories": (categories, CATEGORIES_SCHEMA),
            "rejects": (self.rejects, REJECTS_SCHEMA),
        }
        for name, (rows, schema) in tables.items():
            write_parquet(out_dir / f"{name}.parquet", pa.Table.from_pylist(rows, schema=schema))
        summary = self.summary()
        write_json(out_dir / "summary.json", summary)
        return summary


def _reason_class(reason: str) -> str:
    """Group reject reasons for the summary: the reason's head without its record-specific
    details (numbers, quoted names, parenthesised files)."""
    head = re.sub(r"\([^()]*\)|'[^']*'|\"[^\"]*\"", "", reason.split(":")[0])
    return " ".join(w for w in head.split() if not any(ch.isdigit() for ch in w))[:80]
