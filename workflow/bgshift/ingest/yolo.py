"""YOLO: data.yaml + images/ and labels/ folders, box or polygon lines."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import yaml

from .collector import Collector, IngestError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def load_data_yaml(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise IngestError(f"{path}: malformed YAML{where}: {exc}") from None
    if not isinstance(data, dict) or "names" not in data:
        raise IngestError(f"{path}: a YOLO data.yaml needs a 'names' entry")
    return data


def class_names(data: dict, data_yaml: Path | str = "data.yaml") -> dict[int, str]:
    """Class id -> name, by the ids the file gives: `names: {0: sheep, 5: dog}` keeps 5 for dog."""
    names = data["names"]
    if not isinstance(names, dict):
        return {i: str(n) for i, n in enumerate(names)}
    out = {}
    for key, name in names.items():
        try:
            out[int(key)] = str(name)
        except (TypeError, ValueError):
            raise IngestError(f"{data_yaml}: names: class id {key!r} is not an integer") from None
    return dict(sorted(out.items()))


def split_images(root: Path, spec) -> list[Path]:
    """Image files of one split: a folder, a .txt list, or a list of either."""
    specs = spec if isinstance(spec, list) else [spec]
    found: list[Path] = []
    for item in specs:
        path = (root / str(item))
        if path.suffix == ".txt":
            found += [(root / line.strip()) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        else:
            found += [p for p in sorted(path.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
    return found


def label_path(image: Path) -> Path:
    """ultralytics' convention: the last /images/ in the path becomes /labels/, suffix .txt."""
    parts = list(image.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def parse_line(line: str) -> tuple[int, list[float], list[float] | None]:
    """'c cx cy w h' or 'c x1 y1 x2 y2 ...' (normalised) -> class, box (normalised xywh), polygon."""
    values = line.split()
    try:
        cls = int(values[0])
        coords = [float(v) for v in values[1:]]
    except ValueError:
        raise ValueError("the class is not an integer or a coordinate is not a number") from None
    if len(coords) == 4:
        cx, cy, w, h = coords
        return cls, [cx - w / 2, cy - h / 2, w, h], None
    if len(coords) >= 6 and len(coords) % 2 == 0:
        xs, ys = coords[0::2], coords[1::2]
        return cls, [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)], coords
    raise ValueError(f"expected 5 values or a class and 3+ points, got {len(values)} values")


def dataset_root(data_yaml: Path, data: dict) -> Path:
    """data.yaml's `path`, relative to the yaml's folder unless absolute."""
    root = Path(data.get("path") or ".")
    return root if root.is_absolute() else Path(data_yaml).parent / root


def label_files(data_yaml: Path) -> list[Path]:
    """Every label file the listed images point to (what ingest reads besides data.yaml)."""
    data = load_data_yaml(Path(data_yaml))
    root = dataset_root(Path(data_yaml), data)
    return sorted({label_path(image) for split in ("train", "val", "test") if data.get(split)
                   for image in split_images(root, data[split]) if label_path(image).is_file()})


def excerpt(line: str, limit: int = 40) -> str:
    """A short, escaped piece of a bad line for a reject reason (never the whole of it)."""
    return repr(line[:limit]) + ("..." if len(line) > limit else "")


def read(collector: Collector, data_yaml: Path) -> None:
    data_yaml = Path(data_yaml)
    data = load_data_yaml(data_yaml)
    root = dataset_root(data_yaml, data)
    collector.root = root
    for class_id, name in class_names(data, data_yaml).items():
        collector.add_category(class_id, name, source=str(data_yaml))
    collector.linked_roots = _named_folders(root, data)
    image_id = 0
    used_labels: set[Path] = set()
    label_folders: set[Path] = set()
    for split in ("train", "val", "test"):
        if not data.get(split):
            continue
        images = split_images(root, data[split])
        if images and not any(label_path(image).parent.is_dir() for image in images):
            raise IngestError(f"{data_yaml}: split {split!r}: no labels folder beside its images "
                              f"(expected {label_path(images[0]).parent}, ultralytics' images/ -> labels/ convention)")
        for image in images:
            image_id += 1
            rel = os.path.relpath(image, root)  # a folder data.yaml names by ../ or an absolute path alike
            entry = collector.add_image(image_id, rel, str(data_yaml), None, split=split)
            labels = label_path(image)
            label_folders.add(labels.parent)
            if not labels.is_file():
                collector.counts["images_without_labels"] += int(entry is not None)  # a background image in YOLO
                continue
            used_labels.add(labels.resolve())
            if not collector.inside(labels):
                collector.reject("label_file", labels, "label file", "path",
                                 f"label file resolves to {labels.resolve()}, outside the dataset root {root.resolve()}; not read")
                continue
            try:
                lines = labels.read_text(encoding="utf-8").splitlines()
            except UnicodeDecodeError as exc:
                collector.reject("label_file", labels, "label file", "encoding", f"not UTF-8 text ({exc.reason} at byte {exc.start})")
                _reject_lines(collector, labels, "its label file is not UTF-8 text")
                continue
            _add_label_lines(collector, labels, lines, image_id, entry)
    for orphan in _orphan_labels(label_folders, used_labels):
        if not collector.inside(orphan):
            collector.reject("label_file", orphan, "label file", "path", "label file without a matching image, "
                             "resolving outside the dataset root; not read")
            continue
        collector.reject("label_file", orphan, "label file", "path", "label file without a matching image")
        _reject_lines(collector, orphan, "its label file has no matching image")


def _add_label_lines(collector: Collector, labels: Path, lines: list[str], image_id: int, entry) -> None:
    """A label file's lines as annotations of its image (normalised to the frame the labels are in)."""
    w, h = (entry.declared_w, entry.declared_h) if entry else (1, 1)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        record = f"line {number}"
        try:
            cls, (x, y, bw, bh), polygon = parse_line(line)
        except ValueError as exc:
            collector.counts["annotations_input"] += 1
            collector.reject("annotation", labels, record, "line", f"malformed label line {excerpt(line)}: {exc}")
            continue
        segmentation = None
        if polygon is not None:
            segmentation = [[v * (w if i % 2 == 0 else h) for i, v in enumerate(polygon)]]
        collector.add_annotation(image_id=image_id, category_id=cls, source_file=str(labels), record=record, segmentation=segmentation,
                                 bbox=list(np.array([x * w, y * h, bw * w, bh * h], dtype=np.float64)))


def _reject_lines(collector: Collector, labels: Path, reason: str) -> None:
    """Every annotation line of a label file that is rejected whole, one reject row each, so the
    annotation totals hold them (input = ingested + rejected)."""
    for number, line in enumerate(labels.read_bytes().splitlines(), start=1):
        if line.strip():
            collector.counts["annotations_input"] += 1
            collector.reject("annotation", labels, f"line {number}", "line", reason)


def _named_folders(root: Path, data: dict) -> list[Path]:
    """The split folders data.yaml names and their labels folders, links followed: a dataset that
    keeps `images/` as a link to a sibling folder names that folder itself, so it may be read."""
    folders = []
    for split in ("train", "val", "test"):
        specs = data.get(split) or []
        for item in specs if isinstance(specs, list) else [specs]:
            folder = root / str(item)
            if folder.is_dir():
                folders += [folder.resolve(), label_path(folder / "x.jpg").parent.resolve()]
    return folders


def _orphan_labels(folders: set[Path], used: set[Path]) -> list[Path]:
    """Label files in the splits' labels folders that no listed image points to."""
    return sorted(p for folder in folders if folder.is_dir() for p in folder.glob("*.txt") if p.resolve() not in used)
