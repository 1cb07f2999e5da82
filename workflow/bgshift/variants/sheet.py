"""The variant contact sheet: the same few images (columns) across every variant (rows)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq

from .. import images as imgs
from ..io import write_bytes


def thumbnail(rgb: np.ndarray, size: int) -> np.ndarray:
    scale = size / max(rgb.shape[:2])
    small = cv2.resize(rgb, (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    tile = np.full((size, size, 3), 32, np.uint8)
    y0, x0 = (size - small.shape[0]) // 2, (size - small.shape[1]) // 2
    tile[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
    return tile


def build(variant_files: dict[str, str | Path], columns: int, size: int, blocks_per_row: int = 4) -> np.ndarray:
    """variant name -> its first shard file. Each variant is a labelled block of the same
    `columns` source images; blocks are laid out `blocks_per_row` to a row."""
    blocks = []
    for name, path in variant_files.items():
        table = pq.read_table(path, columns=["image"]).slice(0, columns).to_pylist()
        tiles = [thumbnail(imgs.decode_rgb(r["image"]["bytes"]), size) for r in table]
        tiles += [np.full((size, size, 3), 32, np.uint8)] * (columns - len(tiles))
        label = np.full((20, columns * size, 3), 255, np.uint8)
        cv2.putText(label, name, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        blocks.append(np.pad(np.vstack([label, np.hstack(tiles)]), ((4, 4), (4, 4), (0, 0)), constant_values=255))
    if not blocks:
        return np.full((size, size, 3), 255, np.uint8)
    blocks += [np.full_like(blocks[0], 255)] * (-len(blocks) % blocks_per_row)
    return np.vstack([np.hstack(blocks[i : i + blocks_per_row]) for i in range(0, len(blocks), blocks_per_row)])


def write(variant_files: dict[str, str | Path], out: str | Path, columns: int, size: int) -> None:
    write_bytes(out, imgs.encode_png(build(variant_files, columns, size)))
