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


def from_coco_segmentation(segmentation, height: int, width: int) -> dict:
    """Polygons, uncompressed RLE (crowd) or compressed RLE -> compact RLE."""
    if isinstance(segmentation, list):
        polygons = [p for p in segmentation if len(p) >= 6]
        if not polygons:
            raise ValueError("polygon segmentation has no polygon with 3 or more points")
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), (str, bytes)):
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
