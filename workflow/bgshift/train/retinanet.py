"""Family `retinanet`: torchvision RetinaNet with focal loss, the Background Recalibration
Loss (BRL) or ignored confusion anchors (losses.py), trained by the shared training engine (engine.py).

The missing-annotation paper's detector: ResNet-50/101-FPN backbones at its scale, and
ResNet-18-FPN, which trains on a CPU. Anchors are matched as in torchvision (positives at
IoU >= 0.5 plus the best anchor of every box, ignored in [0.4, 0.5)); negatives below
`confusion_iou` become confusion anchors. Sigmoid classes: class index i is model label i.
"""
from __future__ import annotations

from functools import partial

import torch
import torchvision.models as tvm
import torchvision.models.detection as tvd
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.retinanet import RetinaNetClassificationHead
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops import boxes as box_ops
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from ..weights import fit, starting_state
from . import detection
from .losses import NEGATIVE, classification_loss, mark_confusion

LABEL_OFFSET = 0


class RecalibratedRetinaNet(tvd.RetinaNet):
    """torchvision's RetinaNet whose classification loss is focal, brl, brl_minus or ignore_confusion (losses.py)."""

    def __init__(self, *args, loss: str = "focal", confusion_iou: float = 0.1, confusion_weight: float = 0.1,
                 recalibration_threshold: float = 0.5, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_settings = {"loss": loss, "confusion_weight": confusion_weight, "recalibration_threshold": recalibration_threshold}
        self.confusion_iou = confusion_iou

    def compute_loss(self, targets, head_outputs, anchors):
        states = []
        for anchors_per_image, targets_per_image in zip(anchors, targets):
            if targets_per_image["boxes"].numel() == 0:  # nothing labelled: every anchor is a confusion anchor
                matched = torch.full((anchors_per_image.size(0),), NEGATIVE, dtype=torch.int64, device=anchors_per_image.device)
                best_iou = torch.zeros(anchors_per_image.size(0), device=anchors_per_image.device)
            else:
                iou = box_ops.box_iou(targets_per_image["boxes"], anchors_per_image)
                matched, best_iou = self.proposal_matcher(iou), iou.max(dim=0).values
            states.append(mark_confusion(matched, best_iou, self.confusion_iou))
        classification = sum(classification_loss(logits, t["labels"], s, **self.loss_settings)
                             for logits, t, s in zip(head_outputs["cls_logits"], targets, states)) / len(targets)
        regression = self.head.regression_head.compute_loss(targets, head_outputs, anchors, states)  # positives only
        return {"classification": classification, "bbox_regression": regression}


def _resnet_backbone(depth: str, pretrained: bool, channels: int = 256) -> BackboneWithFPN:
    """ResNet-FPN with P3-P7 of `channels` channels, as torchvision builds RetinaNet's (256): BatchNorm
    frozen and the stem and layer1 fixed when it starts from trained weights, all trainable from scratch."""
    body = getattr(tvm, depth)(weights=None, norm_layer=FrozenBatchNorm2d if pretrained else torch.nn.BatchNorm2d)
    if pretrained:
        for name, parameter in body.named_parameters():
            parameter.requires_grad_(name.startswith(("layer2", "layer3", "layer4")))
    stage = body.inplanes // 8  # channels of layer1's output: 64 (ResNet-18) or 256 (ResNet-50/101)
    return BackboneWithFPN(body, {"layer2": "0", "layer3": "1", "layer4": "2"}, [2 * stage, 4 * stage, 8 * stage], channels,
                           extra_blocks=LastLevelP6P7(channels, channels))


# arch -> (backbone depth, torchvision RetinaNet COCO weights or None, ImageNet backbone weights)
ARCHS = {
    "retinanet_resnet50_fpn": ("resnet50", tvd.RetinaNet_ResNet50_FPN_Weights.COCO_V1, tvm.ResNet50_Weights.IMAGENET1K_V1),
    "retinanet_resnet101_fpn": ("resnet101", None, tvm.ResNet101_Weights.IMAGENET1K_V2),
    "retinanet_resnet18_fpn": ("resnet18", None, tvm.ResNet18_Weights.IMAGENET1K_V1),
}


def anchor_generator(sizes: list[int]) -> AnchorGenerator:
    """torchvision's RetinaNet anchors (3 scales x 3 ratios per level) from five base sizes."""
    return AnchorGenerator(tuple((s, round(s * 2 ** (1 / 3)), round(s * 2 ** (2 / 3))) for s in sizes), ((0.5, 1.0, 2.0),) * len(sizes))


def backbone_state(detector_state: dict) -> dict:
    """The ResNet body of a RetinaNet checkpoint as a plain ResNet state dict in float16 (half
    the file; BatchNorm's batch counters left out), the form `weights: <file>` starts a body from."""
    prefix = "backbone.body."
    body = {k[len(prefix):]: v for k, v in detector_state.items() if k.startswith(prefix) and not k.endswith("num_batches_tracked")}
    if not body:
        raise ValueError("not a RetinaNet checkpoint: no backbone.body.* weights")
    return {k: v.half() if v.is_floating_point() else v for k, v in body.items()}


def is_backbone_state(state: dict) -> bool:
    """A plain ResNet state dict (ImageNet's, or backbone_state's), not a whole detector's."""
    return "conv1.weight" in state


def build_model(settings: dict, num_classes: int) -> torch.nn.Module:
    """RetinaNet with `num_classes` sigmoid classes and the configured loss, weights per settings["weights"]:
    a checkpoint file holds either a whole RetinaNet or a ResNet body (ImageNet's or backbone_state's);
    `num_classes` None keeps torchvision's COCO head (an evaluate-only model)."""
    depth, detector_weights, backbone_weights = ARCHS[settings["arch"]]
    model_for = partial(RecalibratedRetinaNet, min_size=settings["min_size"], max_size=settings["max_size"],
                        anchor_generator=anchor_generator(settings["anchor_sizes"]), loss=settings["loss"],
                        confusion_iou=settings["confusion_iou"], confusion_weight=settings["confusion_weight"],
                        recalibration_threshold=settings["recalibration_threshold"], **settings["model_kwargs"])
    channels = settings["fpn_channels"]
    kind, state, source = starting_state(settings["weights"], "RetinaNet", detector_weights or backbone_weights)
    if (kind == "torchvision" and detector_weights is None) or (kind == "checkpoint" and is_backbone_state(state)):
        backbone = _resnet_backbone(depth, pretrained=True, channels=channels)  # a trained body, new FPN and heads
        fit(backbone.body, {k: v for k, v in state.items() if not k.startswith("fc.")}, source, f"{depth} body")
        return model_for(backbone, num_classes)
    if kind == "torchvision":  # COCO RetinaNet (256 FPN channels), a new classification head for our classes
        if channels != 256:
            raise ValueError(f"fpn_channels: torchvision's COCO RetinaNet has 256, not {channels}")
        model = model_for(_resnet_backbone(depth, pretrained=True), len(detector_weights.meta["categories"]))
        fit(model, state, source, f"COCO {settings['arch']}")
        if num_classes is None:  # evaluated as it is, COCO head and all
            return model
        anchors = model.head.classification_head.num_anchors
        model.head.classification_head = RetinaNetClassificationHead(256, anchors, num_classes)
        return model
    model = model_for(_resnet_backbone(depth, pretrained=False, channels=channels), num_classes)
    if state is not None:
        fit(model, state, source, f"{settings['arch']} with {num_classes} classes")
    return model


FAMILY = detection.TorchvisionFamily("retinanet", build_model, label_offset=LABEL_OFFSET, detector_weights=lambda s: ARCHS[s["arch"]][1])
