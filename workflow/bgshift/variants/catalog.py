"""The variant catalog: each variant is a pure function of (image context, spec, rng).

A variant returns new pixels and says what happens to the objects (kept, removed,
only the labelled ones, or moved by a crop). Expensive intermediates (the tiled
background, blurs, masks) live on the ImageContext and are computed once per image,
however many variants use them. Compositing copies pixels with `cv2.copyTo`, so
pixels that a variant does not change stay bit-identical to the source.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numpy as np

from .. import masks


@dataclass
class Instance:
    ann_id: int
    category_id: int
    bbox: list[float]
    iscrowd: bool
    labelled: bool
    mask: np.ndarray  # HxW uint8, this instance's visible pixels


@dataclass
class Donor:
    """Another image whose background a mixed_* variant borrows."""

    image_id: int
    category: str
    background: np.ndarray  # its only_bg_t pixels, RGB


@dataclass
class ImageContext:
    """One decoded source image and everything variants share about it."""

    image_id: int
    rgb: np.ndarray
    instances: list[Instance]
    foreground: np.ndarray  # HxW uint8, union of all instances
    mean_colour: np.ndarray  # dataset mean background colour (RGB)
    mean_image: np.ndarray  # dataset per-pixel mean background, any size
    donors: dict[str, Donor] = field(default_factory=dict)  # variant family -> donor
    scenes: dict[str, np.ndarray] = field(default_factory=dict)  # scene name -> RGB

    @property
    def shape(self) -> tuple[int, int]:
        return self.rgb.shape[:2]

    @cached_property
    def boxes_mask(self) -> np.ndarray:
        m = np.zeros(self.shape, np.uint8)
        for inst in self.instances:
            x0, y0, x1, y1 = box_corners(inst.bbox, self.shape)
            m[y0:y1, x0:x1] = 1
        return m

    @cached_property
    def tiled_background(self) -> np.ndarray:
        return tile_background(self.rgb, self.boxes_mask, self.mean_colour)

    @cached_property
    def unlabelled_mask(self) -> np.ndarray:
        """Pixels of unlabelled instances that no labelled instance covers."""
        m = np.zeros(self.shape, np.uint8)
        labelled = np.zeros(self.shape, np.uint8)
        for inst in self.instances:
            (labelled if inst.labelled else m)[:] |= inst.mask
        return m & (1 - labelled)

    @cached_property
    def gray(self) -> np.ndarray:
        return cv2.cvtColor(cv2.cvtColor(self.rgb, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)

    def blurred(self, sigma: float) -> np.ndarray:
        cache = self.__dict__.setdefault("_blur", {})
        if sigma not in cache:
            cache[sigma] = fast_blur(self.rgb, sigma)
        return cache[sigma]

    def fitted(self, picture: np.ndarray) -> np.ndarray:
        """A picture resized to cover this image and centre-cropped to its size."""
        return cover(picture, self.shape)


@dataclass
class Result:
    pixels: np.ndarray
    objects: str = "all"  # all | none (background only) | labelled | crop
    crop: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 when objects == "crop"
    donor: Donor | None = None
    background: str | None = None  # what replaced the background, when it is named


# ------------------------------------------------------------------ helpers
def box_corners(bbox, shape) -> tuple[int, int, int, int]:
    x, y, w, h = bbox
    return max(0, int(np.floor(x))), max(0, int(np.floor(y))), min(shape[1], int(np.ceil(x + w))), min(shape[0], int(np.ceil(y + h)))


def fast_blur(rgb: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; large sigmas run on a downscaled copy (same look, a fraction of the cost)."""
    if sigma <= 0:
        return rgb.copy()
    factor = max(1, int(sigma // 4))
    if factor == 1:
        return cv2.GaussianBlur(rgb, (0, 0), sigma)
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / factor)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def cover(picture: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    ph, pw = picture.shape[:2]
    scale = max(h / ph, w / pw)
    resized = cv2.resize(picture, (max(w, int(np.ceil(pw * scale))), max(h, int(np.ceil(ph * scale)))), interpolation=cv2.INTER_AREA)
    y0, x0 = (resized.shape[0] - h) // 2, (resized.shape[1] - w) // 2
    return np.ascontiguousarray(resized[y0 : y0 + h, x0 : x0 + w])


def tile_background(rgb: np.ndarray, boxes: np.ndarray, fallback_colour: np.ndarray) -> np.ndarray:
    """Xiao et al.'s only_bg_t fill: the largest strip of the image outside all boxes
    (above, below, left or right of them), tiled over the whole image."""
    h, w = boxes.shape
    rows = np.flatnonzero(boxes.any(1))
    cols = np.flatnonzero(boxes.any(0))
    if rows.size == 0:
        return rgb.copy()
    strips = {
        "top": (0, rows[0], 0, w),
        "bottom": (rows[-1] + 1, h, 0, w),
        "left": (0, h, 0, cols[0]),
        "right": (0, h, cols[-1] + 1, w),
    }
    y0, y1, x0, x1 = max(strips.values(), key=lambda s: (s[1] - s[0]) * (s[3] - s[2]))
    if (y1 - y0) * (x1 - x0) == 0:
        return np.full_like(rgb, np.round(fallback_colour).astype(np.uint8))  # boxes cover the whole image
    strip = rgb[y0:y1, x0:x1]
    reps = (-(-h // strip.shape[0]), -(-w // strip.shape[1]), 1)
    return np.ascontiguousarray(np.tile(strip, reps)[:h, :w])


def composite(top: np.ndarray, bottom: np.ndarray, mask: np.ndarray, feather: float) -> np.ndarray:
    """`top` where mask is set, `bottom` elsewhere; with feather > 0 a soft edge of that sigma."""
    if feather <= 0:
        out = bottom.copy()
        cv2.copyTo(top, mask, out)
        return out
    alpha = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), feather)
    return cv2.blendLinear(top, bottom, alpha, 1.0 - alpha)


def solid(shape: tuple[int, int], colour) -> np.ndarray:
    return np.full((*shape, 3), np.asarray(colour, np.uint8), np.uint8)


def patch_fill(ctx: ImageContext, region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each connected piece of `region` filled with a same-sized window of real background
    from elsewhere in the image (no object pixels), or with the tiled background when no
    such window exists."""
    out = ctx.rgb.copy()
    h, w = ctx.shape
    occupied = cv2.integral((ctx.foreground | region).astype(np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(region, connectivity=8)
    for k in range(1, n):
        x, y, bw, bh = stats[k, :4]
        source = None
        if bw < w and bh < h:
            for _ in range(50):
                sx, sy = int(rng.integers(0, w - bw + 1)), int(rng.integers(0, h - bh + 1))
                if occupied[sy + bh, sx + bw] - occupied[sy, sx + bw] - occupied[sy + bh, sx] + occupied[sy, sx] == 0:
                    source = ctx.rgb[sy : sy + bh, sx : sx + bw]
                    break
        if source is None:
            source = ctx.tiled_background[y : y + bh, x : x + bw]
        piece = (labels[y : y + bh, x : x + bw] == k).astype(np.uint8)
        cv2.copyTo(source, piece, out[y : y + bh, x : x + bw])
    return out


# ------------------------------------------------------------------ the catalog
def original(ctx, p, rng):
    return Result(ctx.rgb.copy())


def only_bg_b(ctx, p, rng):
    return Result(composite(solid(ctx.shape, (0, 0, 0)), ctx.rgb, ctx.boxes_mask, p["feather"]), objects="none")


def only_bg_t(ctx, p, rng):
    return Result(composite(ctx.tiled_background, ctx.rgb, ctx.boxes_mask, p["feather"]), objects="none")


def no_fg(ctx, p, rng):
    return Result(composite(solid(ctx.shape, (0, 0, 0)), ctx.rgb, ctx.foreground, p["feather"]), objects="none")


def only_fg(ctx, p, rng):
    return Result(composite(ctx.rgb, solid(ctx.shape, p["colour"]), ctx.foreground, p["feather"]), background=f"colour {tuple(p['colour'])}")


def mixed(ctx, p, rng):
    donor = ctx.donors[p["family"]]
    bg = donor.background if donor.background.shape[:2] == ctx.shape else cv2.resize(donor.background, ctx.shape[::-1], interpolation=cv2.INTER_AREA)
    return Result(composite(ctx.rgb, bg, ctx.foreground, p["feather"]), donor=donor)


def bg_color(ctx, p, rng):
    return Result(composite(ctx.rgb, solid(ctx.shape, p["colour"]), ctx.foreground, p["feather"]), background=p["label"])


def bg_mean(ctx, p, rng):
    if p["per_pixel"]:
        bg = cv2.resize(ctx.mean_image, ctx.shape[::-1], interpolation=cv2.INTER_LINEAR)
        return Result(composite(ctx.rgb, bg, ctx.foreground, p["feather"]), background="mean image")
    return Result(composite(ctx.rgb, solid(ctx.shape, np.round(ctx.mean_colour)), ctx.foreground, p["feather"]), background="mean colour")


def bg_noise(ctx, p, rng):
    noise = (rng.random(ctx.shape) < 0.5).astype(np.uint8) * 255
    return Result(composite(ctx.rgb, cv2.cvtColor(noise, cv2.COLOR_GRAY2RGB), ctx.foreground, p["feather"]), background="noise")


def bg_blur(ctx, p, rng):
    return Result(composite(ctx.rgb, ctx.blurred(p["sigma"]), ctx.foreground, p["feather"]))


def bg_crop(ctx, p, rng):
    """Crop to the objects' region expanded by `margin` pixels (whole image when there are none)."""
    h, w = ctx.shape
    ys, xs = np.nonzero(ctx.boxes_mask)
    if xs.size == 0:
        return Result(ctx.rgb.copy())
    m = p["margin"]
    x0, y0 = max(0, int(xs.min()) - m), max(0, int(ys.min()) - m)
    x1, y1 = min(w, int(xs.max()) + 1 + m), min(h, int(ys.max()) + 1 + m)
    return Result(np.ascontiguousarray(ctx.rgb[y0:y1, x0:x1]), objects="crop", crop=(x0, y0, x1, y1))


def bg_scene(ctx, p, rng):
    return Result(composite(ctx.rgb, ctx.fitted(ctx.scenes[p["scene"]]), ctx.foreground, p["feather"]), background=p["scene"])


def bg_gray(ctx, p, rng):
    return Result(composite(ctx.rgb, ctx.gray, ctx.foreground, p["feather"]))


def unl_black(ctx, p, rng):
    return Result(composite(solid(ctx.shape, (0, 0, 0)), ctx.rgb, ctx.unlabelled_mask, p["feather"]), objects="labelled")


def unl_color(ctx, p, rng):
    colour = rng.integers(0, 256, 3)
    return Result(composite(solid(ctx.shape, colour), ctx.rgb, ctx.unlabelled_mask, p["feather"]), objects="labelled",
                  background=f"colour {tuple(int(c) for c in colour)}")


def unl_patch(ctx, p, rng):
    return Result(composite(patch_fill(ctx, ctx.unlabelled_mask, rng), ctx.rgb, ctx.unlabelled_mask, p["feather"]), objects="labelled")


def unl_blur(ctx, p, rng):
    return Result(composite(ctx.blurred(p["sigma"]), ctx.rgb, ctx.unlabelled_mask, p["feather"]), objects="labelled")


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
# Variants whose foreground pixels must equal the source's (background replaced) and
# those whose background pixels must (foreground removed): the invariants the tests check.
BACKGROUND_VARIANTS = {"only_fg", "mixed_same", "mixed_rand", "mixed_next", "bg_color", "bg_mean", "bg_noise",
                       "bg_blur", "bg_scene", "bg_gray"}
FOREGROUND_REMOVAL_VARIANTS = {"no_fg"}


def transform_objects(result: Result, ctx: ImageContext, categories: dict[int, int]) -> list[dict]:
    """The objects row of a variant: what is still visible, in the variant's frame."""
    if result.objects == "none":
        return []
    chosen = [i for i in ctx.instances if result.objects != "labelled" or i.labelled]
    out = []
    for inst in chosen:
        mask, bbox = inst.mask, list(inst.bbox)
        if result.objects == "crop":
            x0, y0, x1, y1 = result.crop
            mask = np.ascontiguousarray(mask[y0:y1, x0:x1])
            bbox = [bbox[0] - x0, bbox[1] - y0, bbox[2], bbox[3]]
        out.append({
            "ann_id": inst.ann_id, "bbox": [float(v) for v in bbox], "category": categories[inst.category_id],
            "category_id": inst.category_id, "area": float(mask.sum()) if mask.any() else float(bbox[2] * bbox[3]),
            "iscrowd": inst.iscrowd, "segmentation": masks.encode(mask), "labelled": inst.labelled,
        })
    return out
