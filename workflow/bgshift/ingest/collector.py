"""The one place where raw records become canonical rows or rejects.

Format readers (COCO, VOC, YOLO, synthetic) only parse; every check that decides
whether a record is usable lives here, so all formats apply the same rules and
every input record ends up counted as ingested or rejected with a reason.
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from .. import images as imgs
from .. import masks
from ..io import write_json, write_parquet
from .frames import checked_box, mask_in_frame
from .tables import ANNOTATIONS_SCHEMA, CATEGORIES_SCHEMA, IMAGES_SCHEMA, REJECTS_SCHEMA


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
        path, info, digest, reason, field_name = self._probe(image_id, file_name)
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

    def _probe(self, image_id: int, file_name: str) -> tuple[Path | None, object, str | None, str | None, str]:
        """(path, image info, content digest, why it is refused, the field at fault) of an image record."""
        if image_id in self.accepted or image_id in self.rejected_image_ids:
            return None, None, None, f"duplicate image id {image_id}", "id"
        path, reason = self._path_of(file_name)
        if path is None:
            return None, None, None, reason, "file_name"
        if path.resolve() in self.image_of_path:
            return path, None, None, f"the same file as image id {self.image_of_path[path.resolve()]} ({file_name})", "file_name"
        try:
            info = imgs.probe(path, self.max_pixels, verify=self.verify_images)
        except imgs.ImageProblem as exc:
            return path, None, None, f"{exc} ({self.relative(path)})", "file_name"
        digest = self._content_digest(path) if self.verify_images else None
        if digest in self.image_of_content:
            return path, info, digest, f"the same content as image id {self.image_of_content[digest]} ({file_name} is a copy)", "file_name"
        return path, info, digest, reason, "file_name"

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
        box, reason, clipped = checked_box(bbox, entry, self.invalid_boxes)
        if clipped:
            self.counts["boxes_clipped"] += 1
        if reason:
            self.reject("annotation", source_file, record, "bbox", reason)
            return
        rle = None
        if segmentation is not None and not (isinstance(segmentation, list) and not segmentation):
            try:
                rle = mask_in_frame(segmentation, entry)
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
