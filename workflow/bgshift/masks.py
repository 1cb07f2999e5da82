"""COCO RLE masks through pycocotools, in the compact form stored in Parquet.

A mask is stored as {"size": [h, w], "counts": "<compressed RLE string>"}; that is
the COCO JSON form too, so exports copy it without re-encoding.
"""
from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils


def encode(mask: np.ndarray) -> dict:
    """Binary HxW mask -> {"size": [h, w], "counts": str}."""
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def _as_pycoco(rle: dict) -> dict:
    counts = rle["counts"]
    return {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def decode(rle: dict) -> np.ndarray:
    """{"size", "counts"} -> HxW uint8 mask (0/1)."""
    return mask_utils.decode(_as_pycoco(rle))


def area(rle: dict) -> int:
    return int(mask_utils.area(_as_pycoco(rle)))


def region(rle: dict) -> tuple[slice, slice]:
    """Rows and columns holding an RLE mask's pixels, read from its runs (no decode)."""
    x, y, w, h = (int(v) for v in mask_utils.toBbox(_as_pycoco(rle)))
    return slice(y, y + h), slice(x, x + w)


def _compressed_counts(counts: str | bytes) -> list[int]:
    """Run lengths of a compressed COCO RLE string (pycocotools' rleFrString, in Python so a
    malformed string is refused before pycocotools' C decoder writes runs past the mask)."""
    data = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    runs: list[int] = []
    p = 0
    while p < len(data):
        value, shift, more = 0, 0, True
        while more:
            if p >= len(data):
                raise ValueError("compressed RLE counts end inside a number")
            c = data[p] - 48
            if not 0 <= c < 64:
                raise ValueError(f"compressed RLE counts hold the character {chr(data[p])!r}")
            value |= (c & 0x1F) << (5 * shift)
            more = bool(c & 0x20)
            p += 1
            shift += 1
            if not more and c & 0x10:
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def check_runs(runs: list, height: int, width: int) -> None:
    """RLE run lengths must be non-negative integers that cover the mask exactly."""
    if not all(isinstance(r, (int, np.integer)) and not isinstance(r, bool) and r >= 0 for r in runs):
        raise ValueError("RLE counts must be non-negative integers")
    if sum(runs) != height * width:
        raise ValueError(f"RLE counts sum to {sum(runs)}, not height x width = {height * width}")


def _check_polygon(polygon: list, height: int, width: int) -> None:
    """Finite numbers, x within [-width, 2 width] and y within [-height, 2 height], before
    pycocotools sees them: it segfaults on NaN and allocates memory in proportion to a far
    coordinate (1e7: 894 MB)."""
    values = [v for v in polygon if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(values) != len(polygon) or len(polygon) % 2:
        raise ValueError(f"polygon {str(polygon)[:60]} is not an even number of numbers")
    points = np.asarray(values, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(points).all():
        raise ValueError(f"polygon {str(polygon)[:60]} has a coordinate that is not a finite number")
    inside = (points[:, 0] >= -width) & (points[:, 0] <= 2 * width) & (points[:, 1] >= -height) & (points[:, 1] <= 2 * height)
    if not inside.all():
        x, y = points[~inside][0]
        raise ValueError(f"polygon point ({x:g}, {y:g}) lies far outside the {width}x{height} image")


def from_coco_segmentation(segmentation, height: int, width: int) -> dict:
    """Polygons, uncompressed RLE (crowd) or compressed RLE -> compact RLE (malformed RLE refused)."""
    if isinstance(segmentation, list):
        polygons = [p for p in segmentation if isinstance(p, list) and len(p) >= 6]
        for polygon in polygons:
            _check_polygon(polygon, height, width)
        if not polygons:
            raise ValueError("polygon segmentation has no polygon with 3 or more points")
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    elif isinstance(segmentation, dict) and list(segmentation.get("size") or []) != [height, width]:
        raise ValueError(f"segmentation size {segmentation.get('size')} differs from image size {[height, width]}")
    elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
        check_runs(segmentation["counts"], height, width)
        rle = mask_utils.frPyObjects(segmentation, height, width)
    elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), (str, bytes)):
        check_runs(_compressed_counts(segmentation["counts"]), height, width)
        rle = _as_pycoco(segmentation)
    else:
        raise ValueError(f"unsupported segmentation of type {type(segmentation).__name__}")
    if list(rle["size"]) != [height, width]:
        raise ValueError(f"segmentation size {list(rle['size'])} differs from image size {[height, width]}")
    counts = rle["counts"]
    return {"size": [height, width], "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / union) if union else 1.0


def box_of(mask: np.ndarray) -> list[float] | None:
    """Tight [x, y, w, h] box of a binary mask, None when empty."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return None
    x0, y0 = int(xs.min()), int(ys.min())
    return [float(x0), float(y0), float(xs.max() + 1 - x0), float(ys.max() + 1 - y0)]


def box_corners(bbox, shape) -> tuple[int, int, int, int]:
    """Pixel rows/columns an [x, y, w, h] box touches, clipped to an image of `shape`."""
    x, y, w, h = bbox
    return max(0, int(np.floor(x))), max(0, int(np.floor(y))), min(shape[1], int(np.ceil(x + w))), min(shape[0], int(np.ceil(y + h)))


def boxes_mask(bboxes, shape) -> np.ndarray:
    """HxW uint8 mask, 1 inside any of the boxes."""
    m = np.zeros(shape, np.uint8)
    for bbox in bboxes:
        x0, y0, x1, y1 = box_corners(bbox, shape)
        m[y0:y1, x0:x1] = 1
    return m
