"""Masks from boxes: GrabCut inside a box (Xiao et al.), and a model's foreground restricted
to the slightly expanded boxes and split into instances."""
from __future__ import annotations

import cv2
import numpy as np


def grabcut_instance(rgb: np.ndarray, box, iterations: int, min_fill: float, margin: float, max_side: int) -> np.ndarray | None:
    """GrabCut initialised with the box (as Xiao et al.), retried once if the mask is tiny.

    It runs on a crop around the box with `margin` x box size of context on each side,
    scaled so its longer side is at most `max_side` (GrabCut's cost grows with pixels),
    and the mask is scaled back. A first mask under `min_fill` of its box is retried with
    the box's central ninth seeded as certain foreground (so the retry always keeps at
    least that). Returns a full-size mask, or None for boxes too small to segment.
    """
    h, w = rgb.shape[:2]
    x, y, bw, bh = box
    pad = max(8.0, margin * max(bw, bh))
    x0, y0 = max(0, int(x - pad)), max(0, int(y - pad))
    x1, y1 = min(w, int(np.ceil(x + bw + pad))), min(h, int(np.ceil(y + bh + pad)))
    scale = min(1.0, max_side / max(x1 - x0, y1 - y0))
    crop = cv2.resize(np.ascontiguousarray(rgb[y0:y1, x0:x1, ::-1]), None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    rx, ry = int((x - x0) * scale), int((y - y0) * scale)
    rect = (rx, ry, max(1, min(int(np.ceil(bw * scale)), crop.shape[1] - rx)), max(1, min(int(np.ceil(bh * scale)), crop.shape[0] - ry)))
    if rect[2] < 3 or rect[3] < 3:
        return None
    for attempt in range(2):
        gc = np.zeros(crop.shape[:2], np.uint8)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(attempt)  # GrabCut's k-means init is random: fixed for reproducible masks
        rx, ry, rw, rh = rect
        try:
            if attempt == 0:
                cv2.grabCut(crop, gc, rect, bgd, fgd, iterations, cv2.GC_INIT_WITH_RECT)
            else:  # retry with more iterations, the box centre seeded as certain foreground
                gc[:] = cv2.GC_BGD
                gc[ry : ry + rh, rx : rx + rw] = cv2.GC_PR_FGD
                gc[ry + rh // 3 : ry + rh - rh // 3, rx + rw // 3 : rx + rw - rw // 3] = cv2.GC_FGD
                cv2.grabCut(crop, gc, None, bgd, fgd, 2 * iterations, cv2.GC_INIT_WITH_MASK)
        except cv2.error:
            continue
        fg = ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).astype(np.uint8)
        if attempt == 1 or fg.sum() >= min_fill * rw * rh:
            full = np.zeros((h, w), np.uint8)
            full[y0:y1, x0:x1] = cv2.resize(fg, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
            return full
    return None


def expanded_box_mask(box, shape, margin: float) -> np.ndarray:
    x, y, bw, bh = box
    mx, my = bw * margin, bh * margin
    m = np.zeros(shape, np.uint8)
    m[max(0, int(y - my)) : int(np.ceil(y + bh + my)), max(0, int(x - mx)) : int(np.ceil(x + bw + mx))] = 1
    return m


def split_by_boxes(foreground: np.ndarray, boxes: list, margin: float) -> list[np.ndarray]:
    """Restrict a model's foreground to the expanded boxes and split it into instances.

    Pixels inside several boxes go to the smallest box (the more specific object).
    """
    taken = np.zeros(foreground.shape, bool)
    out: list[np.ndarray | None] = [None] * len(boxes)
    for i in sorted(range(len(boxes)), key=lambda i: boxes[i][2] * boxes[i][3]):
        inst = foreground.astype(bool) & expanded_box_mask(boxes[i], foreground.shape, margin).astype(bool) & ~taken
        taken |= inst
        out[i] = inst.astype(np.uint8)
    return out
