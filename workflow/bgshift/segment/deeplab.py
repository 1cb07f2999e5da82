"""DeepLabv3 foreground segmentation: torchvision COCO/VOC weights, a checkpoint, or a model we train.

Three ways to get a model, all offline-safe:
- `weights: torchvision`: the COCO_WITH_VOC_LABELS weights through torchvision's weight
  enums, loaded from the torch hub cache (never downloaded here; the error names the file);
- `weights: <path>`: a checkpoint under resources/weights/ (a torchvision state dict, or
  one written by `train`);
- `weights: train`: a segmentation-models-pytorch DeepLabV3+ fine-tuned on the images that
  have masks (model.py), applied to those that have none.
Foreground is every non-background class (torchvision) or the single logit (trained).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torchvision.models.segmentation as tv_seg

from ..weights import WeightsMissing, fit, hub_checkpoint, load_state, starting_state, weights_file

OTHERWISE = ", or set segment.deeplabv3.weights to a checkpoint under resources/weights/, or to 'train'"

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
        path = weights_file(encoder_weights, None, f"{encoder} encoder", ", or set encoder_weights: null")
        fit(model.encoder, load_state(path), path, f"{encoder} encoder")
    return model


def load(settings: dict, device: torch.device, trained: Path | None = None) -> Segmenter:
    """Build the configured model with its weights (see module docstring) on `device`."""
    if settings["weights"] == "train":
        if trained is None or not Path(trained).is_file():
            raise WeightsMissing(f"trained segmentation model {trained} is missing: run the segment_model rule first")
        model, kind, size = _binary(load_state(Path(trained)), trained)
    else:
        builder, enum = TORCHVISION_MODELS[settings["arch"]]
        _, state, source = starting_state(settings["weights"], "DeepLabv3", enum, OTHERWISE)
        if "state_dict" in state and "arch" in state:  # a checkpoint written by the segment_model job
            model, kind, size = _binary(state, source)
        else:
            model = builder(weights=None, weights_backbone=None, num_classes=len(enum.meta["categories"]),
                            aux_loss=any(k.startswith("aux_classifier") for k in state))
            fit(model, state, source, f"torchvision {settings['arch']}")
            kind, size = "torchvision", settings["input_size"]
    model = model.to(device, memory_format=torch.channels_last).eval()
    return Segmenter(model, kind, size, device)


def _binary(checkpoint: dict, source) -> tuple[torch.nn.Module, str, int]:
    model = build_binary_model(checkpoint["arch"], checkpoint["encoder"], None)
    fit(model, checkpoint["state_dict"], source, f"{checkpoint['arch']} {checkpoint['encoder']}")
    return model, "binary", int(checkpoint["input_size"])


def available(settings: dict) -> bool:
    """Whether the weights a torchvision or checkpoint `weights` setting names are on disk."""
    try:
        weights_file(settings["weights"], TORCHVISION_MODELS[settings["arch"]][1], "DeepLabv3")
    except WeightsMissing:
        return False
    return True
