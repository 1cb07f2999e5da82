"""Contact sheets of a shard's images and their masks, for people to review (a red frame marks
an image failing QC)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq

from .. import images as imgs
from .. import masks
from ..io import write_bytes
from ..montage import fit_square, grid


def contact_sheet(entries: list[tuple[np.ndarray, np.ndarray, bool]], thumb: int) -> np.ndarray:
    """Pairs of (image, mask overlay) thumbnails, four pairs to a row; a red frame marks images failing QC."""
    tiles = []
    for rgb, fg, passed in entries:
        small, _ = fit_square(rgb, thumb, fill=0)
        m, _ = fit_square(np.repeat(fg[..., None], 3, axis=2) * np.uint8(255), thumb, fill=0)
        m = m[..., 0] > 127
        overlay = small.copy()
        overlay[m] = (0.45 * overlay[m] + 0.55 * np.array([255, 0, 160])).astype(np.uint8)
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(overlay, contours, -1, (255, 255, 0), 1)
        pair = np.hstack([small, np.zeros((thumb, 4, 3), np.uint8), overlay])
        if not passed:
            cv2.rectangle(pair, (0, 0), (pair.shape[1] - 1, pair.shape[0] - 1), (255, 0, 0), 3)
        tiles.append(pair)
    if not tiles:
        return np.zeros((thumb, 2 * thumb + 4, 3), np.uint8)
    return grid(tiles, 4)


def write_contact_sheet(ingest_dir: str | Path, masks_path: str | Path, out: str | Path, images: int, thumb: int) -> None:
    """The contact sheet of a shard's first `images` images, drawn from its stored masks.

    A job of its own, so resizing the sheet redraws pictures and reruns no segmentation."""
    paths = {im["image_id"]: im["path"] for im in pq.read_table(Path(ingest_dir) / "images.parquet", columns=["image_id", "path"]).to_pylist()}
    rows = pq.read_table(masks_path, columns=["image_id", "foreground", "qc_pass"]).slice(0, images).to_pylist()
    entries = [(imgs.read_rgb(paths[r["image_id"]]), masks.decode(r["foreground"]), r["qc_pass"]) for r in rows]
    write_bytes(out, imgs.encode_png(contact_sheet(entries, thumb)))
