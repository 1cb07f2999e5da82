"""The dataset file formats ingest reads, one record each: where its file names are relative to,
how it is read into the collector, how many images it lists (cheaply, before ingest runs), which
folders hold its images and which files hold its labels. `sources` (several datasets of these
formats) and `synthetic` (a world generated here) are built on top, in ingest/__init__.py.
Adding a format: its reader module, a record below, its kind in the config schema."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import ijson

from . import coco, voc, yolo
from ..io import write_json
from .collector import Collector


@dataclass(frozen=True)
class DatasetFormat:
    kind: str
    root: Callable[[dict], Path]  # the folder its file names are relative to
    read: Callable[[Collector, dict], None]  # every image and annotation into the collector
    count: Callable[[dict], int]  # image records listed, without reading labels
    image_folders: Callable[[dict], list[Path]]  # where its image files live
    label_files: Callable[[dict], list[str]]  # the files whose content ingest reads


def _voc_read(collector: Collector, dataset: dict) -> None:
    voc.read(collector, Path(dataset["root"]), dataset["annotations_dir"], dataset["images_dir"],
             dataset["segmentation_dir"], dataset["image_sets"], dataset.get("classes"))


def _voc_label_files(dataset: dict) -> list[str]:
    root = Path(dataset["root"])
    files = sorted((root / dataset["annotations_dir"]).glob("*.xml"))
    files += [root / rel for rel in dataset["image_sets"].values()]
    files += sorted((root / dataset["segmentation_dir"]).glob("*.png"))
    return [str(p) for p in files]


def _yolo_count(dataset: dict) -> int:
    data = yolo.load_data_yaml(Path(dataset["data_yaml"]))
    root = yolo.dataset_root(Path(dataset["data_yaml"]), data)
    return sum(len(yolo.split_images(root, data[s])) for s in ("train", "val", "test") if data.get(s))


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


def cached_count(path: Path, count: Callable[[Path], int]) -> int:
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


FORMATS = {f.kind: f for f in (
    DatasetFormat("coco", root=lambda d: Path(d["images"]), read=lambda c, d: coco.read(c, Path(d["annotations"])),
                  count=lambda d: cached_count(Path(d["annotations"]), _coco_image_count),
                  image_folders=lambda d: [Path(d["images"])], label_files=lambda d: [d["annotations"]]),
    DatasetFormat("voc", root=lambda d: Path(d["root"]), read=_voc_read,
                  count=lambda d: len(list((Path(d["root"]) / d["annotations_dir"]).glob("*.xml"))),
                  image_folders=lambda d: [Path(d["root"]) / d["images_dir"]], label_files=_voc_label_files),
    DatasetFormat("yolo", root=lambda d: Path(d["data_yaml"]).parent, read=lambda c, d: yolo.read(c, Path(d["data_yaml"])),
                  count=_yolo_count, image_folders=lambda d: [Path(d["data_yaml"]).parent],
                  label_files=lambda d: [d["data_yaml"], *map(str, yolo.label_files(Path(d["data_yaml"])))]),
)}
