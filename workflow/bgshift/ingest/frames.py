"""Boxes and masks in the frame of the image as bgshift stores it (EXIF orientation applied):
a box checked, turned and clipped; a mask decoded, turned and checked against the image size."""
from __future__ import annotations

import math

import numpy as np

from .. import images as imgs
from .. import masks

CLIP_TOLERANCE = 0.5  # pixels a box may pass the image edge before its clipping is counted (or, under reject, refused)


def checked_box(bbox, entry, invalid_boxes: str) -> tuple[list[float], str | None, bool]:
    """The box in the image's oriented frame, clipped to it, and whether clipping counted; or why
    it cannot be used. `entry`: the collector's ImageEntry of its image."""
    numbers = isinstance(bbox, (list, tuple, np.ndarray)) and all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in bbox)
    box = [float(v) for v in bbox] if numbers else []  # strings and booleans are not coordinates
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        return box, f"bbox {bbox!r} is not four finite numbers", False
    if box[2] <= 0 or box[3] <= 0:
        return box, f"bbox {bbox!r} has zero or negative size", False
    if entry.needs_orienting:
        box = oriented_box(box, entry)
    return fitted_box(box, entry.info.width, entry.info.height, invalid_boxes)


def oriented_box(box: list[float], entry) -> list[float]:
    x, y, w, h = box
    xs, ys = imgs.orient_points(np.array([x, x + w]), np.array([y, y + h]), entry.info.orientation, entry.declared_w, entry.declared_h)
    x0, x1 = sorted(map(float, xs))
    y0, y1 = sorted(map(float, ys))
    return [x0, y0, x1 - x0, y1 - y0]


def fitted_box(box: list[float], width: int, height: int, invalid_boxes: str) -> tuple[list[float], str | None, bool]:
    x0, y0, w, h = box
    x1, y1 = x0 + w, y0 + h
    if x1 <= x0 or y1 <= y0:  # 1e-300 wide: positive, yet nothing once added to x
        return box, f"bbox {box} has no area (its width or height is below float precision)", False
    cx0, cy0, cx1, cy1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height))
    if cx1 <= cx0 or cy1 <= cy0:
        return box, f"bbox {box} lies outside the {width}x{height} image", False
    clipped = max(-x0, -y0, x1 - width, y1 - height) >= CLIP_TOLERANCE  # less: round-off of a box drawn to the edge
    if clipped and invalid_boxes == "reject":
        return box, f"bbox {box} extends outside the {width}x{height} image (ingest.invalid_boxes=reject)", False
    return [cx0, cy0, cx1 - cx0, cy1 - cy0], None, clipped


def mask_in_frame(segmentation, entry) -> dict:
    if isinstance(segmentation, np.ndarray):
        rle = masks.encode(segmentation)
    else:
        rle = masks.from_coco_segmentation(segmentation, entry.declared_h, entry.declared_w)
    if entry.needs_orienting:
        rle = masks.encode(imgs.orient_mask(masks.decode(rle), entry.info.orientation))
    if rle["size"] != [entry.info.height, entry.info.width]:
        raise ValueError(f"mask size {rle['size']} differs from image size {[entry.info.height, entry.info.width]}")
    return rle
