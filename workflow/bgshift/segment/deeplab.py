"""DeepLabv3 foreground segmentation: torchvision COCO/VOC weights, a checkpoint, or a model we train.

Three ways to get a model, all offline-safe:
- `weights: torchvision`: the COCO_WITH_VOC_LABELS weights through torchvision's weight
  enums, loaded from the torch hub cache (never downloaded here; the error names the file);
- `weights: <path>`: a checkpoint under resources/weights/ (a torchvision state dict, or
  one written by `train`);
- `weights: train`: fine-tune a segmentation-models-pytorch DeepLabV3+ on the images that
  have masks, then apply it to those that have none.
Foreground is every non-background class (torchvision) or the single logit (trained).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torchvision.models.segmentation as tv_seg

from ..progress import progress
from ..weights import WeightsMissing, fit, hub_checkpoint, load_state

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)

TORCHVISION_MODELS = {
    "resnet50": (tv_seg.deeplabv3_resnet50, tv_seg.DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1),
    "resnet101": (tv_seg.deeplabv3_resnet101, tv_seg.DeepLabV3_ResNet101_Weights.COCO_WITH_VOC_LABELS_V1),
    "mobilenet_v3_large": (tv_seg.deeplabv3_mobilenet_v3_large, tv_seg.DeepLabV3_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1),
}


def torchvision_weights_file(arch: str) -> Path:
    """Where torchvision's weight enum looks for its file in the torch hub cache."""
    return hub_checkpoint(TORCHVISION_MODELS[arch][1].url)


@dataclass
class Segmenter:
    """A loaded model and how to feed it."""

    model: torch.nn.Module
    kind: str  # "torchvision" (21 VOC classes) or "binary" (one foreground logit)
    input_size: int
    device: torch.device

    def preprocess(self, images: list[np.ndarray]) -> torch.Tensor:
        size = (self.input_size, self.input_size)
        batch = np.stack([cv2.resize(np.ascontiguousarray(im), size, interpolation=cv2.INTER_AREA) for im in images]).astype(np.float32) / 255.0
        batch = (batch - IMAGENET_MEAN) / IMAGENET_STD
        tensor = torch.from_numpy(batch).permute(0, 3, 1, 2)  # NHWC memory viewed as NCHW = channels_last
        return tensor.to(self.device, memory_format=torch.channels_last, non_blocking=True)

    @torch.inference_mode()
    def foreground_probability(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Per image, an HxW float32 map of P(foreground), at the image's own size."""
        x = self.preprocess(images)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.device.type == "cuda"):
            out = self.model(x)
        logits = out["out"] if isinstance(out, dict) else out
        if self.kind == "torchvision":
            prob = 1.0 - torch.softmax(logits.float(), dim=1)[:, 0]
        else:
            prob = torch.sigmoid(logits.float()[:, 0])
        prob = prob.cpu().numpy()
        return [cv2.resize(p, (im.shape[1], im.shape[0]), interpolation=cv2.INTER_LINEAR) for p, im in zip(prob, images)]


def colour_jitter(rgb: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Random hue rotation and saturation/brightness scaling, so a model trained on one
    site's ground does not learn "this ground colour = background"."""
    if strength <= 0:
        return rgb
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-90, 90) * strength) % 180
    hsv[..., 1] *= rng.uniform(1 - 0.6 * strength, 1 + 0.4 * strength)
    hsv[..., 2] *= rng.uniform(1 - 0.4 * strength, 1 + 0.3 * strength)
    return cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)


def build_binary_model(arch: str, encoder: str, encoder_weights: str | None) -> torch.nn.Module:
    import segmentation_models_pytorch as smp

    cls = {"DeepLabV3": smp.DeepLabV3, "DeepLabV3Plus": smp.DeepLabV3Plus}[arch]
    model = cls(encoder_name=encoder, encoder_weights=None, classes=1)
    if encoder_weights:
        path = Path(encoder_weights)
        if not path.is_file():
            raise WeightsMissing(f"encoder weights {path} not found: place the {encoder} state dict there or set encoder_weights: null")
        fit(model.encoder, load_state(path), path, f"{encoder} encoder")
    return model


def load(settings: dict, device: torch.device, trained: Path | None = None) -> Segmenter:
    """Build the configured model with its weights (see module docstring) on `device`."""
    weights = settings["weights"]
    if weights == "train":
        if trained is None or not Path(trained).is_file():
            raise WeightsMissing(f"trained segmentation model {trained} is missing: run the segment_model rule first")
        ckpt = load_state(Path(trained))
        model = build_binary_model(ckpt["arch"], ckpt["encoder"], None)
        fit(model, ckpt["state_dict"], trained, f"{ckpt['arch']} {ckpt['encoder']}")
        kind, size = "binary", int(ckpt["input_size"])
    else:
        builder, enum = TORCHVISION_MODELS[settings["arch"]]
        path = torchvision_weights_file(settings["arch"]) if weights == "torchvision" else Path(weights)
        if not path.is_file():
            raise WeightsMissing(
                f"DeepLabv3 weights not found offline: place {path.name} (torchvision {enum}, from {enum.url}) at {path}, "
                f"or set segment.deeplabv3.weights to a checkpoint under resources/weights/, or to 'train'"
            )
        state = load_state(path)
        if "state_dict" in state and "arch" in state:  # a checkpoint written by `train`
            model = build_binary_model(state["arch"], state["encoder"], None)
            fit(model, state["state_dict"], path, f"{state['arch']} {state['encoder']}")
            kind, size = "binary", int(state["input_size"])
        else:
            model = builder(weights=None, weights_backbone=None, num_classes=len(enum.meta["categories"]),
                            aux_loss=any(k.startswith("aux_classifier") for k in state))
            fit(model, state, path, f"torchvision {settings['arch']}")
            kind, size = "torchvision", settings["input_size"]
    model = model.to(device, memory_format=torch.channels_last).eval()
    return Segmenter(model, kind, size, device)


def train(samples: list[tuple[np.ndarray, np.ndarray]], settings: dict, seed: int, out: Path, device: torch.device) -> dict:
    """Fine-tune a binary DeepLabV3(+) on (image, foreground mask) pairs on `device`; save a weights-only checkpoint."""
    from ..io import write_torch

    t = settings["train"]
    if not samples:
        raise ValueError("segment.deeplabv3.weights is 'train' but no image has a ground-truth mask to learn from")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_binary_model(t["arch"], t["encoder"], t.get("encoder_weights")).to(device, memory_format=torch.channels_last)
    segmenter = Segmenter(model, "binary", t["input_size"], device)
    size = (t["input_size"], t["input_size"])
    targets = torch.from_numpy(np.stack([cv2.resize(m.astype(np.float32), size, interpolation=cv2.INTER_AREA) for _, m in samples]))
    optimiser = torch.optim.AdamW(model.parameters(), lr=t["lr"], weight_decay=1e-4)
    steps = t["epochs"] * max(1, -(-len(samples) // t["batch_size"]))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=t["lr"], total_steps=steps)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    scaler = torch.amp.GradScaler(enabled=device.type == "cuda")
    history = []
    model.train()
    for epoch in progress(range(1, t["epochs"] + 1), desc="segmentation model", unit="epoch"):
        order = rng.permutation(len(samples))
        epoch_loss = 0.0
        for start in range(0, len(order), t["batch_size"]):
            idx = order[start : start + t["batch_size"]]
            flips = rng.random(len(idx)) < 0.5  # horizontal flip augmentation
            imgs = [colour_jitter(samples[i][0][:, ::-1] if f else samples[i][0], rng, t["colour_jitter"]) for i, f in zip(idx, flips)]
            y = torch.stack([targets[i].flip(-1) if f else targets[i] for i, f in zip(idx, flips)])[:, None].to(device)
            with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
                loss = loss_fn(model(segmenter.preprocess(imgs)).float(), y)
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            schedule.step()
            epoch_loss += float(loss.detach()) * len(idx)
        history.append(epoch_loss / len(samples))
        print(f"epoch {epoch}/{t['epochs']}: loss {history[-1]:.4f} ({len(samples)} images)", flush=True)  # the job's log
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    write_torch(out, {"arch": t["arch"], "encoder": t["encoder"], "input_size": t["input_size"], "state_dict": state, "loss": history})
    return {"loss": history, "samples": len(samples)}
