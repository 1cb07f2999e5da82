"""Focal loss and the Background Recalibration Loss against hand-computed values."""
from __future__ import annotations

import math

import pytest
import torch
from torchvision.ops import sigmoid_focal_loss

from bgshift.train.losses import CONFUSION, IGNORED, NEGATIVE, classification_loss, mark_confusion, recalibrated_loss


def anchors(seed: int = 0, n: int = 40, classes: int = 3):
    """Logits of n anchors; two positives (boxes 0 and 1), some ignored, negatives, confusion."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, classes, generator=g) * 2
    states = torch.full((n,), NEGATIVE)
    states[:2] = torch.tensor([0, 1])
    states[2:5] = IGNORED
    states[20:] = CONFUSION
    labels = torch.tensor([2, 0])  # class of box 0 and box 1
    return logits, labels, states


def focal_reference(logits, labels, states, keep):
    targets = torch.zeros_like(logits)
    positive = states >= 0
    targets[positive, labels[states[positive]]] = 1
    return sigmoid_focal_loss(logits[keep], targets[keep], reduction="sum") / positive.sum()


def test_focal_counts_confusion_anchors_as_negatives_and_skips_ignored():
    logits, labels, states = anchors()
    expected = focal_reference(logits, labels, states, states != IGNORED)
    assert torch.allclose(classification_loss(logits, labels, states, "focal"), expected)


def test_brl_equals_focal_without_confusion_anchors_or_with_zero_weight():
    logits, labels, states = anchors()
    no_confusion = torch.where(states == CONFUSION, torch.full_like(states, NEGATIVE), states)
    assert torch.allclose(classification_loss(logits, labels, no_confusion, "brl"),
                          classification_loss(logits, labels, no_confusion, "focal"))
    # weight 0: the confusion anchors carry nothing, the rest is focal loss on positives and negatives
    expected = focal_reference(logits, labels, states, (states != IGNORED) & (states != CONFUSION))
    assert torch.allclose(classification_loss(logits, labels, states, "brl", confusion_weight=0.0), expected)
    assert torch.allclose(classification_loss(logits, labels, states, "ignore_confusion"), expected)


def test_recalibrated_loss_matches_the_formula_on_both_sides_of_the_threshold():
    alpha, gamma = 0.25, 2.0
    p = torch.tensor([0.3, 0.5, 0.8])  # t = 0.5: the first two take the negative term, 0.8 the mirrored one
    logits = torch.log(p / (1 - p))
    got = recalibrated_loss(logits, threshold=0.5)
    expected = [(1 - alpha) * 0.3**gamma * -math.log(1 - 0.3), (1 - alpha) * 0.5**gamma * -math.log(1 - 0.5),
                (1 - alpha) * (1 - 0.8) ** gamma * -math.log(0.8)]
    assert got.tolist() == pytest.approx(expected, rel=1e-5)
    # a stricter threshold (t = 0.1, switch above p = 0.9) keeps 0.8 on the negative side
    assert recalibrated_loss(logits, threshold=0.1)[2].item() == pytest.approx((1 - alpha) * 0.8**gamma * -math.log(0.2), rel=1e-5)


def test_brl_total_on_a_known_set_of_anchors():
    """One positive anchor (p = 0.6 for its class), one confusion anchor (p = 0.9): hand-computed."""
    alpha, gamma, weight = 0.25, 2.0, 0.1
    p = torch.tensor([[0.6], [0.9]])
    logits = torch.log(p / (1 - p))
    states = torch.tensor([0, CONFUSION])
    total = classification_loss(logits, torch.tensor([0]), states, "brl", confusion_weight=weight)
    positive = alpha * (1 - 0.6) ** gamma * -math.log(0.6)
    confusion = weight * (1 - alpha) * (1 - 0.9) ** gamma * -math.log(0.9)
    assert total.item() == pytest.approx(positive + confusion, rel=1e-5)


def test_brl_minus_keeps_only_the_mirrored_branch_on_a_known_set_of_anchors():
    """BRL⁻ (the paper's Table 3 ablation): the confident confusion anchor (p = 0.9) costs what it
    costs under BRL; the unsure one (p = 0.3 <= 1 - t) costs nothing, where BRL charges its
    negative focal term; the positive anchor's focal term is unchanged. Hand-computed."""
    alpha, gamma, weight = 0.25, 2.0, 0.1
    p = torch.tensor([[0.6], [0.9], [0.3]])
    logits = torch.log(p / (1 - p))
    states = torch.tensor([0, CONFUSION, CONFUSION])
    positive = alpha * (1 - 0.6) ** gamma * -math.log(0.6)
    mirrored = weight * (1 - alpha) * (1 - 0.9) ** gamma * -math.log(0.9)
    hard_negative = weight * (1 - alpha) * 0.3 ** gamma * -math.log(1 - 0.3)
    brl_minus = classification_loss(logits, torch.tensor([0]), states, "brl_minus", confusion_weight=weight)
    brl = classification_loss(logits, torch.tensor([0]), states, "brl", confusion_weight=weight)
    assert brl_minus.item() == pytest.approx(positive + mirrored, rel=1e-5)
    assert brl.item() == pytest.approx(positive + mirrored + hard_negative, rel=1e-5)


def test_gradient_on_a_confident_confusion_anchor_pushes_it_up_not_down():
    logit = torch.tensor([[2.5]], requires_grad=True)  # p = 0.92 > 1 - t
    classification_loss(logit, torch.zeros(0, dtype=torch.long), torch.tensor([CONFUSION]), "brl").backward()
    assert logit.grad.item() < 0  # descending the loss raises p
    unsure = torch.tensor([[-0.5]], requires_grad=True)  # p = 0.38 <= 1 - t: pushed towards background
    classification_loss(unsure, torch.zeros(0, dtype=torch.long), torch.tensor([CONFUSION]), "brl").backward()
    assert unsure.grad.item() > 0
    focal = torch.tensor([[2.5]], requires_grad=True)  # focal loss pushes the same anchor down
    classification_loss(focal, torch.zeros(0, dtype=torch.long), torch.tensor([CONFUSION]), "focal").backward()
    assert focal.grad.item() > 0


def test_recalibrated_loss_is_finite_in_half_precision_extremes():
    logits = torch.tensor([-40.0, -5.0, 0.0, 5.0, 40.0], dtype=torch.float16)
    loss = recalibrated_loss(logits, threshold=0.5)
    assert loss.dtype == torch.float32 and torch.isfinite(loss).all()


def test_mark_confusion_only_relabels_negatives_below_the_iou():
    matched = torch.tensor([3, NEGATIVE, NEGATIVE, IGNORED, NEGATIVE])
    best_iou = torch.tensor([0.7, 0.05, 0.2, 0.45, 0.0])
    assert mark_confusion(matched, best_iou, 0.1).tolist() == [3, CONFUSION, NEGATIVE, IGNORED, CONFUSION]
