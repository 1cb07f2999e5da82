"""Classification losses of the one-stage detector (RetinaNet): focal loss, and the
Background Recalibration Loss (BRL) of the missing-annotation paper, in plain PyTorch.

Every anchor has a state from matching it to the ground truth: positive (the index of its
box: IoU >= 0.5, or the best anchor of a box), ignored (IoU in [0.4, 0.5)), negative (IoU in
[confusion_iou, 0.4)), or *confusion* (IoU below `confusion_iou` with every box: background
as far as the labels know, but where an unlabelled object would sit). Focal loss treats
confusion anchors as negatives. BRL keeps the negative focal term on them while the model is
unsure (p <= 1 - t) and, where it is confident that an object is there (p > 1 - t), switches
to the mirrored positive term, so a missing annotation stops being pushed towards background;
the confusion term is scaled by `confusion_weight`. `brl_minus` (BRL⁻, the paper's Table 3
ablation) keeps only the mirrored branch: no loss on confusion anchors while the model is
unsure, so they are no longer mined as hard negatives. `ignore_confusion` (the paper's
isolation baseline) gives confusion anchors no loss. Every variant is normalised by the positives.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

NEGATIVE, IGNORED, CONFUSION = -1, -2, -3  # anchor states below 0; a positive holds its box index
LOSSES = ("focal", "brl", "brl_minus", "ignore_confusion")


def mark_confusion(matched: torch.Tensor, best_iou: torch.Tensor, confusion_iou: float) -> torch.Tensor:
    """Matcher output with the negatives whose best IoU with any box is below `confusion_iou` set to CONFUSION."""
    return torch.where((matched == NEGATIVE) & (best_iou < confusion_iou), torch.full_like(matched, CONFUSION), matched)


def recalibrated_loss(logits: torch.Tensor, threshold: float, alpha: float = 0.25, gamma: float = 2.0,
                      beta: float = 1.0, hard_negatives: bool = True) -> torch.Tensor:
    """BRL's per-element loss on confusion anchors (every class of every anchor).

    p <= 1 - t: the negative focal term  -(1 - alpha) * p**gamma * log(1 - p)  (0 without
                `hard_negatives`: BRL⁻);
    p >  1 - t: the mirrored positive term  -(1 - alpha) * beta * (1 - p)**gamma * log(p).
    Computed in float32 from the logits (log-sigmoid), so it is finite under mixed precision.
    """
    logits = logits.float()
    p = torch.sigmoid(logits)
    negative = (1 - alpha) * p.pow(gamma) * F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none")
    mirrored = (1 - alpha) * beta * (1 - p).pow(gamma) * F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="none")
    return torch.where(p <= 1 - threshold, negative if hard_negatives else torch.zeros_like(negative), mirrored)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, states: torch.Tensor, loss: str = "focal",
                        alpha: float = 0.25, gamma: float = 2.0, confusion_weight: float = 0.1,
                        recalibration_threshold: float = 0.5) -> torch.Tensor:
    """One image's classification loss: `logits` [anchors, classes], `labels` [boxes] (class
    index of each ground-truth box), `states` [anchors] (box index, NEGATIVE, IGNORED or CONFUSION)."""
    if loss not in LOSSES:
        raise ValueError(f"loss: {loss!r} is not one of {LOSSES}")
    positive = states >= 0
    targets = torch.zeros_like(logits)
    targets[positive, labels[states[positive]]] = 1.0
    confusion = states == CONFUSION
    counted = (states != IGNORED) & (~confusion if loss != "focal" else torch.ones_like(confusion))
    total = sigmoid_focal_loss(logits[counted].float(), targets[counted], alpha=alpha, gamma=gamma, reduction="sum")
    if loss in ("brl", "brl_minus") and confusion.any():
        total = total + confusion_weight * recalibrated_loss(logits[confusion], recalibration_threshold, alpha, gamma,
                                                             hard_negatives=loss == "brl").sum()
    return total / max(1, int(positive.sum()))
