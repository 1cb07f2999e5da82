"""The segmentation model fine-tuned on the images that have masks (segment.deeplabv3.weights:
train): its training samples and its training job (the model itself: deeplab.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import devices, masks
from ..ingest.tables import Dataset
from .shard import decode, has_usable_gt


def training_samples(config: dict, ingest_dir: str | Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image, union of gt masks) for every image whose masks are usable for training."""
    settings = config["segment"]
    dataset = Dataset.load(ingest_dir)
    samples = []
    for im in dataset.images:
        anns = dataset.annotations.get(im["image_id"], [])
        if not has_usable_gt(im, anns, settings):
            continue
        fg = np.zeros((im["height"], im["width"]), np.uint8)
        for a in anns:
            fg |= masks.decode(a["segmentation"])
        rgb, problem = decode(im)
        if rgb is None:  # the shard job rejects it by name; it teaches nothing here
            print(f"segment model: left out of training, {problem} ({im['file_name']})", flush=True)
            continue
        samples.append((rgb, fg))
    return samples


def train_model(config: dict, ingest_dir: str | Path, out: str | Path) -> dict:
    from . import deeplab

    samples = training_samples(config, ingest_dir)
    devices.use_declared_threads()
    with devices.torch_device(config["segment"]["deeplabv3"]["device"]) as device:
        return deeplab.train(samples, config["segment"]["deeplabv3"], config["seed"], Path(out), device)
