"""Pictures of what the models did: the first test images of every test set, the ground truth
beside each model's detections (class names and scores), drawn by torchvision's
`draw_bounding_boxes` and laid out by the montage helper (bgshift.montage)."""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from .. import images as imgs
from ..io import inside_results, write_bytes
from ..montage import fit_square, grid

TILE = 256  # each image is fitted into a TILE x TILE square, so labels stay readable at any source size
TRUTH, DETECTION = (255, 255, 255), (0, 200, 0)
KEPT, ERASED = (0, 200, 0), (230, 0, 0)


def fitted(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """An image fitted into a TILE square (padded grey) and the scale applied to its boxes."""
    return fit_square(rgb, TILE)


def drawn(square: np.ndarray, boxes: list[list[float]], labels: list[str], colour: tuple[int, int, int], scale: float):
    """The square as a CHW tensor with its (COCO x, y, w, h) boxes and labels drawn."""
    import torch
    from torchvision.utils import draw_bounding_boxes

    tensor = torch.from_numpy(np.ascontiguousarray(square.transpose(2, 0, 1)))
    if not boxes:
        return tensor
    xyxy = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in boxes], dtype=torch.float32) * scale
    return draw_bounding_boxes(tensor, xyxy, labels=labels, colors=[colour] * len(boxes), width=2, font=label_font(), font_size=11,
                               label_colors=(0, 0, 0), fill_labels=True)  # black on the box's colour: readable on any ground


@functools.lru_cache(maxsize=1)
def label_font() -> str:
    """A TrueType font for the labels (torchvision's default bitmap font cannot be sized): the
    DejaVu Sans that matplotlib ships."""
    from matplotlib import font_manager

    return font_manager.findfont("DejaVu Sans", fallback_to_default=True)


def montage(tiles: list, columns: int, title: str) -> np.ndarray:
    """Tiles (CHW tensors) in rows of `columns`, under a title strip; RGB HWC."""
    return grid(tiles, columns, title)


def stacked(rows: list[np.ndarray]) -> np.ndarray:
    width = max((r.shape[1] for r in rows), default=TILE)
    padded = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.vstack(padded) if padded else np.full((40, TILE, 3), 255, np.uint8)


def model_row(entry: dict, detections: list[dict], label: str, threshold: float, images: int) -> np.ndarray:
    """One run on one test set: for each of its first images the ground truth (white), then the
    detections at or above `threshold` (green, 'class score')."""
    from ..metrics import load_coco

    gt = load_coco(entry["ground_truth"])
    names = {c["id"]: c["name"] for c in gt.loadCats(gt.getCatIds())}
    tiles = []
    for info in gt.loadImgs(sorted(gt.getImgIds())[:images]):
        square, scale = fitted(imgs.read_rgb(Path(entry["ground_truth"]).parent / info["file_name"]))
        truth = gt.loadAnns(gt.getAnnIds(imgIds=[info["id"]]))
        tiles.append(drawn(square, [a["bbox"] for a in truth], [names[a["category_id"]] for a in truth], TRUTH, scale))
        found = [d for d in detections if d["image_id"] == info["id"] and d["score"] >= threshold]
        tiles.append(drawn(square, [d["bbox"] for d in found], [f"{names.get(d['category_id'], d['category_id'])} {d['score']:.2f}"
                                                                 for d in found], DETECTION, scale))
    title = f"{label}: ground truth (white) | detections >= {threshold} (green), pairs left to right"
    return montage(tiles, 2 * max(1, min(images, len(tiles) // 2)), title)


def first_runs(manifests: list[str | Path]) -> dict[str, tuple[Path, dict]]:
    """Each detector's first run (training set, seed) in path order: the one the pictures show."""
    chosen: dict[str, tuple[Path, dict]] = {}
    for path in sorted(map(Path, manifests)):
        manifest = json.loads(path.read_text())
        if manifest["task"] == "detection":
            chosen.setdefault(manifest["model"], (path, manifest))
    return chosen


def detection_pictures(manifests: list[str | Path], out: str | Path, out_dir: str | Path, threshold: float, images: int) -> list[str]:
    """`out`: test_original; `out_dir/<test set>.png`: every test set the detectors were scored on
    at their best checkpoint. Returns the test sets drawn."""
    inside_results(out_dir).mkdir(parents=True, exist_ok=True)  # classifiers alone draw no detections: the folder stays empty
    runs = first_runs(manifests)
    rows: dict[str, list[np.ndarray]] = {}
    for model, (path, manifest) in sorted(runs.items()):
        for entry in manifest["evaluations"]:
            if entry["checkpoint"] != "best":
                continue
            detections = json.loads((path.parent / entry["detections"]).read_text())
            label = f"{entry['test_set']}: {model} ({manifest['set']}, seed {manifest['seed']})"
            rows.setdefault(entry["test_set"], []).append(model_row(entry, detections, label, threshold, images))
    for test_set, picture in sorted(rows.items()):
        write_bytes(Path(out_dir) / f"{test_set}.png", imgs.encode_png(stacked(picture)))
    write_bytes(out, imgs.encode_png(stacked(rows.get("test_original", []))))
    return sorted(rows)


def drop_overlays(ingest_dir: str | Path, drops_path: str | Path, out: str | Path, images: int) -> list[str]:
    """One row per drop scheme: its first `images` images that lose a box (the first images where
    it drops none), kept boxes green and erased ones red, each with its class (the BRL paper's
    Fig 1). Returns the schemes drawn."""
    import pyarrow.parquet as pq

    ingest_dir = Path(ingest_dir)
    paths = {r["image_id"]: r["path"] for r in pq.read_table(ingest_dir / "images.parquet", columns=["image_id", "path"]).to_pylist()}
    names = {r["category_id"]: r["name"] for r in pq.read_table(ingest_dir / "categories.parquet").to_pylist()}
    boxes = {r["ann_id"]: (r["bbox"], names[r["category_id"]])
             for r in pq.read_table(ingest_dir / "annotations.parquet", columns=["ann_id", "bbox", "category_id"]).to_pylist()}
    table = pq.read_table(drops_path).to_pandas()
    rows = []
    for scheme, decisions in table.groupby("scheme", sort=False):
        losing = sorted(decisions[decisions.dropped].image_id.unique()) or sorted(decisions.image_id.unique())
        tiles = []
        for image_id in losing[:images]:
            square, scale = fitted(imgs.read_rgb(paths[image_id]))
            of_image = decisions[decisions.image_id == image_id]
            for dropped, colour in ((False, KEPT), (True, ERASED)):
                chosen = [boxes[a] for a in of_image[of_image.dropped == dropped].ann_id]
                square = drawn(square, [b for b, _ in chosen], [n for _, n in chosen], colour, scale).permute(1, 2, 0).numpy()
            tiles.append(square)
        rows.append(montage(tiles, images, f"{scheme}: kept boxes green, erased red ({int(decisions.dropped.sum())} of {len(decisions)} erased)"))
    write_bytes(out, imgs.encode_png(stacked(rows)))
    return list(table.scheme.unique())
