"""Ingest: any supported dataset -> canonical tables (images, annotations, categories, rejects).

File formats (COCO, VOC, YOLO) are records of formats.py; `sources` combines datasets of those
formats, `synthetic` generates a world."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from . import sources, synthetic, yolo
from .formats import FORMATS
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
    root = {"synthetic": out_dir, "sources": Path(".")}.get(dataset["kind"]) or FORMATS[dataset["kind"]].root(dataset)
    collector = Collector.from_settings(root, config["ingest"])
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


def _read_one(collector: Collector, dataset: dict) -> None:
    """One COCO, VOC or YOLO dataset (or source) into the collector, its file names relative to its root."""
    collector.root = FORMATS[dataset["kind"]].root(dataset)
    FORMATS[dataset["kind"]].read(collector, dataset)


def _apply_group(collector: Collector, column: str) -> None:
    """Group images by their folder (e.g. one folder per farm) or by another images column."""
    for row in collector.images:
        row["group"] = str(Path(row["file_name"]).parent) if column == "folder" else str(row.get(column))


def count_inputs(config: dict) -> int:
    """Number of image records in the input, cheaply, so the DAG's shard count is known before ingest."""
    dataset = config["dataset"]
    if dataset["kind"] == "sources":
        return sum(count_inputs({"dataset": source}) for source in dataset["sources"].values())
    if dataset["kind"] == "synthetic":
        return dataset["synthetic"]["num_images"]
    return FORMATS[dataset["kind"]].count(dataset)


def image_listing(config: dict) -> str:
    """A digest of the dataset's image files, names and sizes (not their bytes, so a plan at
    COCO scale stays fast), as a param of ingest: adding, removing or repairing an image (a
    rejected one replaced by a good copy) reruns ingest, which reads pixels as well as labels."""
    dataset = config["dataset"]
    if dataset["kind"] == "sources":
        return hashlib.sha256("".join(image_listing({"dataset": s}) for s in dataset["sources"].values()).encode()).hexdigest()[:16]
    folders = FORMATS[dataset["kind"]].image_folders(dataset) if dataset["kind"] in FORMATS else []
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
    if dataset["kind"] == "sources":
        return [path for source in dataset["sources"].values() for path in input_files({"dataset": source})]
    return FORMATS[dataset["kind"]].label_files(dataset) if dataset["kind"] in FORMATS else []
