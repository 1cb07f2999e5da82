"""The objects row of a variant: which objects it keeps, in its frame (a crop moves them)."""
from __future__ import annotations

import numpy as np

from .. import masks
from .catalog import Result
from .context import ImageContext, Instance


def transform_objects(result: Result, ctx: ImageContext, categories: dict[int, int]) -> list[dict]:
    """The objects row of a variant: what is still visible, in the variant's frame.

    Lists that do not depend on the variant (all objects, labelled ones) are built once
    per image and shared by its variants.
    """
    if result.objects == "none":
        return []
    if result.objects != "crop":
        cache = ctx.__dict__.setdefault("_objects", {})
        key = (result.objects, result.hidden)
        if key not in cache:
            cache[key] = [_object_row(i, i.bbox, i.rle, i.area, categories) for i in ctx.instances if i.ann_id not in result.hidden]
        return cache[key]
    x0, y0, x1, y1 = result.crop
    out = []
    for inst in ctx.instances:
        cropped = inst.mask[y0:y1, x0:x1]
        bbox = [inst.bbox[0] - x0, inst.bbox[1] - y0, inst.bbox[2], inst.bbox[3]]
        out.append(_object_row(inst, bbox, masks.encode(cropped), float(np.count_nonzero(cropped)), categories))
    return out


def _object_row(inst: Instance, bbox, rle: dict, area: float, categories: dict[int, int]) -> dict:
    return {"ann_id": inst.ann_id, "bbox": [float(v) for v in bbox], "category": categories[inst.category_id],
            "category_id": inst.category_id, "area": area, "iscrowd": inst.iscrowd, "segmentation": rle, "labelled": inst.labelled}
