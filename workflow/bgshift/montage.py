"""The one montage helper of the pictures people review (segmentation and variant contact sheets,
the results page's detection pictures): images fitted into squares, laid out by torchvision's
`make_grid` under an optional title strip."""
from __future__ import annotations

import cv2
import numpy as np

TITLE_HEIGHT = 24


def fit_square(rgb: np.ndarray, size: int, fill: int = 96) -> tuple[np.ndarray, float]:
    """An image scaled to fit a size x size square (top-left, padded `fill`) and the scale applied."""
    scale = size / max(rgb.shape[:2])
    small = cv2.resize(rgb, (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    square = np.full((size, size, 3), fill, np.uint8)
    square[: small.shape[0], : small.shape[1]] = small
    return square, scale


def grid(tiles: list[np.ndarray], columns: int, title: str | None = None, padding: int = 4) -> np.ndarray:
    """Same-sized HWC RGB tiles in rows of `columns` on white, under `title`; an HWC RGB array."""
    import torch
    from torchvision.utils import make_grid

    tensors = [t if isinstance(t, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(t.transpose(2, 0, 1))) for t in tiles]
    laid_out = make_grid(tensors, nrow=columns, padding=padding, pad_value=255).permute(1, 2, 0).numpy()
    if title is None:
        return np.ascontiguousarray(laid_out)
    strip = np.full((TITLE_HEIGHT, laid_out.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, title, (4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([strip, laid_out])
