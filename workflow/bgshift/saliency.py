"""Saliency: where a model looks, and how much of it falls on the objects.

For a run's best checkpoint, pytorch-grad-cam draws a map on a fixed sample of every test set:
Grad-CAM of the sample's own class for classifiers, EigenCAM of the feature maps for detectors
(their family's `explainable`, train/interface.py). Beside each map, its *foreground
attention*: the share of the map's mass inside the objects' masks (an object stored as a box
only counts its box), and the objects' share of the picture, what a map spread evenly would
give. The sample is chosen by source image (a hash of the config's seed and the image), so the
same pictures are compared on every test variant, in every run and seed (a claim's arms are
paired). A test image without objects (background-only variants) gets a map but no share.

Outputs: saliency.parquet (one row per map; `score` turns it into the fg_attention and fg_area
metric rows and the findings' per-image records) and a contact sheet per run, a row per test set.
"""
from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import masks
from .images import decode_rgb, encode_png, read_rgb
from .montage import fit_square, grid

SCHEMA = pa.schema([("testset", pa.string()), ("image", pa.int64()), ("unit", pa.int64()), ("ann_id", pa.int64()),
                    ("fg_share", pa.float64()), ("fg_area", pa.float64())])
TILE = 128  # pixels of a sheet's tile
# Grad-CAM's map on ImageNet's 224-pixel inputs is 7 x 7 (ResNet's last stage); on a 48- or 64-pixel
# crop that stage is 2 x 2, so the map is drawn on the deepest stage that keeps about that: 6 cells a
# side or more (ResNet's layer2 on a 48-pixel crop, 6 x 6; on a 64-pixel one, 8 x 8)
MIN_CELLS = 6


@dataclass
class Sample:
    """One picture a map is drawn on: its pixels, its objects' mask (None: no object), its class
    (classifiers' crops) and where it came from."""

    image: int
    unit: int
    ann_id: int
    rgb: np.ndarray
    mask: np.ndarray | None
    label: int | None = None


def chosen(keys: list[tuple[int, int]], seed: int, count: int) -> list[int]:
    """Indices of `count` (unit, object) keys, ranked by a hash of the seed and the unit, so every
    test set of the study picks the same source images (a set that lacks one picks the next)."""
    rank = sorted(range(len(keys)), key=lambda k: (zlib.crc32(f"{seed}/{keys[k][0]}".encode()), keys[k]))
    return rank[:count]


def objects_mask(coco, image: dict) -> np.ndarray | None:
    """The union of an image's objects' masks (a box where an object has no mask); None without objects."""
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
    if not anns:
        return None
    shape = (image["height"], image["width"])
    union = masks.boxes_mask([ann["bbox"] for ann in anns if not ann.get("segmentation")], shape).astype(bool)
    for ann in anns:
        if ann.get("segmentation"):
            union |= coco.annToMask(ann).astype(bool)
    return union


def detection_samples(coco_json: Path, seed: int, count: int) -> list[Sample]:
    from .metrics import load_coco

    coco = load_coco(coco_json, engine="pycocotools")
    images = coco.loadImgs(sorted(coco.getImgIds()))
    picked = [images[k] for k in chosen([(im.get("source_image_id", im["id"]), im["id"]) for im in images], seed, count)]
    return [Sample(im["id"], im.get("source_image_id", im["id"]), -1, read_rgb(coco_json.parent / im["file_name"]),
                   objects_mask(coco, im)) for im in picked]


def crop_samples(parts: Path, seed: int, count: int) -> list[Sample]:
    """Crops of a classifier's test split: each with its own object's mask, cut with it (crops.py)."""
    rows = [row for part in sorted(parts.glob("*.parquet"))
            for row in pq.read_table(part, columns=["image", "mask", "label", "image_id", "ann_id"]).to_pylist()]
    picked = [rows[k] for k in chosen([(row["image_id"], row["ann_id"]) for row in rows], seed, count)]
    return [Sample(row["image_id"], row["image_id"], row["ann_id"], decode_rgb(row["image"]["bytes"]),
                   masks.decode(row["mask"]).astype(bool), row["label"]) for row in picked]


class _ClassScore:
    """A Grad-CAM target: the score of one class from one sample's output."""

    def __init__(self, score, index: int):
        self.score, self.index = score, index

    def __call__(self, output):
        return self.score(output, self.index)


def saliency_map(cam, explained, sample: Sample) -> np.ndarray:
    """The map over the sample's own pixels, scaled to [0, 1] as pytorch-grad-cam scales it."""
    batch = explained.prepare(sample.rgb)
    targets = [_ClassScore(explained.class_score, sample.label)] if explained.method == "gradcam" else [lambda output: 0]
    heat = cam(input_tensor=batch, targets=targets)[0]
    height, width = sample.rgb.shape[:2]
    return cv2.resize(heat.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


def attention(heat: np.ndarray, mask: np.ndarray | None) -> tuple[float | None, float | None]:
    """(share of the map's mass on the objects, the objects' share of the picture); None, None
    without objects, and a share of None for a map with no mass at all."""
    if mask is None:
        return None, None
    total = float(heat.sum())
    return (float(heat[mask].sum()) / total if total > 0 else None), float(mask.mean())


def tile(sample: Sample, heat: np.ndarray, share: float | None) -> np.ndarray:
    """The picture under its map (jet), the objects' outline in white, the share in the corner."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    drawn = show_cam_on_image(sample.rgb.astype(np.float32) / 255, heat, use_rgb=True, image_weight=0.55)
    if sample.mask is not None:
        contours, _ = cv2.findContours(sample.mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(drawn, contours, -1, (255, 255, 255), max(1, round(max(drawn.shape[:2]) / TILE)))
    square, _ = fit_square(drawn, TILE)
    if share is not None:
        cv2.putText(square, f"{share:.2f}", (3, TILE - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return square


def oriented_eigencam():
    """pytorch-grad-cam's EigenCAM with the principal component's sign fixed. An SVD's sign is
    arbitrary, so the map can come out inverted (high where the features are weak, the
    background); oriented to agree with the activations' overall strength (their channel sum),
    it is high where the features are strong, as the method means it."""
    from pytorch_grad_cam import EigenCAM
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    class OrientedEigenCAM(EigenCAM):
        def get_cam_image(self, input_tensor, target_layer, targets, activations, grads, eigen_smooth):
            projections = get_2d_projection(activations)
            for projection, strength in zip(projections, np.asarray(activations).sum(axis=1)):
                if np.corrcoef(projection.ravel(), strength.ravel())[0, 1] < 0:
                    projection *= -1
            return projections

    return OrientedEigenCAM


def target_layers(explained, batch) -> list:
    """EigenCAM: the family's layers, aggregated. Grad-CAM: the deepest candidate stage whose map
    has at least MIN_CELLS cells on its shorter side for this input (the shallowest if none has)."""
    import torch

    if explained.method != "gradcam":
        return explained.layers
    cells = {}
    hooks = [layer.register_forward_hook(lambda module, inputs, output, k=k: cells.__setitem__(k, min(output.shape[-2:])))
             for k, layer in enumerate(explained.layers)]
    try:
        with torch.no_grad():
            explained.model(batch)
    finally:
        for hook in hooks:
            hook.remove()
    fine = [k for k in range(len(explained.layers)) if cells[k] >= MIN_CELLS]
    return [explained.layers[max(fine) if fine else 0]]


def run(explained, task: str, test_sets: dict[str, Path], seed: int, count: int) -> tuple[list[dict], dict[str, list]]:
    """Every test set's maps: the saliency rows and each set's sheet tiles."""
    from pytorch_grad_cam import GradCAM

    from .progress import progress
    from .train import ground_truth

    rows, tiles = [], {}
    method = {"gradcam": GradCAM, "eigencam": oriented_eigencam()}[explained.method]
    layers_of: dict[tuple, list] = {}  # input size -> the layers (a Grad-CAM stage is picked once per size)
    for name, folder in progress(sorted(test_sets.items()), desc="saliency", unit="test set"):
        truth = ground_truth(task, folder)
        samples = detection_samples(truth, seed, count) if task == "detection" else crop_samples(truth, seed, count)
        tiles[name] = []
        for sample in samples:
            if sample.rgb.shape not in layers_of:
                layers_of[sample.rgb.shape] = target_layers(explained, explained.prepare(sample.rgb))
            with method(model=explained.model, target_layers=layers_of[sample.rgb.shape]) as cam:
                heat = saliency_map(cam, explained, sample)
            share, area = attention(heat, sample.mask)
            rows.append({"testset": name, "image": sample.image, "unit": sample.unit, "ann_id": sample.ann_id,
                         "fg_share": share, "fg_area": area})
            tiles[name].append(tile(sample, heat, share))
    return rows, tiles


def sheet(tiles: dict[str, list], count: int, title: str) -> np.ndarray:
    """A row per test set (named at its start), `count` maps each."""
    rows = []
    for name, row in tiles.items():
        label = np.full((TILE, TILE, 3), 255, np.uint8)
        for line, text in enumerate([name[k: k + 16] for k in range(0, len(name), 16)][:4]):
            cv2.putText(label, text, (3, 20 + 18 * line), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        blank = np.full((TILE, TILE, 3), 230, np.uint8)
        rows += [label] + row + [blank] * (count - len(row))
    return grid(rows, count + 1, title)


def explain(config: dict, model_name: str, done_path: str | Path, test_sets: dict[str, str | Path], categories_path: str | Path,
            out: str | Path, sheet_out: str | Path, device: str = "auto") -> int:
    """The best checkpoint's maps on the test sets: saliency.parquet and the run's contact sheet."""
    import torch

    from . import devices
    from .evaluate import checkpoints_of
    from .io import read_categories, write_bytes, write_parquet
    from .train import family

    settings, count = config["train"]["models"][model_name], config["evaluate"]["saliency"]["images"]
    done_path = Path(done_path)
    done = json.loads(done_path.read_text())
    categories, _ = read_categories(categories_path)
    models = family(done["family"])
    allocation = devices.allocate() if device == "auto" else devices.Allocation(None)
    try:
        devices.use_declared_threads()
        cuda = allocation.device is not None and torch.cuda.is_available()
        checkpoints, mapping = checkpoints_of(models, done, done_path.parent)
        explained = models.explainable(settings, checkpoints[0]["path"], categories, cuda, mapping)
        rows, tiles = run(explained, models.task, {k: Path(v) for k, v in test_sets.items()}, int(config["seed"]), count)
    finally:
        allocation.release()
    write_parquet(out, pa.Table.from_pylist(rows, schema=SCHEMA))
    write_bytes(sheet_out, encode_png(sheet(tiles, count, f"{model_name} on {done['set']}, seed {done['seed']}: {explained.method} "
                                                          f"of the best checkpoint; white: the objects; number: share on them")))
    return len(rows)
