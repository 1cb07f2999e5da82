"""The variant catalog: each variant is a pure function of (image context, spec, rng)
(the context: context.py; pixels and composites: drawing.py).

A variant returns its image and says what happens to the objects (kept, removed,
only the labelled ones, or moved by a crop). Expensive intermediates (the tiled
background, blurs, masks) live on the ImageContext and are computed once per image,
however many variants use them. Most variants return a `Composite`, a recipe (top,
bottom, mask, soft edge) rather than pixels: `Result.pixels` draws it into a fresh array,
the engine into one reused `Canvas` (composites over the same bottom rewrite only the
region the previous one changed, not the whole frame). Pasting is `cv2.copyTo`, so pixels
that a variant does not change stay bit-identical to the source.

Pixels are BGR, OpenCV's order, from decode to encode: the engine never spends time
converting channels. Colours in the config and in provenance are RGB.

Read-only arrays are shared, never written: the decoded source, solid colours, and what a
variant returns when it changes nothing (an unl_* variant of an image without hidden
objects is the source itself). `identity` lets the engine encode the same pixels once
however many variants reach them.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .. import masks
from .context import Donor, ImageContext, Instance
from .drawing import Composite, patch_fill, solid


@dataclass
@dataclass
class Result:
    image: np.ndarray | Composite
    objects: str = "all"  # all | none (background only) | visible (all but `hidden`) | crop
    hidden: frozenset[int] = frozenset()  # instances covered by an unl_* variant
    crop: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 when objects == "crop"
    donor: Donor | None = None
    background: str | None = None  # what replaced the background, when it is named

    @property
    def pixels(self) -> np.ndarray:
        """The variant's pixels (a composite drawn into a fresh array)."""
        return self.image.draw() if isinstance(self.image, Composite) else self.image



# ------------------------------------------------------------------ the catalog
def original(ctx, p, rng):
    return Result(ctx.pixels)


def only_bg_b(ctx, p, rng):
    return Result(ctx.composite(solid(ctx.shape, (0, 0, 0)), ctx.pixels, ctx.boxes_mask, p["feather"]), objects="none")


def only_bg_t(ctx, p, rng):
    return Result(ctx.composite(ctx.tiled_background, ctx.pixels, ctx.boxes_mask, p["feather"]), objects="none")


def no_fg(ctx, p, rng):
    return Result(ctx.composite(solid(ctx.shape, (0, 0, 0)), ctx.pixels, ctx.foreground, p["feather"]), objects="none")


def only_fg(ctx, p, rng):
    return Result(ctx.composite(ctx.pixels, solid(ctx.shape, p["colour"]), ctx.foreground, p["feather"]), background=f"colour {tuple(p['colour'])}")


def mixed(ctx, p, rng):
    donor = ctx.donors[p["family"]]
    bg = donor.background if donor.background.shape[:2] == ctx.shape else cv2.resize(donor.background, ctx.shape[::-1], interpolation=cv2.INTER_AREA)
    return Result(ctx.composite(ctx.pixels, bg, ctx.foreground, p["feather"]), donor=donor)


def bg_color(ctx, p, rng):
    return Result(ctx.composite(ctx.pixels, solid(ctx.shape, p["colour"]), ctx.foreground, p["feather"]), background=p["label"])


def bg_mean(ctx, p, rng):
    if p["per_pixel"]:
        return Result(ctx.composite(ctx.pixels, ctx.fitted(ctx.mean_image), ctx.foreground, p["feather"]), background="mean image")
    return Result(ctx.composite(ctx.pixels, solid(ctx.shape, ctx.mean_colour), ctx.foreground, p["feather"]), background="mean colour")


def bg_noise(ctx, p, rng):
    h, w = ctx.shape
    noise = np.frombuffer(rng.bytes(h * w), np.uint8).reshape(h, w) >> 7  # one fair random bit per pixel
    return Result(ctx.composite(ctx.pixels, cv2.cvtColor(noise * np.uint8(255), cv2.COLOR_GRAY2BGR), ctx.foreground, p["feather"]), background="noise")


def bg_blur(ctx, p, rng):
    return Result(ctx.composite(ctx.pixels, ctx.blurred(p["sigma"]), ctx.foreground, p["feather"]))


def bg_crop(ctx, p, rng):
    """Crop to the objects' region expanded by `margin` pixels (whole image when there are none)."""
    h, w = ctx.shape
    if ctx.objects_region is None:
        return Result(ctx.pixels)
    m = int(p["margin"])
    x0, y0, x1, y1 = ctx.objects_region
    x0, y0, x1, y1 = max(0, x0 - m), max(0, y0 - m), min(w, x1 + m), min(h, y1 + m)
    if (x0, y0, x1, y1) == (0, 0, w, h):  # objects reaching every border (a third of COCO at margin 64)
        return Result(ctx.pixels)  # the source itself: the engine reuses `original`'s bytes and objects
    return Result(ctx.pixels[y0:y1, x0:x1], objects="crop", crop=(x0, y0, x1, y1))  # a read-only view: the encoder reads strided rows


def bg_scene(ctx, p, rng):
    return Result(ctx.composite(ctx.pixels, ctx.fitted(ctx.scenes[p["scene"]]), ctx.foreground, p["feather"]), background=p["scene"])


def bg_gray(ctx, p, rng):
    return Result(ctx.composite(ctx.pixels, ctx.gray, ctx.foreground, p["feather"]))


def unl_black(ctx, p, rng):
    hidden = ctx.hidden(p.get("drop"))
    mask = ctx.hidden_mask(hidden)
    return Result(ctx.composite(solid(ctx.shape, (0, 0, 0)), ctx.pixels, mask, p["feather"]), objects="visible", hidden=hidden)


def unl_color(ctx, p, rng):
    hidden = ctx.hidden(p.get("drop"))
    colour = rng.integers(0, 256, 3)
    return Result(ctx.composite(solid(ctx.shape, colour), ctx.pixels, ctx.hidden_mask(hidden), p["feather"]), objects="visible",
                  hidden=hidden, background=f"colour {tuple(int(c) for c in colour)}")


def unl_patch(ctx, p, rng):
    hidden = ctx.hidden(p.get("drop"))
    mask = ctx.hidden_mask(hidden)
    patched = patch_fill(ctx, mask, rng)  # differs from the image only inside the mask: the hard-edged composite itself
    return Result(ctx.composite(patched, ctx.pixels, mask, p["feather"]) if p["feather"] > 0 else patched, objects="visible",
                  hidden=hidden)


def unl_blur(ctx, p, rng):
    hidden = ctx.hidden(p.get("drop"))
    return Result(ctx.composite(ctx.blurred(p["sigma"]), ctx.pixels, ctx.hidden_mask(hidden), p["feather"]), objects="visible", hidden=hidden)


FAMILIES = {
    "original": original,
    "only_bg_b": only_bg_b,
    "only_bg_t": only_bg_t,
    "no_fg": no_fg,
    "only_fg": only_fg,
    "mixed_same": mixed,
    "mixed_rand": mixed,
    "mixed_next": mixed,
    "bg_color": bg_color,
    "bg_mean": bg_mean,
    "bg_noise": bg_noise,
    "bg_blur": bg_blur,
    "bg_crop": bg_crop,
    "bg_scene": bg_scene,
    "bg_gray": bg_gray,
    "unl_black": unl_black,
    "unl_color": unl_color,
    "unl_patch": unl_patch,
    "unl_blur": unl_blur,
}
# Families that read only the annotated boxes, never a mask: made of every image that decodes,
# those that failed segmentation QC too, so `original` holds the whole dataset (the
# background-augmentation report trains on all originals plus the QC-passed augmented ones).
MASK_FREE_FAMILIES = frozenset({"original", "only_bg_b", "only_bg_t"})
# Variants whose foreground pixels must equal the source's (background replaced) and
# those whose background pixels must (foreground removed): the invariants the tests check.
BACKGROUND_VARIANTS = {"only_fg", "mixed_same", "mixed_rand", "mixed_next", "bg_color", "bg_mean", "bg_noise",
                       "bg_blur", "bg_scene", "bg_gray"}
FOREGROUND_REMOVAL_VARIANTS = {"no_fg"}


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
