"""The variant catalog: each variant is a pure function of (image context, spec, rng).

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

from dataclasses import dataclass, field
from functools import cached_property, lru_cache

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
    mask: np.ndarray  # HxW uint8, this instance's visible pixels (column-major, as pycocotools decodes)
    rle: dict  # the same mask as COCO RLE (from the segment stage: encoded once, not per variant)
    area: float
    region: tuple[slice, slice]  # rows and columns holding the mask's pixels


@dataclass
class Donor:
    """Another image whose background a mixed_* variant borrows."""

    image_id: int
    category: str
    background: np.ndarray  # its Only-BG-T pixels (only_bg_t_background)


@dataclass
class ImageContext:
    """One decoded source image and everything variants share about it."""

    image_id: int
    pixels: np.ndarray  # BGR
    instances: list[Instance]
    foreground: np.ndarray  # HxW uint8, union of all instances (row-major: OpenCV copies any other layout)
    mean_colour: np.ndarray  # dataset mean background colour (RGB)
    mean_image: np.ndarray  # dataset per-pixel mean background, any size
    donors: dict[str, Donor] = field(default_factory=dict)  # variant family -> donor
    scenes: dict[str, np.ndarray] = field(default_factory=dict)  # scene name -> pixels
    fit_cache: dict = field(default_factory=dict)  # shared by a job's images: pictures fitted per size
    dropped: dict[str, set[int]] = field(default_factory=dict)  # drop scheme -> ann_ids it drops

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape[:2]

    @cached_property
    def boxes_mask(self) -> np.ndarray:
        return masks.boxes_mask([inst.bbox for inst in self.instances], self.shape)

    @cached_property
    def tiled_background(self) -> np.ndarray:
        return tile_background(self.pixels, self.boxes_mask, self.mean_colour)

    def hidden(self, drop: str | None) -> frozenset[int]:
        """Instances an unl_* variant covers: unlabelled ones, plus those the drop scheme drops."""
        dropped = self.dropped.get(drop, set()) if drop else set()
        return frozenset(i.ann_id for i in self.instances if not i.labelled or i.ann_id in dropped)

    def hidden_mask(self, hidden: frozenset[int]) -> np.ndarray:
        """Pixels of the hidden instances that no visible instance covers."""
        cache = self.__dict__.setdefault("_hidden", {})
        if hidden not in cache:
            m = np.zeros(self.shape, np.uint8)
            covered = [inst for inst in self.instances if inst.ann_id in hidden]
            visible = [inst for inst in self.instances if inst.ann_id not in hidden] if covered else []
            # each instance touches only its own box: set the hidden ones, then clear what a visible one covers
            for inst in covered:
                rows, cols = inst.region
                m[rows, cols] |= inst.mask[rows, cols]
            for inst in visible:
                rows, cols = inst.region
                m[rows, cols] &= 1 - inst.mask[rows, cols]
            cache[hidden] = m
        return cache[hidden]

    @cached_property
    def gray(self) -> np.ndarray:
        return cv2.cvtColor(cv2.cvtColor(self.pixels, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)

    def blurred(self, sigma: float) -> np.ndarray:
        cache = self.__dict__.setdefault("_blur", {})
        if sigma not in cache:
            cache[sigma] = fast_blur(self.pixels, sigma, self.__dict__.setdefault("_pyramid", [self.pixels]))
        return cache[sigma]

    def soft_edge(self, mask: np.ndarray, feather: float) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray]:
        """Where a feathered mask is neither 0 nor 1 (its region grown by the Gaussian's
        reach), its alpha there and 1 - alpha; shared by the variants that feather the same mask."""
        cache = self.__dict__.setdefault("_alpha", {})
        key = (id(mask), feather)
        if key not in cache:
            rows, cols = self.region(mask)
            reach = int(np.ceil(4 * feather)) + 1  # OpenCV's float Gaussian kernel radius is 4 sigma
            h, w = self.shape
            roi = (slice(max(0, rows.start - reach), min(h, rows.stop + reach)),
                   slice(max(0, cols.start - reach), min(w, cols.stop + reach)))
            alpha = cv2.GaussianBlur(mask[roi].astype(np.float32), (0, 0), feather, borderType=cv2.BORDER_REPLICATE)
            cache[key] = (mask, roi, alpha, 1.0 - alpha)
        return cache[key][1:]

    def region(self, mask: np.ndarray) -> tuple[slice, slice]:
        """Rows and columns holding a mask's pixels (masked copies need look no further)."""
        cache = self.__dict__.setdefault("_region", {})
        if id(mask) not in cache:
            cache[id(mask)] = (mask, mask_region(mask))
        return cache[id(mask)][1]

    def composite(self, top: np.ndarray, bottom: np.ndarray, mask: np.ndarray, feather: float) -> Composite | np.ndarray:
        """`top` where mask is set, `bottom` elsewhere; with feather > 0 a soft edge of that
        sigma. An empty mask gives `bottom` itself (a soft edge of nothing is zero everywhere)."""
        region = self.region(mask)
        if region[0].start == region[0].stop:
            return bottom
        if feather <= 0:
            return Composite(top, bottom, mask, feather, region)
        return Composite(top, bottom, mask, feather, *self.soft_edge(mask, feather))

    @cached_property
    def objects_region(self) -> tuple[int, int, int, int] | None:
        """x0, y0, x1, y1 around every box, None without objects."""
        if not self.instances:
            return None
        corners = np.array([masks.box_corners(i.bbox, self.shape) for i in self.instances])
        return int(corners[:, 0].min()), int(corners[:, 1].min()), int(corners[:, 2].max()), int(corners[:, 3].max())

    def fitted(self, picture: np.ndarray) -> np.ndarray:
        """A picture (scene, mean image) resized to cover this image and centre-cropped to its
        size; cached per size, since a shard's images mostly share one."""
        key = (id(picture), self.shape)
        if key not in self.fit_cache:
            self.fit_cache[key] = (picture, cover(picture, self.shape))
        return self.fit_cache[key][1]


@dataclass(frozen=True, eq=False)
class Composite:
    """`top` where `mask` is set, `bottom` elsewhere: a recipe, drawn by `draw` (a fresh
    array) or `Canvas.draw` (the engine's reused frame). Only `region` differs from `bottom`;
    with a soft edge it is blended there by `alpha` (and `rest`, 1 - alpha)."""

    top: np.ndarray
    bottom: np.ndarray
    mask: np.ndarray
    feather: float
    region: tuple[slice, slice]
    alpha: np.ndarray | None = None
    rest: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.bottom.shape

    def paint(self, frame: np.ndarray) -> np.ndarray:
        """Draw the composite onto `frame`, which holds `bottom`'s pixels inside `region`."""
        if self.alpha is None:
            return masked_copy(self.top, self.mask, frame, self.region)
        cv2.blendLinear(self.top[self.region], self.bottom[self.region], self.alpha, self.rest, dst=frame[self.region])
        return frame

    def draw(self) -> np.ndarray:
        return self.paint(self.bottom.copy())


class Canvas:
    """One frame that composites are drawn into, each valid until the next: a composite over
    the bottom the frame already holds restores only the previous one's region instead of
    copying the whole frame (a third of an image's variants are drawn over the source). For a
    caller that uses each composite before asking for the next, as the engine encodes it."""

    def __init__(self):
        self.frame: np.ndarray | None = None
        self.bottom: np.ndarray | None = None  # held, so that no other array takes its id
        self.changed: tuple[slice, slice] = (slice(0), slice(0))

    def draw(self, composite: Composite) -> np.ndarray:
        bottom = composite.bottom
        if self.frame is None or self.frame.shape != bottom.shape:  # a new size: a bottom the frame never held
            self.frame = np.empty_like(bottom)
        if self.bottom is bottom and not bottom.flags.writeable:  # read-only: unchanged since it was drawn
            self.frame[self.changed] = bottom[self.changed]
        else:
            np.copyto(self.frame, bottom)
        self.bottom, self.changed = bottom, composite.region
        return composite.paint(self.frame)


def identity(image: np.ndarray | Composite) -> tuple[tuple, object] | None:
    """(key, what keeps the key valid) for a variant's image: equal keys mean equal pixels.
    A composite is known by its inputs (only_fg is bg_color_black; unl_black_hard is
    unl_black where the hard scheme drops nothing), a shared read-only array by itself;
    anything else has no key. The second item holds the arrays the key names by id, so that
    no other array takes their id while the key is in use."""
    if isinstance(image, Composite):
        return ("composite", id(image.top), id(image.bottom), id(image.mask), image.feather), image
    if not image.flags.writeable:
        return ("shared", id(image)), image
    return None


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


# ------------------------------------------------------------------ helpers
def fast_blur(pixels: np.ndarray, sigma: float, pyramid: list[np.ndarray] | None = None) -> np.ndarray:
    """Gaussian blur through an image pyramid: halve with pyrDown while the sigma left is
    large, blur the small image, scale back up: 89 ms -> 1 ms at sigma 31, 640x480. On
    COCO photographs it is 1.1-2.3 grey levels from a full-resolution blur on average
    (the upscale puts each level half a pixel off the pyramid's grid); a background
    softened for a variant needs no better. `pyramid` ([pixels] at first) keeps the
    halvings for the next sigma of the same image."""
    if sigma <= 0:
        return pixels.copy()
    pyramid = [pixels] if pyramid is None else pyramid
    levels = 0
    while sigma / 2 ** (levels + 1) >= 2 and min(pyramid[levels].shape[:2]) >= 8:
        if len(pyramid) == levels + 1:
            pyramid.append(cv2.pyrDown(pyramid[levels]))
        levels += 1
    small = pyramid[levels]
    # each pyrDown level adds blur of sigma ~2^level pixels; blur what is left
    rest = np.sqrt(max(sigma**2 - (4**levels - 1), 0.25)) / 2**levels
    small = cv2.GaussianBlur(small, (0, 0), rest)
    return small if levels == 0 else cv2.resize(small, (pixels.shape[1], pixels.shape[0]), interpolation=cv2.INTER_LINEAR)


def cover(picture: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    ph, pw = picture.shape[:2]
    scale = max(h / ph, w / pw)
    resized = cv2.resize(picture, (max(w, int(np.ceil(pw * scale))), max(h, int(np.ceil(ph * scale)))), interpolation=cv2.INTER_AREA)
    y0, x0 = (resized.shape[0] - h) // 2, (resized.shape[1] - w) // 2
    return np.ascontiguousarray(resized[y0 : y0 + h, x0 : x0 + w])


def tile_background(pixels: np.ndarray, boxes: np.ndarray, fallback_colour: np.ndarray) -> np.ndarray:
    """Xiao et al.'s only_bg_t fill: the largest strip of the image outside all boxes
    (above, below, left or right of them), tiled over the whole image."""
    h, w = boxes.shape
    rows = np.flatnonzero(boxes.any(1))
    cols = np.flatnonzero(boxes.any(0))
    if rows.size == 0:
        return pixels.copy()
    strips = {
        "top": (0, rows[0], 0, w),
        "bottom": (rows[-1] + 1, h, 0, w),
        "left": (0, h, 0, cols[0]),
        "right": (0, h, cols[-1] + 1, w),
    }
    y0, y1, x0, x1 = max(strips.values(), key=lambda s: (s[1] - s[0]) * (s[3] - s[2]))
    if (y1 - y0) * (x1 - x0) == 0:
        return solid((h, w), fallback_colour).copy()  # boxes cover the whole image
    strip = pixels[y0:y1, x0:x1]
    reps = (-(-h // strip.shape[0]), -(-w // strip.shape[1]), 1)
    return np.ascontiguousarray(np.tile(strip, reps)[:h, :w])


def only_bg_t_background(pixels: np.ndarray, bboxes: list, fallback_colour: np.ndarray) -> np.ndarray:
    """Xiao et al.'s Only-BG-T image: the boxes filled with the tiled strip, the rest of the
    background as it is (the only_bg_t variant without feathering; mixed_* donors)."""
    boxes = masks.boxes_mask(bboxes, pixels.shape[:2])
    return Composite(tile_background(pixels, boxes, fallback_colour), pixels, boxes, 0.0, mask_region(boxes)).draw()


def mask_region(mask: np.ndarray) -> tuple[slice, slice]:
    """Rows and columns holding a (row-major) mask's set pixels; empty slices for an empty mask."""
    x, y, w, h = cv2.boundingRect(mask)
    return slice(y, y + h), slice(x, x + w)


def masked_copy(top: np.ndarray, mask: np.ndarray, out: np.ndarray, region: tuple[slice, slice]) -> np.ndarray:
    """`top` copied into `out` where `mask` is set; `region` holds every set pixel of the mask."""
    rows, cols = region
    cv2.copyTo(top[rows, cols], mask[rows, cols], out[rows, cols])
    return out


def solid(shape: tuple[int, int], rgb_colour) -> np.ndarray:
    """A read-only one-colour BGR image of an RGB colour."""
    return _solid(tuple(shape), tuple(int(round(c)) for c in rgb_colour))


@lru_cache(maxsize=64)
def _solid(shape: tuple[int, int], colour: tuple[int, int, int]) -> np.ndarray:
    """Cached because a shard's images mostly share a size."""
    h, w = shape
    row = np.tile(np.array(colour[::-1], np.uint8), w)
    out = np.empty((h, w * 3), np.uint8)
    out[:] = row  # broadcasting whole rows is a memcpy; np.full with an RGB triple is not
    out = out.reshape(h, w, 3)
    out.flags.writeable = False
    return out


def patch_fill(ctx: ImageContext, region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each connected piece of `region` filled with a same-sized window of real background
    from elsewhere in the image (no object pixels), or with the tiled background when no
    such window exists."""
    rows, cols = ctx.region(region)  # pieces are labelled inside the region's box: same pieces, same order
    if rows.stop == rows.start:
        return ctx.pixels
    out = ctx.pixels.copy()
    h, w = ctx.shape
    occupied = cv2.integral((ctx.foreground | region).astype(np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(region[rows, cols], connectivity=8)
    for k in range(1, n):
        bx, by, bw, bh = stats[k, :4]
        x, y = bx + cols.start, by + rows.start
        source = None
        if bw < w and bh < h:
            for _ in range(50):
                sx, sy = int(rng.integers(0, w - bw + 1)), int(rng.integers(0, h - bh + 1))
                if occupied[sy + bh, sx + bw] - occupied[sy, sx + bw] - occupied[sy + bh, sx] + occupied[sy, sx] == 0:
                    source = ctx.pixels[sy : sy + bh, sx : sx + bw]
                    break
        if source is None:
            source = ctx.tiled_background[y : y + bh, x : x + bw]
        piece = (labels[by : by + bh, bx : bx + bw] == k).astype(np.uint8)
        cv2.copyTo(source, piece, out[y : y + bh, x : x + bw])
    return out


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
