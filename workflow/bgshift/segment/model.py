"""The segmentation model fine-tuned on the images that have masks (segment.deeplabv3.weights:
train), trained by the detectors' engine (train/engine.py: schedule, mixed precision, exact
resume of a killed job) over a dataset that decodes each image when a batch needs it, so memory
holds the table's records and one batch, not every masked image (about 100 GB at COCO scale).
The model itself: deeplab.py."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import cv2
import numpy as np

from .. import devices, masks
from ..ingest.tables import Dataset
from .shard import decode, has_usable_gt

CHECKPOINTS = 4  # the engine keeps a checkpoint (and a resume point) this many times per run


class MaskedImages:
    """(image, union of its masks) at the model's input size, decoded per sample; keys are the
    engine's (index, flip). A torch Dataset by protocol (__getitem__, __len__)."""

    def __init__(self, dataset: Dataset, settings: dict, size: int):
        self.records = [(im, dataset.annotations.get(im["image_id"], [])) for im in dataset.images
                        if has_usable_gt(im, dataset.annotations.get(im["image_id"], []), settings)]
        self.size = size

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: tuple[int, bool]) -> tuple[np.ndarray, np.ndarray] | None:
        image, anns = self.records[key[0]]
        rgb, problem = decode(image)
        if rgb is None:  # the shard job rejects it by name; it teaches nothing here
            print(f"segment model: left out of this batch, {problem} ({image['file_name']})", flush=True)
            return None
        foreground = np.zeros((image["height"], image["width"]), np.uint8)
        for ann in anns:
            foreground |= masks.decode(ann["segmentation"])
        size = (self.size, self.size)
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        target = cv2.resize(foreground.astype(np.float32), size, interpolation=cv2.INTER_AREA)
        return (rgb[:, ::-1], target[:, ::-1]) if key[1] else (rgb, target)


class SegmentationData:
    """The engine's TrainingData for a binary DeepLab: BCE on the foreground logit, colour jitter
    drawn from torch's generator (which a resumed run restores). No val split: the last
    checkpoint is the model."""

    metric = "iou"
    val_samples = ()  # no val split, so no val loss either

    def __init__(self, samples: MaskedImages, colour_jitter: float):
        self.samples, self.colour_jitter = samples, colour_jitter

    def loss(self, model, batch: list, device):
        import torch

        from .deeplab import Segmenter, colour_jitter

        batch = [sample for sample in batch if sample is not None]
        if not batch:  # every image of the batch failed to decode: a step that changes nothing
            return {"bce": sum(p.sum() for p in model.parameters()) * 0.0}
        jittered = [colour_jitter(rgb, np.random.default_rng(int(torch.randint(2**31, ()))), self.colour_jitter)
                    for rgb, _ in batch]
        x = Segmenter(model, "binary", self.samples.size, device).preprocess(jittered)
        y = torch.from_numpy(np.stack([np.ascontiguousarray(t) for _, t in batch]))[:, None].to(device)
        return {"bce": torch.nn.functional.binary_cross_entropy_with_logits(model(x).float(), y)}

    @staticmethod
    def val_score(model, device) -> None:
        return None


def engine_settings(train: dict, images: int) -> dict:
    """The engine's settings for segment.deeplabv3.train: AdamW, a 30% linear warm-up then cosine
    decay (the one-cycle shape), flips, gradient clipping, CHECKPOINTS resume points per run."""
    total = train["epochs"] * max(1, -(-images // train["batch_size"]))
    return {"optimizer": "adamw", "lr": train["lr"], "weight_decay": 1e-4, "batch": train["batch_size"], "iterations": total,
            "epochs": train["epochs"], "schedule": "cosine", "warmup_iters": int(0.3 * total), "amp": True,
            "cpu_bfloat16": False, "workers": 0, "hflip": 0.5, "patience": total + 1, "clip_grad": 10.0,
            "checkpoint_every": max(1, total // CHECKPOINTS)}


def inputs_digest(config: dict, ingest_dir: Path) -> str:
    """What the model learns from: its settings, the seed and the ingest tables."""
    digest = hashlib.sha256(json.dumps([config["segment"]["deeplabv3"]["train"], config["segment"]["ignore_masks_of_groups"],
                                        config["seed"]], sort_keys=True).encode())
    for table in ("images.parquet", "annotations.parquet"):
        digest.update((ingest_dir / table).read_bytes())
    return digest.hexdigest()


def train_model(config: dict, ingest_dir: str | Path, out: str | Path) -> dict:
    """The segment_model job: fine-tune on every image with usable masks, resuming a killed run."""
    from ..train import start_afresh_if_inputs_changed

    settings, out, ingest_dir = config["segment"], Path(out), Path(ingest_dir)
    samples = MaskedImages(Dataset.load(ingest_dir), settings, settings["deeplabv3"]["train"]["input_size"])
    run_dir = out.parent / f"{out.stem}_run"
    start_afresh_if_inputs_changed(run_dir, inputs_digest(config, ingest_dir))
    devices.use_declared_threads()
    with devices.torch_device(settings["deeplabv3"]["device"]) as device:
        return fit(samples, settings["deeplabv3"]["train"], config["seed"], run_dir, out, device)


def fit(samples: MaskedImages, train: dict, seed: int, run_dir: Path, out: Path, device) -> dict:
    """Train in run_dir, then write the weights-only model file the shard jobs load (deeplab.load)."""
    from ..io import write_torch
    from ..train.engine import train as train_loop
    from ..weights import load_state
    from .deeplab import build_binary_model

    if not len(samples):
        raise ValueError("segment.deeplabv3.weights is 'train' but no image has a ground-truth mask to learn from")
    build = lambda: build_binary_model(train["arch"], train["encoder"], train.get("encoder_weights"))  # noqa: E731
    summary = train_loop("segmentation model", build, SegmentationData(samples, train["colour_jitter"]),
                         engine_settings(train, len(samples)), run_dir, seed, device)
    losses = json.loads((run_dir / "losses.json").read_text())
    write_torch(out, {"arch": train["arch"], "encoder": train["encoder"], "input_size": train["input_size"],
                      "state_dict": load_state(run_dir / "best.pt")["model"], "loss": losses})
    shutil.rmtree(run_dir)  # the checkpoints served a killed job's resume; the model file is the output
    return {"loss_first": summary["loss_first"], "loss_last": summary["loss_last"], "iterations": summary["iterations"],
            "samples": len(samples)}
