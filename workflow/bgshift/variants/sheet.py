"""The variant contact sheet: the same few images (columns) across every variant (rows)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from .. import images as imgs
from ..io import write_bytes
from ..montage import fit_square, grid


def build(variant_files: dict[str, str | Path], columns: int, size: int, blocks_per_row: int = 4) -> np.ndarray:
    """variant name -> its first shard file. Each variant is a titled block of the same `columns`
    source images; blocks are laid out `blocks_per_row` to a row."""
    blocks = []
    for name, path in variant_files.items():
        table = pq.read_table(path, columns=["image"]).slice(0, columns).to_pylist()
        tiles = [fit_square(imgs.decode_rgb(r["image"]["bytes"]), size, fill=32)[0] for r in table]
        tiles += [np.full((size, size, 3), 32, np.uint8)] * (columns - len(tiles))
        blocks.append(grid(tiles, columns, title=name))
    if not blocks:
        return np.full((size, size, 3), 255, np.uint8)
    return grid(blocks, blocks_per_row, padding=8)


def write(variant_files: dict[str, str | Path], out: str | Path, columns: int, size: int) -> None:
    write_bytes(out, imgs.encode_png(build(variant_files, columns, size)))
