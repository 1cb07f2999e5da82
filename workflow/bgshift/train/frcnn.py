"""Family `frcnn`: torchvision Faster R-CNN, trained by the shared training engine (engine.py).

SGD or AdamW, linear warm-up then step or cosine decay, mixed precision on GPU, gradient
clipping, horizontal flips, validated checkpoints and exact resume (engine.py, detection.py).
Label 0 is the background, so class index i is model label i + 1.
"""
from __future__ import annotations


import torch
import torchvision.models.detection as tvd
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

from ..weights import fit, starting_state
from . import detection

LABEL_OFFSET = 1
ARCHS = {
    "fasterrcnn_resnet50_fpn": (tvd.fasterrcnn_resnet50_fpn, tvd.FasterRCNN_ResNet50_FPN_Weights.COCO_V1),
    "fasterrcnn_resnet50_fpn_v2": (tvd.fasterrcnn_resnet50_fpn_v2, tvd.FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1),
    "fasterrcnn_mobilenet_v3_large_fpn": (tvd.fasterrcnn_mobilenet_v3_large_fpn, tvd.FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1),
}


def build_model(settings: dict, num_classes: int) -> torch.nn.Module:
    """Faster R-CNN with `num_classes` object classes (+ background), weights per settings["weights"];
    `num_classes` None keeps torchvision's COCO head (an evaluate-only model)."""
    builder, enum = ARCHS[settings["arch"]]
    sizes = {"min_size": settings["min_size"], "max_size": settings["max_size"], **settings["model_kwargs"]}
    kind, state, source = starting_state(settings["weights"], "Faster R-CNN", enum)
    if kind == "torchvision":
        model = builder(weights=None, weights_backbone=None, num_classes=len(enum.meta["categories"]), **sizes)
        fit(model, state, source, f"COCO {settings['arch']}")
        if num_classes is None:
            return model
        in_features = model.roi_heads.box_predictor.cls_score.in_features
        model.roi_heads.box_predictor = FastRCNNPredictor(in_features, num_classes + 1)  # a new head for our classes
        return model
    model = builder(weights=None, weights_backbone=None, num_classes=num_classes + 1, **sizes)
    if state is not None:
        fit(model, state, source, f"{settings['arch']} with {num_classes} classes")
    return model


FAMILY = detection.TorchvisionFamily("frcnn", build_model, label_offset=LABEL_OFFSET, detector_weights=lambda s: ARCHS[s["arch"]][1])
