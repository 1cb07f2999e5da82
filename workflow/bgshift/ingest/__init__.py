"""Ingest: any supported dataset -> canonical tables (images, annotations, categories, rejects)."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import ijson

from . import coco, sources, synthetic, voc, yolo
from ..io import write_json
from .collector import Collector, IngestError

__all__ = ["run", "count_inputs", "input_files", "summary_line", "IngestError"]


def summary_line(summary: dict, rejects: str | Path) -> str:
    """One line for the console: what went in, what was kept, what was rejected and where it is listed."""
    images, annotations = summary["images"], summary["annotations"]
    line = (f"ingest: {images['ingested']} of {images['input']} images and {annotations['ingested']} of "
            f"{annotations['input']} annotations kept")
    rejected = images["rejected"] + annotations["rejected"] + annotations.get("masks_dropped", 0)
    if rejected:
        line += (f"; rejected {images['rejected']} images, {annotations['rejected']} annotations, "
                 f"{annotations.get('masks_dropped', 0)} masks (reasons: {rejects})")
    return line


def run(config: dict, out_dir: str | Path) -> dict:
    """Read the configured dataset and write the canonical tables to out_dir; returns the summary."""
    dataset, out_dir = config["dataset"], Path(out_dir)
    collector = Collector.from_settings(out_dir if dataset["kind"] == "synthetic" else _root(dataset), config["ingest"])
    record = None
    if dataset["kind"] == "synthetic":
        synthetic.read(collector, out_dir, config["seed"], dataset["synthetic"])
    elif dataset["kind"] == "sources":
        record = sources.read(collector, dataset["sources"], _read_one)
    else:
        _read_one(collector, dataset)
    if dataset.get("group_by"):
        _apply_group(collector, dataset["group_by"])
    summary = collector.write(out_dir)
    if record is not None:
        summary["sources"] = record
        write_json(out_dir / "summary.json", summary)
    return summary


def _root(dataset: dict) -> Path:
    """The folder a dataset's (or a source's) file names are relative to."""
    return Path({"coco": lambda: dataset["images"], "voc": lambda: dataset["root"], "yolo": lambda: Path(dataset["data_yaml"]).parent,
                 "sources": lambda: "."}[dataset["kind"]]())


def _read_one(collector: Collector, dataset: dict) -> None:
    """One COCO, VOC or YOLO dataset (or source) into the collector, its file names relative to its root."""
    collector.root = _root(dataset)
    if dataset["kind"] == "coco":
        coco.read(collector, Path(dataset["annotations"]))
    elif dataset["kind"] == "voc":
        voc.read(collector, Path(dataset["root"]), dataset["annotations_dir"], dataset["images_dir"],
                 dataset["segmentation_dir"], dataset["image_sets"], dataset.get("classes"))
    else:
        yolo.read(collector, Path(dataset["data_yaml"]))


def _apply_group(collector: Collector, column: str) -> None:
    """Group images by their folder (e.g. one folder per farm) or by another images column."""
    for row in collector.images:
        row["group"] = str(Path(row["file_name"]).parent) if column == "folder" else str(row.get(column))


def count_inputs(config: dict) -> int:
    """Number of image records in the input, cheaply, so the DAG's shard count is known before ingest."""
    dataset = config["dataset"]
    kind = dataset["kind"]
    if kind == "sources":
        return sum(count_inputs({"dataset": source}) for source in dataset["sources"].values())
    if kind == "coco":
        return _cached(Path(dataset["annotations"]), _coco_image_count)
    if kind == "voc":
        return len(list((Path(dataset["root"]) / dataset["annotations_dir"]).glob("*.xml")))
    if kind == "yolo":
        data = yolo.load_data_yaml(Path(dataset["data_yaml"]))
        root = yolo.dataset_root(Path(dataset["data_yaml"]), data)
        return sum(len(yolo.split_images(root, data[s])) for s in ("train", "val", "test") if data.get(s))
    return dataset["synthetic"]["num_images"]


def image_listing(config: dict) -> str:
    """A digest of the dataset's image files, names and sizes (not their bytes, so a plan at
    COCO scale stays fast), as a param of ingest: adding, removing or repairing an image (a
    rejected one replaced by a good copy) reruns ingest, which reads pixels as well as labels."""
    dataset = config["dataset"]
    if dataset["kind"] == "sources":
        return hashlib.sha256("".join(image_listing({"dataset": s}) for s in dataset["sources"].values()).encode()).hexdigest()[:16]
    folders = {"coco": lambda: [Path(dataset["images"])],
               "voc": lambda: [Path(dataset["root"]) / dataset["images_dir"]],
               "yolo": lambda: [Path(dataset["data_yaml"]).parent]}.get(dataset["kind"], lambda: [])()
    digest = hashlib.sha256()
    for folder in folders:
        for directory, _, files in sorted(os.walk(folder)):
            for name in sorted(f for f in files if Path(f).suffix.lower() in yolo.IMAGE_SUFFIXES):
                path = os.path.join(directory, name)
                size = os.stat(path).st_size if os.path.isfile(path) else -1
                digest.update(f"{os.path.relpath(path, folder)}\0{size}\n".encode())
    return digest.hexdigest()[:16]


def input_files(config: dict) -> list[str]:
    """The dataset files whose content ingest reads (annotations, not pixels), so that editing
    one of them reruns ingest and everything downstream (Snakemake's input-change trigger)."""
    dataset = config["dataset"]
    kind = dataset["kind"]
    if kind == "sources":
        return [path for source in dataset["sources"].values() for path in input_files({"dataset": source})]
    if kind == "coco":
        return [dataset["annotations"]]
    if kind == "voc":
        root = Path(dataset["root"])
        files = sorted((root / dataset["annotations_dir"]).glob("*.xml"))
        files += [root / rel for rel in dataset["image_sets"].values()]
        files += sorted((root / dataset["segmentation_dir"]).glob("*.png"))
        return [str(p) for p in files]
    if kind == "yolo":
        return [dataset["data_yaml"], *map(str, yolo.label_files(Path(dataset["data_yaml"])))]
    return []


def _coco_image_count(path: Path) -> int:
    """The length of the json's "images" list, parsed as a stream that stops at its end: COCO's
    448 MB train json lists its images first, so the annotations are never read (or held)."""
    with open(path, "rb") as fh:
        try:
            images = next(ijson.items(fh, "images"), [])
        except ijson.JSONError:
            return 0  # ingest reports the error with its position
    return len(images) if isinstance(images, list) else 0


COUNT_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bgshift" / "input-counts.json"


def _cached(path: Path, count) -> int:
    """count(path), remembered by the file's path, size and mtime: Snakemake evaluates the
    workflow (and so this count) at every start and inside every cluster job, and parsing a
    full COCO json takes seconds."""
    stat = path.stat()
    key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    try:
        cache = json.loads(COUNT_CACHE.read_text())
    except (OSError, ValueError):
        cache = {}
    if key not in cache:
        cache[key] = count(path)
        try:
            write_json(COUNT_CACHE, cache)
        except (OSError, ValueError):
            pass  # a read-only home (or one outside the results folder): count again next time
    return cache[key]
